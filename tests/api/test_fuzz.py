"""Property-based fuzzing of the OpenAPI schema (schemathesis): no 5xx, no schema violations.

Every operation of the live OpenAPI document gets generated requests (valid and not), sent as
the operator through the real app; schemathesis checks each response against the schema.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.api.conftest import make_plant

pytestmark = pytest.mark.slow
CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.content_type_conformance,
    checks.status_code_conformance,
]


def test_openapi_fuzz(tmp_path: Path) -> None:
    plant = make_plant(tmp_path / "home")
    for i in range(3):
        plant.submit("acme", lot=f"L{i}")
    plant.service.dep.log.checkpoint()
    schema = schemathesis.openapi.from_asgi("/openapi.json", plant.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for op in operations:

        @settings(
            max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=op.as_strategy())
        def fuzz(case) -> None:  # type: ignore[no-untyped-def]
            # Schema-valid is not always valid: a well-formed record can still carry a wrong
            # signature, so positive-data acceptance is not among the checks.
            case.call_and_validate(headers=plant.as_("operator"), checks=CHECKS)

        fuzz()
    plant.service.dep.close()
