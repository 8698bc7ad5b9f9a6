"""Genealogy and recall on the generated plant, checked against what the generator made."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from ledger.epcis import genealogy
from ledger.epcis.genealogy import (
    downstream,
    recall_by_model,
    recall_from_lot,
    recall_nonconformant,
    trace,
    upstream,
)
from ledger.epcis.vocab import NEEDS_REVIEW
from ledger.errors import InputError, NotFound
from ledger.store import Store
from tests.ledger.epcis.conftest import SMALL_PLANT, CapturedPlant, Repo


def _hops(start: str, step: dict[str, list[str]]) -> dict[str, int]:
    """Breadth-first distances: the reference for the SQL traversal."""
    seen = {start: 0}
    queue = deque([start])
    while queue:
        n = queue.popleft()
        for m in step.get(n, []):
            if m not in seen:
                seen[m] = seen[n] + 1
                queue.append(m)
    return seen


def _graph(plant: CapturedPlant) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(product -> what went in, thing -> where it went), from the generator's facts."""
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    facts = plant.facts
    links = [(i, o) for o, ins in facts.inputs.items() for i in ins]
    links += list(facts.case_of.items()) + list(facts.pallet_of.items())
    for src, dst in links:
        up.setdefault(dst, []).append(src)
        down.setdefault(src, []).append(dst)
    return up, down


@pytest.fixture
def statements(plant: CapturedPlant) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = plant.repo.store.engine
    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


def test_upstream_of_every_finished_lot(plant: CapturedPlant, statements: list[str]) -> None:
    up, _ = _graph(plant)
    widest = 0
    for lot in plant.facts.finished:
        statements.clear()
        g = upstream(plant.repo.store, lot)
        want = _hops(lot, up)
        assert {n: -d for n, d in want.items()} == g.nodes
        assert g.depth == SMALL_PLANT.stages and not g.truncated
        # One statement per hop for the whole frontier (+ plan setting, existence,
        # observations, refs), however many nodes each hop reaches.
        assert len(statements) <= SMALL_PLANT.stages + 5
        widest = max(widest, len(g.nodes))
        inputs = {(i, o) for o, ins in plant.facts.inputs.items() for i in ins}
        for e in g.edges:
            assert e.relation == "transformation" and (e.source, e.target) in inputs
            (leaf,) = e.events
            made = plant.events[leaf]  # captured in one document: leaf = position
            assert made["type"] == "TransformationEvent"
            assert e.target in [q["epcClass"] for q in made["outputQuantityList"]]
            assert g.events[leaf].leaf_hash == plant.repo.log.get(leaf).leaf_hash
    assert widest > SMALL_PLANT.stages + 5  # more nodes than statements


def test_downstream_of_supplier_lots(plant: CapturedPlant) -> None:
    _, down = _graph(plant)
    for raw in plant.facts.raw_lots:
        g = downstream(plant.repo.store, raw)
        assert _hops(raw, down) == g.nodes
        relations = {e.relation for e in g.edges}
        assert relations <= {"transformation", "aggregation"}
        pallets = set(plant.facts.pallet_of.values())
        assert any(n in pallets for n in g.nodes)  # down to the pallets that shipped


def test_both_ways_limits_and_observations(plant: CapturedPlant) -> None:
    lot = plant.facts.runs[3][1]  # a stage-2 lot in the middle of the history
    g = trace(plant.repo.store, lot)
    assert min(g.nodes.values()) == -2 and max(g.nodes.values()) > 0
    assert set(g.upstream) == {n for n, d in g.nodes.items() if d < 0}
    # every node the plant inspected has its inspection among the observations
    for node in g.nodes:
        if node in plant.facts.inspected:
            kinds = [g.events[leaf].biz_step for leaf in g.observations[node]]
            assert "inspecting" in kinds
    edge_leaves = {leaf for e in g.edges for leaf in e.events}
    assert edge_leaves <= set(g.events)
    short = trace(plant.repo.store, lot, max_depth=1, include_observations=False)
    assert short.truncated and set(short.nodes.values()) <= {-1, 0, 1}
    assert short.observations == {}
    assert set(short.nodes) < set(g.nodes)


