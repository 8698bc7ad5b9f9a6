"""The genealogy's edges as a table (`epcis_edges`), derived from the links at capture.

An edge runs from what went in to what came out (see `ledger.epcis.genealogy`):

- every input/child identifier of a TransformationEvent, AggregationEvent or AssociationEvent
  (not DELETE) to every output/parent identifier of the same event: `other` = `leaf_index`;
- every input of an event to every output of another event with the same transformationID
  (EPCIS 2.0 section 7.4.6): `leaf_index` the first, `other` the second.

Recall walks this table rather than the links: one index range per identifier reached, where
the links cost a dozen probes (the identifier's links by role, each event's type, its other
identifiers by role, the transformationID's other events). Error declarations do not touch it:
readers leave out edges whose `leaf_index` or `other` is declared in error (few events, read
once per query through the index on `epcis_events.error_declared_by`).

`add_edges` runs in `write_index`, inside the transaction that appends the events; the
migration that made the table (0008) and the benchmark's bulk load fill it with
`rebuild_edges`, the same statements over the whole index.
"""

from __future__ import annotations

from sqlalchemy import Connection

_IN = "'input', 'input_class', 'child', 'child_class'"
_OUT = "'output', 'output_class', 'parent'"
_TYPES = "'TransformationEvent', 'AggregationEvent', 'AssociationEvent'"

_INSERT = "INSERT INTO epcis_edges (source, target, relation, leaf_index, other) "

# Edges within one event; `{new}` restricts to the events written now.
DIRECT = (
    "SELECT DISTINCT n.epc, f.epc, CASE e.event_type"
    " WHEN 'TransformationEvent' THEN 'transformation'"
    " WHEN 'AggregationEvent' THEN 'aggregation' ELSE 'association' END,"
    " e.leaf_index, e.leaf_index"
    " FROM epcis_events e"
    f" JOIN epcis_links n ON n.leaf_index = e.leaf_index AND n.role IN ({_IN})"
    f" JOIN epcis_links f ON f.leaf_index = e.leaf_index AND f.role IN ({_OUT})"
    f" WHERE e.event_type IN ({_TYPES}) AND (e.action IS NULL OR e.action <> 'DELETE'){{new}}"
)

# Inputs of one event to outputs of another with the same transformationID.
JOINED = (
    "SELECT DISTINCT n.epc, f.epc, 'transformation', n.leaf_index, f.leaf_index"
    " FROM epcis_links n"
    " JOIN epcis_links x ON x.leaf_index = n.leaf_index AND x.role = 'xform'"
    " JOIN epcis_links y ON y.epc = x.epc AND y.role = 'xform' AND y.leaf_index <> x.leaf_index"
    " JOIN epcis_links f ON f.leaf_index = y.leaf_index AND f.role IN ('output', 'output_class')"
    " WHERE n.role IN ('input', 'input_class'){new}"
)


def add_edges(conn: Connection, first_leaf: int) -> None:
    """Add the edges that the events indexed at `first_leaf` and after make.

    The log is append-only, so the events being written are exactly those at or above the
    first of them: their own edges, and joined edges with events indexed before (each pair
    once: from a new input, or from an old input to a new output).
    """
    lo = int(first_leaf)
    conn.exec_driver_sql(_INSERT + DIRECT.format(new=f" AND e.leaf_index >= {lo}"))
    conn.exec_driver_sql(_INSERT + JOINED.format(new=f" AND n.leaf_index >= {lo}"))
    conn.exec_driver_sql(
        _INSERT + JOINED.format(new=f" AND y.leaf_index >= {lo} AND n.leaf_index < {lo}")
    )


def rebuild_edges(conn: Connection) -> None:
    """Derive the whole table again from the links (after a bulk load of the index)."""
    conn.exec_driver_sql("DELETE FROM epcis_edges")
    conn.exec_driver_sql(_INSERT + DIRECT.format(new=""))
    conn.exec_driver_sql(_INSERT + JOINED.format(new=""))
