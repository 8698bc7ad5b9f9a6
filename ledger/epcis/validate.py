"""Validation against the official GS1 EPCIS 2.0 JSON Schema, shipped in `schema/`.

The schema marks identifiers as `"format": "uri"` and times as `"format": "date-time"`.
jsonschema checks those formats only with optional packages this project does not depend on,
and without them it would accept `"eventTime": "yesterday"`. So both formats are checked here:
a date-time is RFC 3339 (section 5.6) and must exist on the calendar; a URI is RFC 3986
`scheme ":" hier-part`, with no characters RFC 3986 forbids. JSON-LD blank node identifiers
(`_:document1`) are accepted as URIs too: the official examples use them as document ids, and
JSON-LD 1.1 allows them wherever an IRI may appear.

Refusals carry the schema's own complaint: the JSON path into the submitted document, the
validator's sentence, and the schema rule that failed (`Complaint`).

jsonschema costs ~0.8 ms an event, more than everything else capture does. So a document is
first given to `jsonschema_rs` (compiled, the same draft-07 schema and the same two format
checks, ~10 us an event): when it finds the document valid, that is the answer. When it does
not (or is not installed, or cannot take the value), jsonschema decides and words the
complaints, so a refusal and its complaints are jsonschema's, always. The fast validator can
only ever say "valid"; tests/ledger/epcis/test_validate.py checks it never does where
jsonschema would refuse, on the official examples, the generated plant and mutated events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError

try:
    import jsonschema_rs
except ImportError:  # pragma: no cover - optional: jsonschema alone gives the same verdicts
    jsonschema_rs = None  # type: ignore[assignment]

from ledger.epcis.errors import Complaint, SchemaViolation, UnsupportedEpcis

EVENT_TYPES = (
    "ObjectEvent",
    "AggregationEvent",
    "TransformationEvent",
    "AssociationEvent",
    "TransactionEvent",
)
"""Event types the schema defines and this repository captures and indexes. TransactionEvent
is kept from EPCIS 1.x (deprecated in 2.0, still valid)."""

MAX_COMPLAINTS = 20

_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
# RFC 3986: scheme, then only unreserved / reserved / percent-encoded characters.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$")
_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_BLANK_NODE = re.compile(r"^_:[A-Za-z0-9_\-.]+$")


def schema_text(name: str) -> str:
    """A file shipped in `ledger/epcis/schema/` (the schema, a context, the licence)."""
    return resources.files("ledger.epcis").joinpath("schema", name).read_text(encoding="utf-8")


@cache
def schema() -> dict[str, Any]:
    """The official EPCIS 2.0 JSON Schema (draft-07)."""
    loaded: dict[str, Any] = json.loads(schema_text("EPCIS-JSON-Schema.json"))
    return loaded


def is_date_time(value: object) -> bool:
    """RFC 3339 date-time with an offset, on a real calendar day."""
    if not isinstance(value, str):
        return True  # formats constrain strings only; "type" rules catch the rest
    m = _DATE_TIME.match(value)
    if m is None:
        return False
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        # Second 60 is a leap second: valid RFC 3339, not representable by datetime.
        datetime(y, mo, d, h, mi, min(s, 59))
    except ValueError:
        return False
    offset = m.group(8)
    if offset not in ("Z", "z") and (int(offset[1:3]) > 23 or int(offset[4:6]) > 59):
        return False
    return s <= 60


def is_uri(value: object) -> bool:
    """RFC 3986 URI with a scheme, or a JSON-LD blank node identifier."""
    if not isinstance(value, str):
        return True
    if _BLANK_NODE.match(value):
        return True
    return bool(_URI.match(value)) and not _PCT.search(value)


def format_checker() -> FormatChecker:
    checker = FormatChecker()
    checker.checks("date-time")(is_date_time)
    checker.checks("uri")(is_uri)
    return checker


@cache
def validator() -> Draft7Validator:
    Draft7Validator.check_schema(schema())
    return Draft7Validator(schema(), format_checker=format_checker())


@cache
def fast_validator() -> Any:
    """The compiled validator that may only accept (None without `jsonschema_rs`)."""
    if jsonschema_rs is None:
        return None
    return jsonschema_rs.Draft7Validator(
        schema(), formats={"date-time": is_date_time, "uri": is_uri}, validate_formats=True
    )


_FAST = ContextVar("forgeproof_epcis_fast_validation", default=True)


@contextmanager
def jsonschema_only() -> Iterator[None]:
    """Within this block, validation runs on jsonschema alone (the benchmark's baseline)."""
    token = _FAST.set(False)
    try:
        yield
    finally:
        _FAST.reset(token)


def fast_accepts(doc: Any) -> bool:
    """True when the compiled validator finds `doc` valid; False means "ask jsonschema"."""
    fast = fast_validator() if _FAST.get() else None
    if fast is None:
        return False
    try:
        return bool(fast.is_valid(doc))
    except Exception:
        return False


def complaints(doc: Any, *, limit: int = MAX_COMPLAINTS) -> list[Complaint]:
    """Everything the schema finds wrong with `doc`, the most specific first (empty: valid).

    jsonschema's `best_match` prefers shallow errors, which for EPCIS is often an `anyOf`
    whose message repeats the whole event. The deepest error names the field at fault
    (`action: 'LOOK' is not one of [...]`), so errors are ranked by depth, and combinators
    (`anyOf`, `oneOf`, `allOf`) only come after the errors of plain keywords.
    """
    if fast_accepts(doc):
        return []
    errors = list(validator().iter_errors(doc))
    if not errors:
        return []
    ordered = sorted(
        errors,
        key=lambda e: (e.validator in _COMBINATORS, -len(e.absolute_path), e.json_path),
    )
    out: list[Complaint] = []
    seen: set[tuple[str, str]] = set()
    for e in ordered:
        c = _alternatives(e) if e.validator in ("anyOf", "oneOf") and e.context else None
        c = c or _complaint(e)
        if (c.path, c.message) not in seen:
            seen.add((c.path, c.message))
            out.append(c)
        if len(out) >= limit:
            break
    return out


_COMBINATORS = frozenset({"anyOf", "oneOf", "allOf", "if", "then", "else", "not"})
_MAX_MESSAGE = 300
_MAX_PART = 160


def _alternatives(e: ValidationError) -> Complaint | None:
    """An `anyOf` that failed, told by what each alternative required."""
    parts: list[str] = []
    for sub in sorted(e.context or [], key=lambda c: (c.relative_schema_path[0], c.json_path)):
        where = sub.json_path[len(e.json_path) :].lstrip(".")
        msg = sub.message if len(sub.message) <= _MAX_PART else sub.message[: _MAX_PART - 3] + "..."
        part = f"{where}: {msg}" if where else msg
        if part not in parts:
            parts.append(part)
    if not parts:
        return None
    return Complaint(
        path=e.json_path,
        message="no alternative of the schema holds: " + "; or ".join(parts),
        rule="/".join(str(p) for p in e.schema_path),
    )


def _complaint(e: ValidationError) -> Complaint:
    message = e.message
    if len(message) > _MAX_MESSAGE:
        # Messages repeat the instance (a whole event, say); the path already says which.
        message = message[: _MAX_MESSAGE - 3] + "..."
    return Complaint(
        path=e.json_path,
        message=message,
        rule="/".join(str(p) for p in e.schema_path),
    )


def validate(doc: Any) -> None:
    """Check `doc` against the EPCIS 2.0 JSON Schema.

    Raises:
        SchemaViolation: with the schema's complaints (JSON path, message, rule).
    """
    found = complaints(doc)
    if found:
        raise SchemaViolation(found)


def validate_capture(doc: Any) -> None:
    """Check a capture request: an EPCISDocument, or one event of a standard type with its
    own `@context`, valid per the schema.

    Raises:
        SchemaViolation: not valid EPCIS 2.0; nothing may be stored.
        UnsupportedEpcis: valid, but not a document or event this repository captures.
    """
    validate(doc)
    kind = doc.get("type")
    if kind != "EPCISDocument" and kind not in EVENT_TYPES:
        raise UnsupportedEpcis(
            f"capture takes an EPCISDocument or one event ({', '.join(EVENT_TYPES)}), "
            f"got type {kind!r}"
        )
    if kind == "EPCISDocument":
        for i, event in enumerate(doc["epcisBody"]["eventList"]):
            if event.get("type") not in EVENT_TYPES:
                raise UnsupportedEpcis(
                    f"$.epcisBody.eventList[{i}]: extension event type {event.get('type')!r} "
                    f"is valid EPCIS but not captured here; expected one of "
                    f"{', '.join(EVENT_TYPES)}"
                )