def test_unknown_identifiers_and_directions(plant: CapturedPlant) -> None:
    with pytest.raises(NotFound, match=r"no event mentions urn:epc:id:sgtin:1\.2\.3"):
        trace(plant.repo.store, "urn:epc:id:sgtin:1.2.3")
    with pytest.raises(NotFound):
        recall_from_lot(plant.repo.store, "urn:epc:id:sgtin:1.2.3")
    with pytest.raises(InputError, match="direction"):
        trace(plant.repo.store, plant.facts.finished[0], direction="sideways")  # type: ignore[arg-type]


def _finished_with(plant: CapturedPlant, bad: set[str]) -> list[str]:
    up, _ = _graph(plant)
    return sorted(lot for lot in plant.facts.finished if set(_hops(lot, up)) & bad)


def test_recalls_agree_with_the_generators_facts(plant: CapturedPlant) -> None:
    store = plant.repo.store
    inspected = plant.facts.inspected
    raw = sorted(plant.facts.raw_lots)[1]
    r = recall_from_lot(store, raw)
    assert r.finished == _finished_with(plant, {raw}) and r.finished
    assert r.seeds == [raw] and r.reached[raw] == 0

    by_model = recall_by_model(store, SMALL_PLANT.rare_model)
    judged = {lot for lot, (model, _) in inspected.items() if model == SMALL_PLANT.rare_model}
    assert judged and by_model.seeds == sorted(judged)
    assert by_model.finished == _finished_with(plant, judged)
    assert all(e.model_digest == SMALL_PLANT.rare_model for e in by_model.seed_events)

    bad = recall_nonconformant(store)
    failed = {lot for lot, (_, disp) in inspected.items() if disp == "non_conformant"}
    assert failed and bad.seeds == sorted(failed)
    assert bad.finished == _finished_with(plant, failed)
    review = recall_nonconformant(store, dispositions=[NEEDS_REVIEW])
    flagged = {lot for lot, (_, disp) in inspected.items() if disp == NEEDS_REVIEW}
    assert review.finished == _finished_with(plant, flagged)
    assert recall_by_model(store, "0x" + "00" * 32).finished == []


