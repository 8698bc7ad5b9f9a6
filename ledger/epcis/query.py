"""EPCIS 2.0 queries (SimpleEventQuery) over the index, answered as EPCISQueryDocuments.

Parameters, with the standard's semantics (EPCIS 2.0 section 8.2.7.1); a list parameter takes
a list, repeated values, or values separated by `|` (the REST binding's form):

| parameter | matches |
|---|---|
| `eventType` | the event's type, one of the values |
| `GE_eventTime`, `LT_eventTime` | eventTime >= / < the time (any RFC 3339 offset) |
| `GE_recordTime`, `LT_recordTime` | the time the repository logged the event |
| `EQ_action`, `EQ_bizStep`, `EQ_disposition`, `EQ_readPoint`, `EQ_bizLocation` | one of |
| | the values; CBV values in any spelling: `shipping`, `urn:epcglobal:cbv:bizstep:shipping` |
| | and `https://ref.gs1.org/cbv/BizStep-shipping` are the same |
| `EQ_eventID` | a CBV 2.0 hash ID of the event: as captured, or of its stored form |
| `MATCH_epc` | epcList or childEPCs |
| `MATCH_parentID`, `MATCH_inputEPC`, `MATCH_outputEPC` | parentID, inputEPCList, outputEPCList |
| `MATCH_anyEPC` | any of epcList, childEPCs, inputEPCList, outputEPCList, parentID |
| `MATCH_epcClass` | quantityList or childQuantityList classes |
| `MATCH_inputEPCClass`, `MATCH_outputEPCClass` | inputQuantityList, outputQuantityList classes |
| `MATCH_anyEPCClass` | any quantity list |
| `perPage`, `nextPageToken` | paging (REST binding); see `query_events` |
| `orderBy` (`recordTime`), `orderDirection` (`ASC`, `DESC`) | result order |

`MATCH_` values are URIs, compared exactly, or EPC pattern URIs
(`urn:epc:idpat:sgtin:0614141.107346.*`): every field is a value or `*`, and once a field is
`*` the rest are too (GS1 Tag Data Standard). An instance pattern matches the EPCs of that
scheme whose fields agree (`urn:epc:id:sgtin:0614141.107346.2017`); a class parameter's pattern
`urn:epc:idpat:sgtin:C.I.*` matches the lots of that GTIN (`urn:epc:class:lgtin:C.I.<lot>`)
and the pattern itself used as a class. Patterns run as range scans on the identifier index.
Parameters combine with AND, the values of one parameter with OR.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select

from ledger.epcis.errors import QueryParameterError
from ledger.epcis.hashid import DEFAULT_CONTEXT
from ledger.epcis.index import EventRef, event_refs
from ledger.epcis.validate import EVENT_TYPES
from ledger.epcis.vocab import cbv_name, format_time_us, time_us
from ledger.errors import NotFound
from ledger.records import utc_now
from ledger.store import Store
from ledger.store.models import EpcisEventRow, EpcisLinkRow, RecordRow

QUERY_NAME = "SimpleEventQuery"
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000

MATCH_ROLES: dict[str, tuple[tuple[str, ...], bool]] = {
    # parameter: (roles, class-level)
    "MATCH_epc": (("epc", "child"), False),
    "MATCH_parentID": (("parent",), False),
    "MATCH_inputEPC": (("input",), False),
    "MATCH_outputEPC": (("output",), False),
    "MATCH_anyEPC": (("epc", "child", "input", "output", "parent"), False),
    "MATCH_epcClass": (("epc_class", "child_class"), True),
    "MATCH_inputEPCClass": (("input_class",), True),
    "MATCH_outputEPCClass": (("output_class",), True),
    "MATCH_anyEPCClass": (("epc_class", "child_class", "input_class", "output_class"), True),
}
_EQ_COLUMNS = {
    "EQ_action": EpcisEventRow.action,
    "EQ_bizStep": EpcisEventRow.biz_step,
    "EQ_disposition": EpcisEventRow.disposition,
    "EQ_readPoint": EpcisEventRow.read_point,
    "EQ_bizLocation": EpcisEventRow.biz_location,
    "EQ_eventID": EpcisEventRow.event_id,
}
_TIMES = ("GE_eventTime", "LT_eventTime", "GE_recordTime", "LT_recordTime")
_PAGING = ("perPage", "nextPageToken", "orderBy", "orderDirection")
PARAMETERS = ("eventType", *_TIMES, *_EQ_COLUMNS, *MATCH_ROLES, *_PAGING)


@dataclass(frozen=True, slots=True)
class Match:
    """Identifiers equal to one of `exact`, or in one of the `[low, high)` ranges."""

    exact: tuple[str, ...] = ()
    ranges: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EventQuery:
    """A parsed SimpleEventQuery (see the module docstring for the parameters)."""

    event_types: tuple[str, ...] = ()
    times: dict[str, int] = field(default_factory=dict)  # parameter -> microseconds
    equals: dict[str, tuple[str, ...]] = field(default_factory=dict)
    matches: dict[str, Match] = field(default_factory=dict)
    descending: bool = False
    params: dict[str, tuple[str, ...]] = field(default_factory=dict)  # as given, normalised

    def fingerprint(self) -> str:
        """Identifies the query (not the page): page tokens carry it."""
        text = json.dumps([self.params, self.descending], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class QueryPage:
    """One page of results: the EPCISQueryDocument and the token of the next page."""

    document: dict[str, Any]
    next_page_token: str | None
    refs: list[EventRef]  # the events on this page, in order, with their leaf indexes


def _values(name: str, raw: Any) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, Sequence) else None
    if items is None or not all(isinstance(v, str) for v in items):
        raise QueryParameterError(f"{name}: expected a string or a list of strings, got {raw!r}")
    out = tuple(v for item in items for v in item.split("|") if v != "")
    if not out:
        raise QueryParameterError(f"{name}: expected at least one value")
    return out


def _single(name: str, values: tuple[str, ...]) -> str:
    if len(values) != 1:
        raise QueryParameterError(f"{name}: expected one value, got {len(values)}")
    return values[0]


def parse_query(params: Mapping[str, Any]) -> tuple[EventQuery, int, str | None]:
    """Parse query parameters (a query string's or an EPCIS JSON query's).

    Returns the query, the page size and the page token, if any.

    Raises:
        QueryParameterError: an unknown parameter, or a malformed value.
    """
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise QueryParameterError(
            f"unknown query parameter(s) {', '.join(unknown)}; supported: {', '.join(PARAMETERS)}"
        )
    given = {name: _values(name, raw) for name, raw in params.items()}
    per_page = DEFAULT_PER_PAGE
    if "perPage" in given:
        text = _single("perPage", given["perPage"])
        # isdigit alone accepts digits int() refuses (superscripts): ASCII digits only.
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PER_PAGE:
            raise QueryParameterError(f"perPage: expected 1 to {MAX_PER_PAGE}, got {text!r}")
        per_page = int(text)
    token = _single("nextPageToken", given["nextPageToken"]) if "nextPageToken" in given else None
    if "orderBy" in given and _single("orderBy", given["orderBy"]) != "recordTime":
        raise QueryParameterError(
            f"orderBy: only recordTime is supported, got {given['orderBy'][0]!r}"
        )
    direction = _single("orderDirection", given.get("orderDirection", ("ASC",)))
    if direction not in ("ASC", "DESC"):
        raise QueryParameterError(f"orderDirection: expected ASC or DESC, got {direction!r}")

    types = given.get("eventType", ())
    bad = [t for t in types if t not in EVENT_TYPES]
    if bad:
        raise QueryParameterError(f"eventType: {bad[0]!r} is not one of {', '.join(EVENT_TYPES)}")
    times = {}
    for name in _TIMES:
        if name in given:
            try:
                times[name] = time_us(_single(name, given[name]))
            except ValueError as exc:
                raise QueryParameterError(f"{name}: {exc}") from None
    equals = {}
    for name in _EQ_COLUMNS:
        if name in given:
            vals = given[name]
            if name in ("EQ_bizStep", "EQ_disposition"):
                vals = tuple(cbv_name(name[3:], v) for v in vals)
            equals[name] = vals
    matches = {
        name: match(name, given[name], MATCH_ROLES[name][1])
        for name in MATCH_ROLES
        if name in given
    }
    semantic = {k: v for k, v in given.items() if k not in _PAGING}
    query = EventQuery(types, times, equals, matches, direction == "DESC", semantic)
    return query, per_page, token


def match(name: str, values: Sequence[str], class_level: bool) -> Match:
    """The identifiers a MATCH_ parameter's values select (see the module docstring).

    Raises:
        QueryParameterError: a malformed EPC pattern URI.
    """
    exact: list[str] = []
    ranges: list[tuple[str, str]] = []
    for v in values:
        if not v.startswith("urn:epc:idpat:"):
            exact.append(v)
            continue
        scheme, fields = _pattern(name, v)
        fixed = fields[: fields.index("*")] if "*" in fields else fields
        if len(fixed) == len(fields):  # no wildcard: one identifier
            exact.append(f"urn:epc:id:{scheme}:{'.'.join(fields)}")
            if class_level:
                exact.append(v)
            continue
        stem = ".".join(fixed) + ("." if fixed else "")
        if class_level:
            # Lots of a GTIN (lgtin), and the GTIN-level pattern used as a class.
            if scheme == "sgtin":
                ranges.append(_prefix_range(f"urn:epc:class:lgtin:{stem}"))
            ranges.append(_prefix_range(f"urn:epc:idpat:{scheme}:{stem}"))
        else:
            ranges.append(_prefix_range(f"urn:epc:id:{scheme}:{stem}"))
    return Match(tuple(exact), tuple(ranges))


def _pattern(name: str, v: str) -> tuple[str, list[str]]:
    body = v[len("urn:epc:idpat:") :]
    scheme, sep, rest = body.partition(":")
    fields = rest.split(".")
    if not sep or not scheme or not rest or any(f == "" for f in fields):
        raise QueryParameterError(f"{name}: {v!r} is not an EPC pattern URI")
    if "*" in fields:
        first = fields.index("*")
        if any(f != "*" for f in fields[first:]):
            raise QueryParameterError(
                f"{name}: in {v!r} a field follows a '*'; after the first '*' every field "
                "must be '*' (GS1 Tag Data Standard)"
            )
    if any("*" in f and f != "*" for f in fields):
        raise QueryParameterError(f"{name}: in {v!r} '*' must stand alone in a field")
    return scheme, fields


def _prefix_range(prefix: str) -> tuple[str, str]:
    # Every string that starts with `prefix`, in code-point order: [prefix, successor).
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _match_condition(roles: tuple[str, ...], m: Match) -> ColumnElement[bool]:
    link = EpcisLinkRow
    alternatives: list[ColumnElement[bool]] = []
    if m.exact:
        alternatives.append(link.epc.in_(m.exact))
    alternatives.extend(and_(link.epc >= lo, link.epc < hi) for lo, hi in m.ranges)
    sub = select(link.leaf_index).where(link.role.in_(roles), or_(*alternatives))
    return EpcisEventRow.leaf_index.in_(sub)


def _statement(q: EventQuery) -> Any:  # a Select; its row type varies across SQLAlchemy
    e, r = EpcisEventRow, RecordRow
    stmt = (
        select(e.leaf_index, r.canonical, r.appended_us)
        # An event declared in error is answered with the declaration (EPCIS 2.0 7.4.1.4).
        .join(r, r.leaf_index == func.coalesce(e.error_declared_by, e.leaf_index))
        .where(r.canonical.is_not(None))
    )
    if q.event_types:
        stmt = stmt.where(e.event_type.in_(q.event_types))
    if "GE_eventTime" in q.times:
        stmt = stmt.where(e.event_time_us >= q.times["GE_eventTime"])
    if "LT_eventTime" in q.times:
        stmt = stmt.where(e.event_time_us < q.times["LT_eventTime"])
    if "GE_recordTime" in q.times:
        stmt = stmt.where(r.appended_us >= q.times["GE_recordTime"])
    if "LT_recordTime" in q.times:
        stmt = stmt.where(r.appended_us < q.times["LT_recordTime"])
    for name, values in q.equals.items():
        if name == "EQ_eventID":  # either hash ID finds the event (ledger.epcis.hashid)
            stmt = stmt.where(or_(e.event_id.in_(values), e.stored_event_id.in_(values)))
            continue
        stmt = stmt.where(_EQ_COLUMNS[name].in_(values))
    for name, m in q.matches.items():
        stmt = stmt.where(_match_condition(MATCH_ROLES[name][0], m))
    return stmt


def _token(q: EventQuery, last: int) -> str:
    raw = json.dumps({"v": 1, "q": q.fingerprint(), "after": last}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after(q: EventQuery, token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        after = data["after"]
        ok = (
            data.get("v") == 1
            and type(after) is int
            and 0 <= after < 2**63
            and isinstance(data.get("q"), str)
        )
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        ok = False
    if not ok:
        raise QueryParameterError(f"nextPageToken {token[:40]!r} is not a page token of ours")
    if data["q"] != q.fingerprint():
        raise QueryParameterError(
            "nextPageToken belongs to a different query: repeat the query's parameters with it"
        )
    return int(after)


def query_events(
    store: Store,
    query: EventQuery | Mapping[str, Any],
    *,
    per_page: int | None = None,
    page_token: str | None = None,
) -> QueryPage:
    """Run a query and return one page as an EPCISQueryDocument.

    Pages follow the order the events were logged (recordTime), with keyset paging: the
    token says where the previous page ended, so a page costs the same however deep it is,
    and events captured meanwhile appear on later pages, never twice.

    Args:
        query: an `EventQuery`, or parameters for `parse_query` (which may carry `perPage`
            and `nextPageToken`).
        per_page: page size, overriding `perPage`.
        page_token: `next_page_token` of the previous page, overriding `nextPageToken`.

    Raises:
        QueryParameterError: bad parameters or a token from another query.
    """
    if isinstance(query, EventQuery):
        q, size, token = query, DEFAULT_PER_PAGE, None
    else:
        q, size, token = parse_query(query)
    size = per_page if per_page is not None else size
    if not 1 <= size <= MAX_PER_PAGE:
        raise QueryParameterError(f"perPage: expected 1 to {MAX_PER_PAGE}, got {size}")
    token = page_token if page_token is not None else token
    e = EpcisEventRow
    stmt = _statement(q)
    if token is not None:
        after = _after(q, token)
        stmt = stmt.where(e.leaf_index < after if q.descending else e.leaf_index > after)
    order = e.leaf_index.desc() if q.descending else e.leaf_index.asc()
    stmt = stmt.order_by(order).limit(size + 1)
    with store.reading() as conn:
        rows = conn.execute(stmt).all()[: size + 1]
        more = len(rows) > size
        rows = rows[:size]
        refs = event_refs(conn, [row.leaf_index for row in rows])
    events = [_event_out(row.canonical, row.appended_us) for row in rows]
    next_token = _token(q, rows[-1].leaf_index) if more else None
    return QueryPage(
        document=query_document(events),
        next_page_token=next_token,
        refs=[refs[row.leaf_index] for row in rows],
    )


def _event_out(canonical: bytes, appended_us: int) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(canonical)["payload"]
    # Set by the repository, not the producer (EPCIS 2.0 section 7.4.1); outside the hash ID.
    event["recordTime"] = format_time_us(appended_us)
    return event


def query_document(events: list[dict[str, Any]], *, query_name: str = QUERY_NAME) -> dict[str, Any]:
    """An EPCISQueryDocument holding `events` (each keeps its own `@context`)."""
    return {
        "@context": [DEFAULT_CONTEXT],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": utc_now(),
        "epcisBody": {
            "queryResults": {
                "queryName": query_name,
                "resultsBody": {"eventList": events},
            }
        },
    }


def get_event(store: Store, event_id: str) -> tuple[dict[str, Any], EventRef]:
    """One event by its hash ID: the event as queries return it, and its reference.

    Raises:
        NotFound: no event has this hash ID, or its record was erased.
    """
    page = query_events(store, {"EQ_eventID": [event_id]}, per_page=1)
    events = page.document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    if not events:
        raise NotFound(f"no event with ID {event_id}")
    return events[0], page.refs[0]
