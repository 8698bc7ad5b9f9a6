"""Errors of the EPCIS layer: each is a `LedgerError`, so the API maps them in one place."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.errors import Conflict, InputError


@dataclass(frozen=True, slots=True)
class Complaint:
    """One thing the EPCIS JSON Schema says is wrong, where, and which rule said so."""

    path: str  # JSON path into the submitted document, e.g. "$.epcisBody.eventList[0].action"
    message: str  # the validator's own sentence
    rule: str  # the schema keyword path that failed, e.g. "allOf/1/properties/action/enum"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SchemaViolation(InputError):
    """The document is not valid EPCIS 2.0 JSON; `complaints` lists the schema's findings."""

    def __init__(self, complaints: list[Complaint]) -> None:
        if not complaints:
            raise ValueError("a schema violation needs at least one complaint")
        self.complaints = complaints
        more = f" (and {len(complaints) - 1} more)" if len(complaints) > 1 else ""
        super().__init__(f"not valid EPCIS 2.0: {complaints[0]}{more}")


class UnsupportedEpcis(InputError):
    """Valid EPCIS that this repository cannot process faithfully (say, an unknown remote
    JSON-LD context it may not fetch, or an extension event type)."""


class QueryParameterError(InputError):
    """An EPCIS query parameter is unknown or its value is malformed
    (the standard's QueryParameterException)."""


class NotCheckpointed(Conflict):
    """What was asked for is logged but no checkpoint covers it yet: the sequencer's next one
    will (the API answers 409 with Retry-After)."""
