"""The event index: what of each event the queries and the genealogy read, as rows.

`index_entry` is pure (event JSON in, fields and identifier links out); `write_index` adds the
rows inside the caller's transaction, the one that appends the events' records, so the log and
its index never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ARRAY, BigInteger, ColumnElement, Connection, String, any_, bindparam, select

from ledger.epcis.edges import add_edges
from ledger.epcis.vocab import FP_NAMESPACE, cbv_name, extension, format_time_us, time_us
from ledger.store.models import EpcisEventRow, RecordRow

# Roles on the consuming side of a genealogy edge, and on the producing side.
IN_ROLES = ("input", "input_class", "child", "child_class")
OUT_ROLES = ("output", "output_class", "parent")
EDGE_EVENT_TYPES = ("TransformationEvent", "AggregationEvent", "AssociationEvent")

_LIST_ROLES = (
    ("epcList", "epc"),
    ("childEPCs", "child"),
    ("inputEPCList", "input"),
    ("outputEPCList", "output"),
)
_QUANTITY_ROLES = (
    ("quantityList", "epc_class"),
    ("childQuantityList", "child_class"),
    ("inputQuantityList", "input_class"),
    ("outputQuantityList", "output_class"),
)

_LIST_ROLE = dict(_LIST_ROLES)
_QUANTITY_ROLE = dict(_QUANTITY_ROLES)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """The indexed fields of one event."""

    event_type: str
    event_time_us: int
    action: str | None
    biz_step: str | None
    disposition: str | None
    read_point: str | None
    biz_location: str | None
    model_digest: str | None
    links: tuple[tuple[str, str], ...]  # (role, identifier), sorted, no duplicates


def index_entry(event: Mapping[str, Any], context: Any = None) -> IndexEntry:
    """The index fields and identifier links of a schema-valid event.

    Args:
        event: one EPCIS event as JSON.
        context: the `@context` it arrived under, when it carries none itself (resolves the
            prefix of forgeproof's `modelManifestDigest` extension).
    """
    links: set[tuple[str, str]] = set()
    # One pass over the event's fields (a dozen), not one lookup per role.
    for field, value in event.items():
        role = _LIST_ROLE.get(field)
        if role is not None:
            for epc in value or ():
                links.add((role, epc))
            continue
        role = _QUANTITY_ROLE.get(field)
        if role is not None:
            for q in value or ():
                links.add((role, q["epcClass"]))
    if event.get("parentID"):
        links.add(("parent", event["parentID"]))
    if event.get("transformationID"):
        links.add(("xform", event["transformationID"]))
    # The extension's key ends in its local name whatever prefix (or none) names it.
    digest = (
        extension(event, FP_NAMESPACE, "modelManifestDigest", context)
        if any(k.endswith("modelManifestDigest") for k in event)
        else None
    )
    return IndexEntry(
        event_type=str(event["type"]),
        event_time_us=time_us(event["eventTime"]),
        action=event.get("action"),
        biz_step=cbv_name("bizStep", event["bizStep"]) if event.get("bizStep") else None,
        disposition=(
            cbv_name("disposition", event["disposition"]) if event.get("disposition") else None
        ),
        read_point=(event.get("readPoint") or {}).get("id"),
        biz_location=(event.get("bizLocation") or {}).get("id"),
        model_digest=digest if isinstance(digest, str) else None,
        links=tuple(sorted(links)),
    )


_EVENT_COLUMNS = (
    "leaf_index, event_id, stored_event_id, event_type, event_time_us, action, biz_step,"
    " disposition, read_point, biz_location, model_digest, error_declared_by"
)
_INSERT_EVENT = (
    f"INSERT INTO epcis_events ({_EVENT_COLUMNS})"
    " VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
_INSERT_LINK = "INSERT INTO epcis_links (epc, role, leaf_index) VALUES ({p}, {p}, {p})"


def event_row(
    leaf_index: int,
    event_id: str,
    e: IndexEntry,
    error_declared_by: int | None = None,
    stored_event_id: str | None = None,
) -> tuple[object, ...]:
    return (
        leaf_index,
        event_id,
        stored_event_id or event_id,
        e.event_type,
        e.event_time_us,
        e.action,
        e.biz_step,
        e.disposition,
        e.read_point,
        e.biz_location,
        e.model_digest,
        error_declared_by,
    )


def link_rows(leaf_index: int, e: IndexEntry) -> Iterable[tuple[str, str, int]]:
    return ((epc, role, leaf_index) for role, epc in e.links)


def write_index(
    conn: Connection, entries: Sequence[tuple[int, str, str, IndexEntry, int | None]]
) -> None:
    """Insert index rows for `(leaf_index, event_id, stored_event_id, entry,
    error_declared_by)` in one go."""
    if not entries:
        return
    events = [event_row(i, eid, e, err, sid) for i, eid, sid, e, err in entries]
    links = [row for i, _, _, e, _ in entries for row in link_rows(i, e)]
    if is_pg(conn) and conn.dialect.driver == "psycopg":
        # COPY on the transaction's own connection (psycopg 3, the driver this project
        # depends on), where executemany sends a statement per row: 42 -> 33 us an event for
        # the index rows, links and edges (docs/epcis.md, capture).
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            _copy(cur, "epcis_events", _EVENT_COLUMNS, events)
            _copy(cur, "epcis_links", "epc, role, leaf_index", links)
        finally:
            cur.close()
    else:
        # Driver-level executemany, as the log does for records: no per-value ORM processing.
        p = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(_INSERT_EVENT.format(p=p), events)
        if links:
            conn.exec_driver_sql(_INSERT_LINK.format(p=p), links)
    if links:
        add_edges(conn, min(i for i, *_ in entries))  # the genealogy's edges table


def _copy(cur: Any, table: str, columns: str, rows: Sequence[tuple[object, ...]]) -> None:
    if rows:
        with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


@dataclass(frozen=True, slots=True)
class EventRef:
    """An indexed event and where its record is: enough to fetch it or build its receipt
    (`ledger.receipts.build_receipt(log, leaf_index, domain)`)."""

    event_id: str  # the reference implementation's, on the event as captured
    leaf_index: int
    leaf_hash: bytes
    event_type: str
    event_time_us: int
    action: str | None
    biz_step: str | None
    disposition: str | None
    model_digest: str | None
    error_declared_by: int | None  # leaf index of the record declaring this event in error
    asserted_by: str  # the participant that signed the event's record
    stored_event_id: str = ""  # the hash ID of the stored event (keys sorted); "" = event_id

    def to_json(self) -> dict[str, Any]:
        return {
            "eventID": self.event_id,
            "leaf_index": self.leaf_index,
            "leaf_hash": "0x" + self.leaf_hash.hex(),
            "type": self.event_type,
            "eventTime": format_time_us(self.event_time_us),
            "action": self.action,
            "bizStep": self.biz_step,
            "disposition": self.disposition,
            "model_manifest_digest": self.model_digest,
            "error_declared_by": self.error_declared_by,
            "asserted_by": self.asserted_by,
            "storedEventID": self.stored_event_id or self.event_id,
        }


def one_of(column: Any, name: str, pg: bool) -> ColumnElement[bool]:
    """`column` equals one of the values bound as `name`, the way each database does best.

    PostgreSQL: `= ANY(:name)` with one array parameter, so the statement's text is the same
    however many values there are; psycopg then prepares it once per connection, and plans
    (a few ms for a genealogy hop, 20 times its execution) are not redone on every call.
    SQLite: an expanding `IN (...)`, where planning costs next to nothing.
    """
    if pg:
        element = String() if isinstance(column.type, String) else BigInteger()
        return column == any_(bindparam(name, type_=ARRAY(element)))
    result: ColumnElement[bool] = column.in_(bindparam(name, expanding=True))
    return result


def is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def generic_plans(conn: Connection) -> None:
    """On PostgreSQL, let this transaction reuse one plan per prepared statement.

    Genealogy runs the same few index-driven statements hop after hop. PostgreSQL would
    re-plan each with its parameters ("custom plans"), which for a hop costs ten times the
    execution (measured: ~2.5 ms planning against ~0.2 ms executing). The generic plan of
    these statements is the same index walk, so planning once is safe. `SET LOCAL` ends with
    the transaction; the pooled connection comes back as it was.
    """
    if is_pg(conn):
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")


def chunks(items: Sequence[Any], pg: bool) -> Iterable[list[Any]]:
    """Slices small enough for SQLite's bound-parameter limit; PostgreSQL takes an array."""
    size = PG_CHUNK if pg else CHUNK
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


CHUNK = 500
PG_CHUNK = 50_000


# What an `EventRef` is read from (events joined with their records), in its fields' order.
REF_COLUMNS = (
    EpcisEventRow.event_id,
    EpcisEventRow.leaf_index,
    RecordRow.leaf_hash,
    EpcisEventRow.event_type,
    EpcisEventRow.event_time_us,
    EpcisEventRow.action,
    EpcisEventRow.biz_step,
    EpcisEventRow.disposition,
    EpcisEventRow.model_digest,
    EpcisEventRow.error_declared_by,
    RecordRow.participant,
    EpcisEventRow.stored_event_id,
)


@cache
def _refs(pg: bool) -> Any:
    return (
        select(*REF_COLUMNS)
        .join(RecordRow, RecordRow.leaf_index == EpcisEventRow.leaf_index)
        .where(one_of(EpcisEventRow.leaf_index, "leaves", pg))
    )


def event_refs(conn: Connection, leaves: Iterable[int]) -> dict[int, EventRef]:
    """The indexed events at these leaf indexes (those not indexed are left out)."""
    wanted = sorted(set(leaves))
    out: dict[int, EventRef] = {}
    pg = is_pg(conn)
    for chunk in chunks(wanted, pg):
        for row in conn.execute(_refs(pg), {"leaves": chunk}).all():
            out[row.leaf_index] = EventRef(*row)  # REF_COLUMNS is in its fields' order
    return out
