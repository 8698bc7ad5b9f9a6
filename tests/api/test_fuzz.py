"""Fuzzing the live OpenAPI document: no 5xx, whatever is sent.

- schemathesis, positive mode: schema-valid requests to every operation, responses checked
  against the schema;
- schemathesis, negative mode: schema-violating requests to every operation;
- schemathesis, stateful: sequences that follow the document's OpenAPI links (a created record
  read back, a subscription's deliveries listed, a created API key revoked, ...);
- a hypothesis fuzz of every query and path parameter with hostile values (huge and negative
  numbers, floats, long digit strings, unicode, encoded junk, cursors and tokens of the right
  shape with the wrong content).

All requests go as the operator through the real app over a seeded plant. Run with `-s` to see
how many operations and cases ran (the README quotes them).
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from api.demo.synthetic import PlantConfig, plant_document, plant_events
from tests.api.conftest import Plant, close_plant, make_plant

pytestmark = pytest.mark.slow
CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.content_type_conformance,
    checks.status_code_conformance,
]
COUNTS: Counter[str] = Counter()


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    p = make_plant(tmp_path_factory.mktemp("fuzz") / "home")
    op = p.as_("operator")
    for i in range(3):
        p.submit("acme", lot=f"L{i}")
    p.client.post(
        "/v1/participants/assignments", json={"asset": "e-1", "maintainer": "fixit"}, headers=op
    )
    p.predict("e-1")
    events = list(plant_events(PlantConfig(runs=1, stages=2, seed=1)))
    p.client.post("/v1/epcis/capture", json=plant_document(events), headers=op)
    p.service.dep.log.checkpoint()
    yield p
    close_plant(p)


def _schema(plant: Plant) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", plant.client.app)


def _run(plant: Plant, mode: GenerationMode, label: str) -> None:
    operations = [result.ok() for result in _schema(plant).get_all_operations()]
    assert len(operations) >= 30
    COUNTS[f"{label} operations"] = len(operations)
    for op in operations:

        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=op.as_strategy(generation_mode=mode))
        def fuzz(case) -> None:  # type: ignore[no-untyped-def]
            COUNTS[f"{label} cases"] += 1
            # Schema-valid is not always valid: a well-formed record can still carry a wrong
            # signature, so positive-data acceptance is not among the checks.
            case.call_and_validate(headers=plant.as_("operator"), checks=CHECKS)

        try:
            fuzz()
        except Unsatisfiable:
            # Nothing about the operation can be made invalid (no parameters, no body).
            assert mode is GenerationMode.NEGATIVE
            COUNTS[f"{label} operations with nothing to break"] += 1


def test_openapi_fuzz_positive(plant: Plant) -> None:
    _run(plant, GenerationMode.POSITIVE, "positive")


def test_openapi_fuzz_negative(plant: Plant) -> None:
    _run(plant, GenerationMode.NEGATIVE, "negative")


def test_openapi_stateful(plant: Plant) -> None:
    machine = _schema(plant).as_state_machine()
    operator = plant.as_("operator")

    class Run(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            COUNTS["stateful calls"] += 1
            return {"headers": operator}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    Run.run(
        settings=settings(
            max_examples=40,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )
    assert COUNTS["stateful calls"] > 40


def _token(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


HOSTILE = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.sampled_from(
        [
            "-1", "0", "2" * 19, "9" * 5000, "1e308", "-0", "nan", "inf", "0x" + "ab" * 32,
            "0x", "null", "[]", "{}", "%00", "\x00", "../../etc/passwd", "' OR 1=1 --",
            "urn:epc:idpat:sgtin:*", "2026-13-45T99:99:99Z", "ni:///sha-256;zz?ver=CBV2.0",
            _token({"after": "abc"}), _token({"after": 2**70}), _token({"before": -1}),
            _token({"v": 1, "after": 3}), _token({"v": 1, "q": 1, "after": 1}), _token([]),
        ]
    ),
)  # fmt: skip


def _parameters(spec: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(method, path, where, name) of every query and path parameter."""
    out = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                if p["in"] in ("query", "path"):
                    out.append((method, path, p["in"], p["name"]))
    return out


def test_every_parameter_with_hostile_values(plant: Plant) -> None:
    spec = plant.client.get("/openapi.json").json()
    params = _parameters(spec)
    assert len(params) >= 30
    COUNTS["parameters"] = len(params)
    operator = plant.as_("operator")
    for method, path, where, name in params:
        _fuzz_parameter(plant, operator, method, path, where, name)


def _fuzz_parameter(
    plant: Plant, operator: dict[str, str], method: str, path: str, where: str, name: str
) -> None:
    from urllib.parse import quote

    @settings(max_examples=20, deadline=None, database=None)
    @given(value=HOSTILE)
    def fuzz(value: str) -> None:
        COUNTS["parameter cases"] += 1
        url = path
        query: dict[str, str] = {}
        for other in re.findall(r"\{([^}]+)\}", path):
            url = url.replace("{" + other + "}", "x" if other != name else "{v}")
        if where == "path":
            url = url.replace("{v}", quote(value, safe="") or "%20")
        else:
            query[name] = value
        r = plant.client.request(method.upper(), url, params=query, headers=operator)
        assert r.status_code < 500, (method, path, name, value, r.status_code, r.text[:300])

    fuzz()


def test_zz_report(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print("\nfuzzing:", dict(sorted(COUNTS.items())))