def test_recall_reads_rows_in_chunks_or_at_once(
    plant: CapturedPlant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the reach statement's rows stream in chunks (libpq 17 and later) or come
    all at once (earlier): the same recall either way, and the connection usable after."""
    from psycopg import pq

    store = plant.repo.store
    monkeypatch.setattr(genealogy, "STREAM_ROWS", 7)  # many chunks on the small plant
    monkeypatch.setattr(genealogy, "SET_BASED_MIN_SEEDS", 1)
    chunked = recall_nonconformant(store)
    monkeypatch.setattr(pq, "version", lambda: 160000)
    assert recall_nonconformant(store) == chunked and chunked.finished
    assert recall_by_model(store, SMALL_PLANT.rare_model).finished


# --- shapes the plant does not make ------------------------------------------------------------

CONTEXT = ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"]


def _doc(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-02-01T00:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def _at(minute: int, kind: str, **fields: Any) -> dict[str, Any]:
    t = f"2026-02-01T10:{minute:02d}:00Z"
    return {"type": kind, "eventTime": t, "eventTimeZoneOffset": "+00:00", **fields}


def _lot(n: int) -> str:
    return f"urn:epc:class:lgtin:4012345.000777.L{n}"


def test_transformation_ids_deletes_associations_and_cycles(repo: Repo) -> None:
    xid = "urn:epc:id:gdti:4012345.00001.77"
    box, asset = "urn:epc:id:sscc:4012345.0000000777", "urn:epc:id:giai:4012345.PUMP1"
    repo.capture(
        _doc(
            # One transformation in two events joined by transformationID.
            _at(0, "TransformationEvent", transformationID=xid,
                inputQuantityList=[{"epcClass": _lot(1)}]),
            _at(5, "TransformationEvent", transformationID=xid,
                outputQuantityList=[{"epcClass": _lot(2)}]),
            # Packed, then unpacked: DELETE makes no edge.
            _at(6, "AggregationEvent", parentID=box, childQuantityList=[{"epcClass": _lot(2)}],
                action="ADD"),
            _at(7, "AggregationEvent", parentID="urn:epc:id:sscc:4012345.0000000778",
                childQuantityList=[{"epcClass": _lot(2)}], action="DELETE"),
            # A part associated with a machine.
            _at(8, "AssociationEvent", parentID=asset, childEPCs=[box], action="ADD"),
            # Bad data: a loop back to lot 1.
            _at(9, "TransformationEvent", inputQuantityList=[{"epcClass": _lot(2)}],
                outputQuantityList=[{"epcClass": _lot(1)}]),
        )
    )  # fmt: skip
    g = downstream(repo.store, _lot(1))
    edges = {(e.source, e.target, e.relation, e.events) for e in g.edges}
    assert (_lot(1), _lot(2), "transformation", (0, 1)) in edges
    assert (_lot(2), box, "aggregation", (2,)) in edges
    assert (box, asset, "association", (4,)) in edges
    assert "urn:epc:id:sscc:4012345.0000000778" not in g.nodes
    assert g.nodes == {_lot(1): 0, _lot(2): 1, box: 2, asset: 3}  # the loop ended
    assert upstream(repo.store, _lot(2)).nodes == {_lot(2): 0, _lot(1): -1}


def test_events_declared_in_error_make_no_edges(repo: Repo) -> None:
    made = _at(0, "TransformationEvent", inputQuantityList=[{"epcClass": _lot(1)}],
               outputQuantityList=[{"epcClass": _lot(2)}])  # fmt: skip
    repo.capture(_doc(made))
    assert upstream(repo.store, _lot(2)).nodes == {_lot(2): 0, _lot(1): -1}
    retracted = {
        **made,
        "errorDeclaration": {"declarationTime": "2026-02-02T00:00:00Z", "reason": "incorrect_data"},
    }
    assert not repo.capture(_doc(retracted)).events[0].duplicate
    g = upstream(repo.store, _lot(2))
    assert g.nodes == {_lot(2): 0} and g.edges == []


def test_traversal_reads_the_index_not_payloads(
    plant: CapturedPlant, statements: list[str]
) -> None:
    trace(plant.repo.store, plant.facts.finished[-1], include_observations=False)
    reads = " ".join(statements)
    assert "epcis_links" in reads and "canonical" not in reads


def test_store_fixture_is_untouched(plant: CapturedPlant) -> None:
    assert isinstance(plant.repo.store, Store) and plant.result.new == len(plant.events)


# --- set-based recall against a plain traversal, on random genealogies ------------------------


def _random_history(seed: int) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """Transformations (some split in two events by a transformationID, some feeding back:
    cycles), packing and unpacking, non-conformant inspections, and the edges they make
    as (source, target, relation), for a reference traversal."""
    rng = random.Random(seed)
    lots = [f"urn:epc:class:lgtin:4012345.000888.S{seed}L{i}" for i in range(40)]
    boxes = [f"urn:epc:id:sscc:4012345.{seed:03d}00000{i:02d}" for i in range(6)]
    events: list[dict[str, Any]] = []
    edges: list[tuple[str, str, str]] = []
    second = 0

    def at(kind: str, **fields: Any) -> dict[str, Any]:
        nonlocal second
        second += 1
        t = f"2026-03-01T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
        return {"type": kind, "eventTime": t, "eventTimeZoneOffset": "+00:00", **fields}

    def q(ids: list[str]) -> list[dict[str, Any]]:
        return [{"epcClass": i} for i in ids]

    for n in range(45):
        k = rng.randrange(len(lots) - 1)
        ins = rng.sample(lots[: k + 1], min(k + 1, rng.randint(1, 3)))
        outs = rng.sample(lots[k + 1 :], min(len(lots) - k - 1, rng.randint(1, 2)))
        if rng.random() < 0.1:  # bad data: an output fed back upstream
            ins, outs = outs, ins
        if rng.random() < 0.2:
            xid = f"urn:epc:id:gdti:4012345.00002.{seed}{n}"
            events.append(at("TransformationEvent", transformationID=xid, inputQuantityList=q(ins)))
            events.append(
                at("TransformationEvent", transformationID=xid, outputQuantityList=q(outs))
            )
        else:
            events.append(
                at("TransformationEvent", inputQuantityList=q(ins), outputQuantityList=q(outs))
            )
        edges += [(i, o, "transformation") for i in ins for o in outs]
    for box in boxes:
        packed = rng.sample(lots, 3)
        action = rng.choice(["ADD", "ADD", "DELETE"])
        events.append(
            at("AggregationEvent", parentID=box, childQuantityList=q(packed), action=action)
        )
        if action == "ADD":
            edges += [(lot, box, "aggregation") for lot in packed]
    for lot in rng.sample(lots, 6):
        events.append(at("ObjectEvent", action="OBSERVE", bizStep="inspecting",
                         disposition="non_conformant", quantityList=q([lot])))  # fmt: skip
    return events, edges


def _reference(seeds: list[str], edges: list[tuple[str, str, str]], outputs: set[str]) -> Any:
    down: dict[str, list[str]] = {}
    for s, t, _ in edges:
        down.setdefault(s, []).append(t)
    reached: dict[str, int] = {}
    for seed in seeds:
        for n, d in _hops(seed, down).items():
            reached[n] = min(d, reached.get(n, d))
    consumed = {s for s, _, r in edges if r == "transformation"}
    return reached, sorted(n for n in reached if n in outputs and n not in consumed)


@pytest.mark.parametrize(("seed", "declare"), [(1, True), (2, True), (3, True), (4, False)])
def test_set_based_recall_matches_a_plain_traversal(
    repo: Repo, seed: int, declare: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    events, edges = _random_history(seed)
    repo.capture(_doc(*events))
    live = events
    if declare:
        # One transformation declared in error: its edges go, in both implementations (the
        # statement checks liveness only when some event is declared: both ways are run).
        retracted = next(
            e for e in events if "transformationID" not in e and "inputQuantityList" in e
        )
        declaration = {"declarationTime": "2026-03-02T00:00:00Z", "reason": "incorrect_data"}
        repo.capture(_doc({**retracted, "errorDeclaration": declaration}))
        gone = {
            (i["epcClass"], o["epcClass"], "transformation")
            for i in retracted["inputQuantityList"]
            for o in retracted["outputQuantityList"]
        }
        live = [e for e in events if e is not retracted]
        edges = [e for e in edges if e not in gone or _made_elsewhere(e, live)]
    outputs = {o["epcClass"] for e in live for o in e.get("outputQuantityList", [])}

    walked = {"n": 0, "of": 0}
    walk = genealogy._recall_by_hops

    def counted(*args: Any) -> Any:
        walked["n"] += 1
        return walk(*args)

    monkeypatch.setattr(genealogy, "SET_BASED_MIN_SEEDS", 1)  # one lot too, to compare
    searched = {"n": 0}
    search = genealogy._breadth_first

    def fallback(*args: Any) -> Any:
        searched["n"] += 1
        return search(*args)

    monkeypatch.setattr(genealogy, "_breadth_first", fallback)

    def both(call: Any) -> tuple[Any, Any]:
        monkeypatch.setattr(genealogy, "SET_BASED_RECALL", True)
        monkeypatch.setattr(genealogy, "_recall_by_hops", counted)
        new = call()
        walked["of"] += 1
        monkeypatch.setattr(genealogy, "_recall_by_hops", walk)
        monkeypatch.setattr(genealogy, "SET_BASED_RECALL", False)
        old = call()
        return new, old

    store = repo.store
    new, old = both(lambda: recall_nonconformant(store))
    assert new == old and new.seeds and not new.truncated
    assert (new.reached, new.finished) == _reference(new.seeds, edges, outputs)
    lots = sorted({s for s, _, _ in edges})
    for lot in random.Random(seed).sample(lots, 8):
        new, old = both(lambda lot=lot: recall_from_lot(store, lot))
        assert new == old
        assert (new.reached, new.finished) == _reference([lot], edges, outputs)
    # The node limit cuts both at the same hop, with the same answer.
    for limit in (1, 3, 8, 20):
        new, old = both(lambda limit=limit: recall_nonconformant(store, max_nodes=limit))
        assert new == old
    # The set-based statement answered all but the cut recalls (cycles included), and the
    # database gave its rows breadth first every time (the one-pass distances held).
    assert walked["n"] <= 4, walked
    assert searched["n"] == 0


def _made_elsewhere(edge: tuple[str, str, str], events: list[dict[str, Any]]) -> bool:
    """Whether another live transformation event makes this edge too."""
    s, t, _ = edge
    return any(
        s in {i["epcClass"] for i in e.get("inputQuantityList", [])}
        and t in {o["epcClass"] for o in e.get("outputQuantityList", [])}
        for e in events
        if "transformationID" not in e
    )


def test_set_based_recall_ends_cycles(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recursion keeps identifiers alone, so a cycle ends: the statement answers it."""
    monkeypatch.setattr(genealogy, "SET_BASED_MIN_SEEDS", 1)

    def no_walk(*args: Any) -> Any:
        raise AssertionError("the walk answered")

    monkeypatch.setattr(genealogy, "_recall_by_hops", no_walk)
    loop = [
        _at(0, "TransformationEvent", inputQuantityList=[{"epcClass": _lot(1)}],
            outputQuantityList=[{"epcClass": _lot(2)}]),
        _at(1, "TransformationEvent", inputQuantityList=[{"epcClass": _lot(2)}],
            outputQuantityList=[{"epcClass": _lot(1)}, {"epcClass": _lot(3)}]),
    ]  # fmt: skip
    repo.capture(_doc(*loop))
    r = recall_from_lot(repo.store, _lot(1))
    assert r.reached == {_lot(1): 0, _lot(2): 1, _lot(3): 2} and r.finished == [_lot(3)]


def _rounds(seeds: list[str], edges: list[tuple[str, str, str]]) -> list[tuple[Any, Any, Any]]:
    """The reach statement's rows as a database evaluating it round by round gives them: the
    seeds' edges (or a bare row for a seed nothing leaves), then each round's targets' edges,
    each edge once."""
    out_of: dict[str, list[tuple[str, str, str]]] = {}
    for e in edges:
        out_of.setdefault(e[0], []).append(e)
    rows: list[tuple[Any, Any, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    round_ = [e for s in seeds for e in out_of.get(s, [])]
    rows += [(s, None, None) for s in seeds if s not in out_of]
    while round_:
        new = [e for e in dict.fromkeys(round_) if e not in seen]
        seen.update(new)
        rows += new
        round_ = [e for _, t, _ in new for e in out_of.get(t, [])]
    return rows


@pytest.mark.parametrize("seed", range(6))
def test_one_pass_distances_hold_in_any_order(seed: int) -> None:
    """`_downstream` gives breadth-first distances whatever order the rows come in: in rounds
    by one pass, shuffled or with a long way first by its check falling back to a search."""
    rng = random.Random(seed)
    nodes = [f"n{i}" for i in range(40)]
    relations = ("transformation", "aggregation")
    edges = sorted(
        {(rng.choice(nodes), rng.choice(nodes), rng.choice(relations)) for _ in range(70)}
    )  # cycles and self-loops included
    seeds = rng.sample(nodes, 3)
    step: dict[str, list[str]] = {}
    for s, t, _ in edges:
        step.setdefault(s, []).append(t)
    want: dict[str, int] = {}
    for s in seeds:
        for n, d in _hops(s, step).items():
            want[n] = min(d, want.get(n, d))
    rows = _rounds(seeds, edges)
    reached = {s for s, t, _ in rows} | {t for _, t, _ in rows if t is not None}
    assert reached == set(want)
    made = {t for _, t, r in rows if r == "transformation"}
    consumed = {s for s, _, r in rows if r == "transformation"}

    calls = []
    breadth_first = genealogy._breadth_first

    def search(*args: Any) -> Any:
        calls.append(1)
        return breadth_first(*args)

    orders = [rows, rng.sample(rows, len(rows)), rows[::-1]]
    for i, order in enumerate(orders):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(genealogy, "_breadth_first", search)
            got = genealogy._downstream(seeds, iter(order))
        assert got == (want, made, consumed), i
    assert len(calls) == 2 or max(want.values()) <= 1  # rounds: one pass; the others: checked

    # A long way to a node first and its short way after: caught by the check.
    long_first = [("a", None, None), ("b", "x", "aggregation"), ("a", "b", "aggregation")]
    short = [("a", "x", "aggregation")]
    hops, _, _ = genealogy._downstream(["a"], iter(long_first[:1] + short + long_first[2:]))
    assert hops == {"a": 0, "x": 1, "b": 1}
    rows2 = [("a", "b", "aggregation"), ("b", "x", "aggregation"), ("a", "x", "aggregation")]
    hops, _, _ = genealogy._downstream(["a"], iter(rows2))
    assert hops == {"a": 0, "b": 1, "x": 1}
