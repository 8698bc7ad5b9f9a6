"""Genealogy and recall: where a lot came from, where it went, and what a defect reaches.

The graph is read from the event index, never from payloads. Nodes are identifiers (item
EPCs, lot classes, containers); an edge runs from what went in to what came out:

- TransformationEvent: every input (inputEPCList, inputQuantityList classes) to every output.
  Events that share a `transformationID` form one transformation (EPCIS 2.0 section 7.4.6):
  inputs of one event link to outputs of the others.
- AggregationEvent and AssociationEvent (action ADD or OBSERVE): every child to the parent.
  DELETE undoes containment and makes no edge.

Events declared in error make no edges. Traversal is breadth-first, one SQL statement per hop
for the whole frontier (index range scans on `epcis_links`), so its cost follows the size of
the genealogy, not of the history; identifiers already seen are not expanded twice, so cycles
in bad data end.

Every edge names the events that make it by leaf index, and who asserted them (the participant
that signed each event's record); with `include_observations` the
ObjectEvents about each node (inspections, shipping, ...) come too. `EventRef` carries each
event's leaf index and leaf hash: `ledger.receipts.build_receipt(log, leaf_index, domain)` gives
its receipt, and `ledger.epcis.audit` bundles them for an auditor.

A *finished lot* is an output of a transformation that no transformation consumed: what the
plant made last. Packing it into cases and pallets (aggregation) does not unmake it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Connection,
    and_,
    cast,
    literal_column,
    null,
    or_,
    select,
    union_all,
)

from ledger import collector
from ledger.epcis.index import (
    EDGE_EVENT_TYPES,
    IN_ROLES,
    OUT_ROLES,
    REF_COLUMNS,
    EventRef,
    chunks,
    event_refs,
    generic_plans,
    is_pg,
    one_of,
)
from ledger.epcis.vocab import cbv_name
from ledger.errors import InputError, NotFound
from ledger.store import Store
from ledger.store.models import EpcisEventRow, EpcisLinkRow, RecordRow

Direction = Literal["upstream", "downstream", "both"]

RELATION = {
    "TransformationEvent": "transformation",
    "AggregationEvent": "aggregation",
    "AssociationEvent": "association",
}
OBSERVED_ROLES = ("epc", "epc_class")
MAX_NODES = 200_000


@dataclass(frozen=True, slots=True)
class Edge:
    """`source` went into `target` through `events` (leaf indexes)."""

    source: str
    target: str
    relation: str  # transformation | aggregation | association
    events: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "relation": self.relation,
            "events": list(self.events),
        }


@dataclass
class Genealogy:
    """The part of the graph around `root` that a trace reached."""

    root: str
    nodes: dict[str, int]  # identifier -> hops from root: < 0 upstream, > 0 downstream
    edges: list[Edge]
    events: dict[int, EventRef]  # leaf index -> event, for edges and observations
    observations: dict[str, list[int]] = field(default_factory=dict)  # id -> ObjectEvents
    truncated: bool = False  # a depth or size limit stopped the trace with nodes unexplored

    @property
    def upstream(self) -> list[str]:
        return sorted(
            (n for n, d in self.nodes.items() if d < 0), key=lambda n: (-self.nodes[n], n)
        )

    @property
    def downstream(self) -> list[str]:
        return sorted((n for n, d in self.nodes.items() if d > 0), key=lambda n: (self.nodes[n], n))

    @property
    def depth(self) -> int:
        """Hops to the farthest node reached, either way."""
        return max((abs(d) for d in self.nodes.values()), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "nodes": [
                {"id": n, "hops": d}
                for n, d in sorted(self.nodes.items(), key=lambda x: (x[1], x[0]))
            ],
            "edges": [
                {
                    **e.to_json(),
                    "asserted_by": sorted(
                        {self.events[i].asserted_by for i in e.events if i in self.events}
                    ),
                }
                for e in self.edges
            ],
            "events": [self.events[i].to_json() for i in sorted(self.events)],
            "observations": {n: ids for n, ids in sorted(self.observations.items())},
            "truncated": self.truncated,
        }


# --- one hop, as SQL ---------------------------------------------------------------------------


def _const(*values: str) -> list[Any]:
    """Our own constants, written into the SQL rather than bound: a reused (generic) plan
    then still knows which roles and types it filters on, and keeps to the indexes."""
    return [literal_column("'" + v.replace("'", "''") + "'") for v in values]


@cache
def _hop_statement(downstream: bool, pg: bool) -> Any:
    """Edges between the frontier and its neighbours in one direction.

    Rows: (near, far, event_type, leaf_index, second leaf_index or NULL).
    """
    near_link = EpcisLinkRow.__table__.alias("near")
    far_link = EpcisLinkRow.__table__.alias("far")
    ev = EpcisEventRow.__table__.alias("ev")
    near_roles, far_roles = (IN_ROLES, OUT_ROLES) if downstream else (OUT_ROLES, IN_ROLES)
    live = and_(
        ev.c.event_type.in_(_const(*EDGE_EVENT_TYPES)),
        or_(ev.c.action.is_(None), ev.c.action != _const("DELETE")[0]),
        ev.c.error_declared_by.is_(None),
    )
    direct = (
        select(
            near_link.c.epc.label("near"),
            far_link.c.epc.label("far"),
            ev.c.event_type,
            near_link.c.leaf_index,
            cast(null(), BigInteger).label("other"),
        )
        .select_from(near_link)
        .join(ev, ev.c.leaf_index == near_link.c.leaf_index)
        .join(far_link, far_link.c.leaf_index == near_link.c.leaf_index)
        .where(
            one_of(near_link.c.epc, "frontier", pg),
            near_link.c.role.in_(_const(*near_roles)),
            far_link.c.role.in_(_const(*far_roles)),
            live,
        )
    )
    # Events sharing a transformationID: inputs of one, outputs of another.
    near_x = EpcisLinkRow.__table__.alias("near_x")
    far_x = EpcisLinkRow.__table__.alias("far_x")
    ev2 = EpcisEventRow.__table__.alias("ev2")
    x_near_roles = ("input", "input_class") if downstream else ("output", "output_class")
    x_far_roles = ("output", "output_class") if downstream else ("input", "input_class")
    joined = (
        select(
            near_link.c.epc.label("near"),
            far_link.c.epc.label("far"),
            _const("TransformationEvent")[0].label("event_type"),
            near_link.c.leaf_index,
            far_link.c.leaf_index.label("other"),
        )
        .select_from(near_link)
        .join(
            near_x,
            and_(
                near_x.c.leaf_index == near_link.c.leaf_index, near_x.c.role == _const("xform")[0]
            ),
        )
        .join(
            far_x,
            and_(
                far_x.c.epc == near_x.c.epc,
                far_x.c.role == _const("xform")[0],
                far_x.c.leaf_index != near_x.c.leaf_index,
            ),
        )
        .join(far_link, far_link.c.leaf_index == far_x.c.leaf_index)
        .join(ev, ev.c.leaf_index == near_link.c.leaf_index)
        .join(ev2, ev2.c.leaf_index == far_link.c.leaf_index)
        .where(
            one_of(near_link.c.epc, "frontier", pg),
            near_link.c.role.in_(_const(*x_near_roles)),
            far_link.c.role.in_(_const(*x_far_roles)),
            ev.c.error_declared_by.is_(None),
            ev2.c.error_declared_by.is_(None),
        )
    )
    return union_all(direct, joined)


def _walk(
    conn: Connection,
    start: Iterable[str],
    *,
    downstream: bool,
    max_depth: int | None,
    max_nodes: int,
) -> tuple[dict[str, int], dict[tuple[str, str, str], set[int]], bool]:
    """Breadth-first from `start`, one statement per hop and chunk.

    Returns hops per identifier (>= 0), edges keyed (source, target, relation) with their
    events, and whether a limit stopped the walk with identifiers unexplored.
    """
    hops = dict.fromkeys(start, 0)
    edges: dict[tuple[str, str, str], set[int]] = {}
    frontier = sorted(hops)
    depth = 0
    pg = is_pg(conn)
    hop = _hop_statement(downstream, pg)
    while frontier:
        if max_depth is not None and depth >= max_depth:
            return hops, edges, True
        depth += 1
        found: set[str] = set()
        for chunk in chunks(frontier, pg):
            for near, far, event_type, leaf, other in conn.execute(hop, {"frontier": chunk}):
                key = (near, far) if downstream else (far, near)
                events = edges.setdefault((*key, RELATION[event_type]), set())
                events.add(leaf)
                if other is not None:
                    events.add(other)
                if far not in hops:
                    hops[far] = depth
                    found.add(far)
        if len(hops) > max_nodes:
            return hops, edges, True
        frontier = sorted(found)
    return hops, edges, False


@cache
def _observations_statement(pg: bool) -> Any:
    link, ev = EpcisLinkRow, EpcisEventRow
    return (
        select(link.epc, link.leaf_index)
        .join(ev, ev.leaf_index == link.leaf_index)
        .where(one_of(link.epc, "nodes", pg), link.role.in_(OBSERVED_ROLES))
        .order_by(link.leaf_index)
    )


def _observations(conn: Connection, nodes: Sequence[str]) -> dict[str, list[int]]:
    pg = is_pg(conn)
    stmt = _observations_statement(pg)
    out: dict[str, list[int]] = {}
    for chunk in chunks(sorted(nodes), pg):
        for epc, leaf in conn.execute(stmt, {"nodes": chunk}):
            out.setdefault(epc, []).append(leaf)
    return out


def trace(
    store: Store,
    identifier: str,
    *,
    direction: Direction = "both",
    max_depth: int | None = None,
    include_observations: bool = True,
    max_nodes: int = MAX_NODES,
) -> Genealogy:
    """The genealogy of a lot, item or container.

    Args:
        identifier: an EPC, EPC class (lot) or container ID exactly as events name it.
        direction: `upstream` (what went into it), `downstream` (where it went), or both.
        max_depth: hops to follow each way (None: until nothing new is reached).
        include_observations: also collect the ObjectEvents about every node reached.
        max_nodes: stop (and set `truncated`) beyond this many identifiers each way.

    Raises:
        NotFound: no event mentions `identifier`.
        InputError: an unknown direction.
    """
    if direction not in ("upstream", "downstream", "both"):
        raise InputError(f"direction must be upstream, downstream or both, got {direction!r}")
    with store.reading() as conn:
        generic_plans(conn)
        mentioned = conn.execute(
            select(EpcisLinkRow.leaf_index).where(EpcisLinkRow.epc == identifier).limit(1)
        ).first()
        if mentioned is None:
            raise NotFound(f"no event mentions {identifier}")
        nodes = {identifier: 0}
        edges: dict[tuple[str, str, str], set[int]] = {}
        truncated = False
        ways = {"upstream": (False,), "downstream": (True,), "both": (False, True)}[direction]
        for downstream in ways:
            hops, found, cut = _walk(
                conn, [identifier], downstream=downstream, max_depth=max_depth, max_nodes=max_nodes
            )
            sign = 1 if downstream else -1
            for n, d in hops.items():
                if n not in nodes:
                    nodes[n] = sign * d
            for key, leaves in found.items():
                edges.setdefault(key, set()).update(leaves)
            truncated |= cut
        observations = _observations(conn, list(nodes)) if include_observations else {}
        leaves = {leaf for ls in edges.values() for leaf in ls}
        leaves.update(leaf for ls in observations.values() for leaf in ls)
        refs = event_refs(conn, leaves)
    return Genealogy(
        root=identifier,
        nodes=nodes,
        edges=[Edge(s, t, r, tuple(sorted(ls))) for (s, t, r), ls in sorted(edges.items())],
        events=refs,
        observations=observations,
        truncated=truncated,
    )


def upstream(store: Store, identifier: str, **kwargs: Any) -> Genealogy:
    """What went into `identifier`, through transformations and aggregations (see `trace`)."""
    return trace(store, identifier, direction="upstream", **kwargs)


def downstream(store: Store, identifier: str, **kwargs: Any) -> Genealogy:
    """Where `identifier` went (see `trace`)."""
    return trace(store, identifier, direction="downstream", **kwargs)


# --- recall ------------------------------------------------------------------------------------


@dataclass
class Recall:
    """Everything downstream of the objects a criterion selects, and the finished lots among it."""

    criterion: str
    seeds: list[str]  # the objects the criterion selected
    seed_events: list[EventRef]  # the events that selected them (empty for a given lot)
    reached: dict[str, int]  # every object downstream of a seed (seeds too), hops from nearest
    finished: list[str]  # finished lots among `reached`
    truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "seeds": self.seeds,
            "seed_events": [e.to_json() for e in self.seed_events],
            "finished": self.finished,
            "reached": len(self.reached),
            "truncated": self.truncated,
        }


@cache
def _outputs_statement(pg: bool) -> Any:
    link, ev = EpcisLinkRow, EpcisEventRow
    return (
        select(link.epc)
        .distinct()
        .join(ev, ev.leaf_index == link.leaf_index)
        .where(
            one_of(link.epc, "ids", pg),
            link.role.in_(("output", "output_class")),
            ev.event_type == "TransformationEvent",
            ev.error_declared_by.is_(None),
        )
    )


def _finished(conn: Connection, reached: Collection[str], consumed: set[str]) -> list[str]:
    """Identifiers some live TransformationEvent output and none consumed."""
    pg = is_pg(conn)
    candidates = sorted(set(reached) - consumed)
    out: set[str] = set()
    for chunk in chunks(candidates, pg):
        out.update(epc for (epc,) in conn.execute(_outputs_statement(pg), {"ids": chunk}))
    return sorted(out)


# The benchmark switches this off to time the hop-by-hop walk on the same data.
SET_BASED_RECALL = True
# Recalls from fewer seeds than this are walked hop by hop: from one lot the walk reads a few
# dozen index entries (under 1 ms at a million events), while SQLite plans the recursive
# statement with a Bloom filter over the whole edge table (~40 ms there). Recalls from many
# seeds (a model version, non-conformant material) are where the one statement wins.
SET_BASED_MIN_SEEDS = 16

# An edge is live when neither event that makes it is declared in error (few events, read
# through the index on `error_declared_by`); the statements leave this out when none is.
_DECLARED = "SELECT leaf_index FROM epcis_events WHERE error_declared_by IS NOT NULL"
_LIVE = f" AND g.leaf_index NOT IN ({_DECLARED}) AND g.other NOT IN ({_DECLARED})"


@cache
def _reach_sql(pg: bool, declared: bool) -> str:
    """Every live edge downstream of the seeds, with a row (seed, NULL, NULL) for a seed that
    nothing leaves: one recursive statement over `epcis_edges` (ledger.epcis.edges).

    The recursion's rows are the edges themselves, so UNION keeps each once and a cycle ends,
    and an identifier's edges are read once per edge into it (1.1 per identifier in the
    generated plant), with no second pass to fetch them. The hops and the finished lots come
    from the edges in memory (`_downstream`, `_recall`). Rows: (source, target, relation).
    """
    live = _LIVE if declared else ""
    if pg:
        # One array parameter; the seeds take the identifiers' collation ("C"). LATERAL ...
        # OFFSET 0 keeps each join an index probe per identifier: left to itself, the planner
        # misjudges the work table and hashes all of epcis_edges.
        seeds = 'SELECT unnest(CAST(%(seeds)s AS text[])) COLLATE "C" AS node'
        first = (
            f"SELECT s.node, g.target, g.relation FROM ({seeds}) s LEFT JOIN LATERAL"
            " (SELECT g.target, g.relation FROM epcis_edges g"
            f" WHERE g.source = s.node{live} OFFSET 0) g ON true"
        )
        step = (
            "SELECT g.source, g.target, g.relation FROM e CROSS JOIN LATERAL"
            " (SELECT g.source, g.target, g.relation FROM epcis_edges g"
            f" WHERE g.source = e.target{live} OFFSET 0) g"
        )
    else:
        seeds = "SELECT CAST(value AS TEXT) AS node FROM json_each(?)"
        first = (
            f"SELECT s.node, g.target, g.relation FROM ({seeds}) s"
            f" LEFT JOIN epcis_edges g ON g.source = s.node{live}"
        )
        step = (
            "SELECT g.source, g.target, g.relation FROM e"
            f" JOIN epcis_edges g ON g.source = e.target{live}"
        )
    return (
        f"WITH RECURSIVE e(source, target, relation) AS ({first} UNION {step})"
        " SELECT source, target, relation FROM e"
    )


def _bare_rows(conn: Connection, statement: Any) -> list[tuple[Any, ...]]:
    """A statement's rows from the bare DBAPI cursor, on the transaction's connection: for
    thousands of rows SQLAlchemy's result layer costs as much as the database (no column
    here has a type that converts results)."""
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    args = [params[k] for k in compiled.positiontup] if compiled.positional else params
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), args)
        return list(cursor.fetchall())
    finally:
        cursor.close()


# Rows of the reach statement per round trip on PostgreSQL (libpq 17 and later; before: all).
STREAM_ROWS = 2_000


def _reach(conn: Connection, seeds: list[str]) -> Iterator[tuple[str, str | None, str | None]]:
    """`_reach_sql`'s rows as the database makes them, on the bare DBAPI cursor (at ~100k rows
    SQLAlchemy's result layer costs as much as the database). On PostgreSQL they come in
    chunks while the recursion still runs, so the server's core computes edges while this one
    reads them; the caller must read them all (the connection is busy until then)."""
    pg = is_pg(conn)
    declared = (
        conn.execute(
            select(EpcisEventRow.leaf_index)
            .where(EpcisEventRow.error_declared_by.is_not(None))
            .limit(1)
        ).first()
        is not None
    )
    if pg:
        # Once per recall: JIT compiling costs more than it saves (~0.5 s), and the work
        # table's ~100k identifiers should stay in memory.
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if pg:
            from psycopg import pq

            params: Any = {"seeds": seeds}
            if pq.version() >= 170000:
                yield from cursor.stream(_reach_sql(True, declared), params, size=STREAM_ROWS)
                return
        else:
            params = (json.dumps(seeds),)
        cursor.execute(_reach_sql(pg, declared), params)
        yield from cursor.fetchall()
    finally:
        cursor.close()


def _truncates(hops: dict[str, int], max_nodes: int) -> bool:
    """Whether the breadth-first walk (`_walk`) would stop at `max_nodes` on these distances:
    it checks the count after each hop whose frontier was not empty."""
    per_depth = Counter(hops.values())
    total = per_depth[0]
    depth = 1
    while per_depth[depth - 1]:
        total += per_depth[depth]
        if total > max_nodes:
            return True
        depth += 1
    return False


def _breadth_first(
    seeds: list[str], edges: Iterable[tuple[str, str | None, Any]]
) -> dict[str, int]:
    """Hops from the nearest seed to every identifier the edges reach from the seeds."""
    after: dict[str, list[str]] = {}
    for source, target, _ in edges:
        if target is not None:
            after.setdefault(source, []).append(target)
    hops = dict.fromkeys(seeds, 0)
    frontier = list(hops)
    depth = 0
    while frontier:
        depth += 1
        found = []
        for node in frontier:
            for target in after.get(node, ()):
                if target not in hops:
                    hops[target] = depth
                    found.append(target)
        frontier = found
    return hops


def _downstream(
    seeds: list[str], rows: Iterable[tuple[str, str | None, str | None]]
) -> tuple[dict[str, int], set[str], set[str]]:
    """Hops from the nearest seed, and the identifiers that live transformations made and
    consumed, from the reach statement's rows in one pass.

    Both databases evaluate the recursion a round at a time (PostgreSQL in rounds, SQLite
    from a first-in-first-out queue), so the edges arrive breadth first and the first edge
    into an identifier comes from a nearest one: its hops are that edge's source's plus one.
    The pass checks this of every edge rather than trusting it (the source already has hops,
    and the edge offers no shorter way to the target than it was given); together with every
    distance being a path's length, that makes the distances exact. Rows in any other order
    are answered by a breadth-first search over all of them (`_breadth_first`).
    """
    hops = dict.fromkeys(seeds, 0)
    made: set[str] = set()
    consumed: set[str] = set()
    edges = []
    in_order = True
    for edge in rows:
        edges.append(edge)
        source, target, relation = edge
        if target is None:
            continue  # a seed that nothing leaves
        if relation == "transformation":
            consumed.add(source)
            made.add(target)
        if in_order:
            near = hops.get(source)
            far = hops.get(target)
            if near is None or (far is not None and far > near + 1):
                in_order = False
            elif far is None:
                hops[target] = near + 1
    if not in_order:
        hops = _breadth_first(seeds, edges)
    return hops, made, consumed


def _recall(
    conn: Connection,
    criterion: str,
    seeds: list[str],
    seed_events: list[EventRef],
    max_nodes: int,
) -> Recall:
    """Set-based: one statement (`_reach_sql`) for the edges downstream of the seeds, read as
    it runs; hops from their order (`_downstream`). Finished: not the source of a live
    transformation edge, and the target of one (an output of a live transformation) or, for
    the few left (cases, pallets, seeds), an output by the links (`_finished`). The
    hop-by-hop walk answers instead for few seeds (`SET_BASED_MIN_SEEDS`) and when a limit
    cuts the recall short (its `max_nodes` semantics, exactly)."""
    if not (SET_BASED_RECALL and len(seeds) >= SET_BASED_MIN_SEEDS):
        return _recall_by_hops(conn, criterion, seeds, seed_events, max_nodes)
    hops, made, consumed = _downstream(seeds, _reach(conn, seeds))
    if _truncates(hops, max_nodes):
        return _recall_by_hops(conn, criterion, seeds, seed_events, max_nodes)
    unsure = hops.keys() - made
    unsure -= consumed
    generic_plans(conn)  # the index probe per identifier, not a plan for the array's values
    finished = (made - consumed).union(_finished(conn, unsure, set()))
    return Recall(
        criterion=criterion,
        seeds=seeds,
        seed_events=seed_events,
        reached=hops,
        finished=sorted(finished),
    )


def _recall_by_hops(
    conn: Connection,
    criterion: str,
    seeds: list[str],
    seed_events: list[EventRef],
    max_nodes: int,
) -> Recall:
    """Breadth-first, one statement per hop over the links (`_walk`), then the finished lots
    among what it reached: the reference for `_recall`, and its answer past the limits."""
    generic_plans(conn)  # after the seeds: their one statement wants a custom plan
    hops, edges, cut = _walk(conn, seeds, downstream=True, max_depth=None, max_nodes=max_nodes)
    consumed = {s for (s, _, r) in edges if r == "transformation"}
    return Recall(
        criterion=criterion,
        seeds=seeds,
        seed_events=seed_events,
        reached=hops,
        finished=_finished(conn, list(hops), consumed),
        truncated=cut,
    )


def _seeds_of(
    conn: Connection, where: Any, asserted_by: Collection[str] | None = None
) -> tuple[list[str], list[EventRef]]:
    """The identifiers the selected events observe, and the events: one statement."""
    link, ev = EpcisLinkRow, EpcisEventRow
    q = (
        select(link.epc, *REF_COLUMNS)
        .join(ev, ev.leaf_index == link.leaf_index)
        .join(RecordRow, RecordRow.leaf_index == ev.leaf_index)
        .where(where, ev.error_declared_by.is_(None), link.role.in_(OBSERVED_ROLES))
    )
    if asserted_by is not None:
        q = q.where(RecordRow.participant.in_(sorted(asserted_by)))
    seeds: set[str] = set()
    refs: dict[int, EventRef] = {}
    for epc, *ref in _bare_rows(conn, q):  # ~8,000 rows for a plant's recall
        seeds.add(epc)
        if ref[1] not in refs:  # the leaf index
            refs[ref[1]] = EventRef(*ref)  # REF_COLUMNS is in its fields' order
    return sorted(seeds), [refs[i] for i in sorted(refs)]


def recall_from_lot(store: Store, lot: str, *, max_nodes: int = MAX_NODES) -> Recall:
    """Finished lots containing material from `lot` (a supplier's lot, say).

    Raises:
        NotFound: no event mentions `lot`.
    """
    with store.reading() as conn:
        if (
            conn.execute(select(EpcisLinkRow.epc).where(EpcisLinkRow.epc == lot).limit(1)).first()
            is None
        ):
            raise NotFound(f"no event mentions {lot}")
        return _recall(conn, f"material from {lot}", [lot], [], max_nodes)


def recall_by_model(
    store: Store,
    model_manifest_digest: str,
    *,
    asserted_by: Collection[str] | None = None,
    max_nodes: int = MAX_NODES,
) -> Recall:
    """Finished lots judged, themselves or upstream, by events citing this model manifest
    (`fp:modelManifestDigest`, see `ledger.epcis.export`), asserted by one of `asserted_by`
    (default: by anyone)."""
    with store.reading() as conn, collector.paused():
        seeds, events = _seeds_of(
            conn, EpcisEventRow.model_digest == model_manifest_digest, asserted_by
        )
        return _recall(conn, f"judged by model {model_manifest_digest}", seeds, events, max_nodes)


def recall_nonconformant(
    store: Store,
    *,
    dispositions: Sequence[str] = ("non_conformant",),
    biz_step: str = "inspecting",
    since_us: int | None = None,
    until_us: int | None = None,
    asserted_by: Collection[str] | None = None,
    max_nodes: int = MAX_NODES,
) -> Recall:
    """Finished lots with an inspection of the given disposition on them or upstream.

    Args:
        dispositions: which outcomes count (CBV names or URIs, e.g. `vocab.NEEDS_REVIEW`).
        since_us, until_us: only inspections with eventTime in [since, until).
        asserted_by: only inspections signed by these participants (default: anyone's).
    """
    ev = EpcisEventRow
    names = [cbv_name("disposition", d) for d in dispositions]
    where = and_(ev.biz_step == cbv_name("bizStep", biz_step), ev.disposition.in_(names))
    if since_us is not None:
        where = and_(where, ev.event_time_us >= since_us)
    if until_us is not None:
        where = and_(where, ev.event_time_us < until_us)
    with store.reading() as conn, collector.paused():
        seeds, events = _seeds_of(conn, where, asserted_by)
        label = f"{biz_step} with disposition {' or '.join(names)} upstream"
        return _recall(conn, label, seeds, events, max_nodes)
