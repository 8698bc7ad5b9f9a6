"""Validation against the shipped GS1 EPCIS 2.0 JSON Schema."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.demo.synthetic import PlantConfig, plant_document, plant_events
from ledger.epcis.errors import SchemaViolation, UnsupportedEpcis
from ledger.epcis.validate import (
    complaints,
    fast_accepts,
    fast_validator,
    is_date_time,
    is_uri,
    validate,
    validate_capture,
    validator,
)
from tests.ledger.epcis.conftest import SCHEMA_INVALID_EXAMPLE, repaired

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "ledger" / "epcis" / "schema"
SHIPPED = ("EPCIS-JSON-Schema.json", "epcis-context.jsonld", "epcis-context-simple.jsonld")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_copies_have_the_stated_digests(name: str) -> None:
    # The README states the official files' digests; that the copies are byte for byte the
    # files in ../shared/standards/epcis is tests/vectors/test_vectors_match_shared.py's check.
    digest = hashlib.sha256((SCHEMA_DIR / name).read_bytes()).hexdigest()
    assert digest in (SCHEMA_DIR / "README.md").read_text()


def test_shipped_licence_is_gs1s(vectors_dir: Path) -> None:
    assert (SCHEMA_DIR / "LICENSE").read_bytes() == (vectors_dir / "epcis" / "LICENSE").read_bytes()


def test_official_examples_are_valid_but_one(examples: dict[str, Any]) -> None:
    for name, doc in examples.items():
        found = complaints(doc)
        if name == SCHEMA_INVALID_EXAMPLE:
            # GS1's own example puts "type" in a sensorElement, whose property names the
            # schema restricts to sensorMetadata, sensorReport and URIs.
            assert [c.path for c in found] == ["$.epcisBody.eventList[0].sensorElementList[0]"]
            assert "'type' is not a 'uri'" in found[0].message
            assert complaints(repaired(doc)) == []
        else:
            assert found == [], (name, found)


def _event(examples: dict[str, Any], name: str = "Example_9.6.1-ObjectEvent.jsonld") -> Any:
    return copy.deepcopy(examples[name])


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            lambda e: e.update(action="LOOK"),
            "$.epcisBody.eventList[0].action",
            "'LOOK' is not one of ['OBSERVE', 'ADD', 'DELETE']",
        ),
        (
            lambda e: e.update(eventTime="yesterday"),
            "$.epcisBody.eventList[0].eventTime",
            "'yesterday' is not a 'date-time'",
        ),
        (
            lambda e: e.update(eventTimeZoneOffset="+25:00"),
            "$.epcisBody.eventList[0].eventTimeZoneOffset",
            "does not match",
        ),
        (
            lambda e: e.update(epcList=["not a uri"]),
            "$.epcisBody.eventList[0].epcList[0]",
            "'not a uri' is not a 'uri'",
        ),
        (
            lambda e: e.pop("eventTime"),
            "$.epcisBody.eventList[0]",
            "'eventTime' is a required property",
        ),
        (
            lambda e: e.update(bizStep="urn:epcglobal:cbv:bizstep:shipping"),
            "$.epcisBody.eventList[0].bizStep",
            "no alternative of the schema holds: 'urn:epcglobal:cbv:bizstep:shipping' does not",
        ),
    ],
)
def test_refusals_carry_the_schemas_complaint(
    examples: dict[str, Any], change: Any, path: str, message: str
) -> None:
    doc = _event(examples)
    change(doc["epcisBody"]["eventList"][0])
    with pytest.raises(SchemaViolation) as caught:
        validate(doc)
    first = caught.value.complaints[0]
    assert first.path == path
    assert message in first.message
    assert first.rule  # the schema keyword path that failed
    assert path in str(caught.value) and message in str(caught.value)


def test_an_anyof_names_what_each_alternative_wanted(examples: dict[str, Any]) -> None:
    doc = _event(examples, "Example_9.6.3-AggregationEvent.jsonld")
    event = doc["epcisBody"]["eventList"][0]
    del event["childEPCs"], event["childQuantityList"]
    (first, *_) = complaints(doc)
    assert first.path == "$.epcisBody.eventList[0]"
    assert "'childEPCs' is a required property" in first.message
    assert "'childQuantityList' is a required property" in first.message


def test_capture_takes_documents_and_standard_events_only(examples: dict[str, Any]) -> None:
    doc = _event(examples)
    validate_capture(doc)
    single = {"@context": doc["@context"], **doc["epcisBody"]["eventList"][0]}
    validate_capture(single)
    with pytest.raises(SchemaViolation, match="'@context' is a required property"):
        validate_capture(doc["epcisBody"]["eventList"][0])
    query_doc = {
        "@context": doc["@context"],
        "type": "EPCISQueryDocument",
        "epcisBody": {"queryResults": {"queryName": "q", "resultsBody": {"eventList": []}}},
    }
    with pytest.raises(UnsupportedEpcis, match="EPCISQueryDocument"):
        validate_capture(query_doc)
    doc["epcisBody"]["eventList"][0]["type"] = "https://example.com/MyEvent"
    with pytest.raises(UnsupportedEpcis, match="extension event type"):
        validate_capture(doc)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2005-04-03T20:33:31.116-06:00", True),
        ("2013-06-08T14:58:56.591Z", True),
        ("2016-12-31T23:59:60Z", True),  # a leap second
        ("2026-02-30T00:00:00Z", False),
        ("2026-01-01T00:00:00", False),  # no offset
        ("2026-01-01 00:00:00Z", False),
        ("2026-01-01T24:00:00Z", False),
    ],
)
def test_date_time_format(value: str, ok: bool) -> None:
    assert is_date_time(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("urn:epc:id:sgtin:0614141.107346.2017", True),
        ("https://id.gs1.org/01/09521141123454/21/1", True),
        ("_:document1", True),  # JSON-LD blank node, used by the official examples
        ("example:myField", True),
        ("urn:epc:idpat:sgtin:4012345.098765.*", True),
        ("no-scheme", False),
        ("urn:epc:id:sgtin:0614141 107346", False),
        ("http://x/%zz", False),
    ],
)
def test_uri_format(value: str, ok: bool) -> None:
    assert is_uri(value) is ok


def test_messages_stay_short(examples: dict[str, Any]) -> None:
    doc = _event(examples)
    doc["epcisBody"]["eventList"][0]["sensorElementList"] = "x" * 5000
    for c in complaints(doc):
        assert len(c.message) <= 1200
        assert not re.search("x{400}", c.message)


# The compiled validator may only say "valid" where jsonschema says so too.

BAD_VALUES: list[Any] = [
    None, "", 12, -1.5, True, [], {}, "not a uri", "x\n", "2024-13-01T00:00:00Z",
    "2024-01-01T00:00:00", "urn:epc:id:sgtin:4012345.011111.\u0661", "ADD\n", "OBSERVE ",
    "https://exa mple.com", "%zz:x", ["urn:epc:id:sgtin:4012345.011111.1", None],
]  # fmt: skip


def _mutations(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The event with each key removed, and each value (at any depth) replaced by each of
    BAD_VALUES."""

    def paths(node: Any, at: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            yield (*at, k)
            if isinstance(v, (dict, list)):
                yield from paths(v, (*at, k))

    for path in paths(event, ()):
        for value in [_DELETE, *BAD_VALUES]:
            mutated = json.loads(json.dumps(event))
            parent = mutated
            for k in path[:-1]:
                parent = parent[k]
            if value is _DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            yield mutated


_DELETE = object()


def test_the_fast_validator_never_accepts_what_jsonschema_refuses(
    examples: dict[str, Any],
) -> None:
    assert fast_validator() is not None
    events = list(plant_events(PlantConfig(runs=2, stages=3, seed=1)))
    corpus: list[Any] = [*examples.values(), plant_document(events)]
    for doc in examples.values():
        for event in doc["epcisBody"]["eventList"][:1]:
            corpus.extend(_mutations({"@context": doc["@context"], **event}))
    kinds: dict[str, dict[str, Any]] = {}
    for event in events:
        kinds.setdefault(f"{event['type']}/{event.get('bizStep')}", event)
    for event in kinds.values():
        corpus.extend(_mutations(event))
    refused = stricter = 0
    for doc in corpus:
        valid = not any(True for _ in validator().iter_errors(doc))
        refused += not valid
        if fast_accepts(doc):
            assert valid, json.dumps(doc)[:2000]
        else:
            # The other way is harmless (jsonschema decides): Python's `$` accepts a final
            # newline ("uom": "KGM\n"), the compiled ECMA-262 patterns do not.
            stricter += valid
    assert refused > 500
    assert stricter < 0.05 * (len(corpus) - refused)
    # The valid documents are accepted by the compiled validator itself: the fast path.
    for doc in [plant_document(events), *examples.values()]:
        if not any(True for _ in validator().iter_errors(doc)):
            assert fast_accepts(doc)
