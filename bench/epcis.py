"""EPCIS genealogy, recall and query over a generated plant history, on SQLite and PostgreSQL.

    python bench/epcis.py [--quick] [--json] [--events N] [--postgres-url URL] [--capture-only]

The history (api.demo.synthetic: suppliers, raw lots, 10-stage transformations,
inspections, cases, pallets, shipping, sensor readings) is 1,000,000 events (--quick: 50,000).

How it is loaded: building a million signed records through `capture` would take hours (the
CBV hash ID alone costs ~7 ms per event in GS1's reference implementation), so the benchmark
writes the tables in bulk: `records` (payload JSON as canonical; leaf hash = SHA-256 of it; a
zero signature), `epcis_events` and `epcis_links` rows from the real `index_entry`, and event
IDs in hash-ID form over SHA-256 of the event JSON, not CBV 2.0 pre-hashes. Everything timed
afterwards is the library's own code (`trace`, `recall_*`, `query_events`) on those tables.
The capture path itself is timed separately on a real plant document (~2,000 events; --quick
~500), into fresh tables on each database: with the fast hash-ID path (ledger.epcis.fasthash)
and compiled validation, with the reference hash IDs forced (`reference_path()`), and as before
both (reference hash IDs, jsonschema alone); and the hash IDs alone, fast and reference.

Baseline (same run, same data): the same traversal node by node, one query per identifier per
hop, the per-node loop the set-based version replaces.

--capture-only: the capture part alone, on the full-size document (--quick: the small one),
without the bulk-loaded history.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.progress import Progress
from sqlalchemy import create_engine, text

from api.demo.synthetic import PlantConfig, PlantFacts, plant_document, plant_events
from bench._common import parser, report
from ledger.epcis import fasthash
from ledger.epcis import genealogy as gen
from ledger.epcis.capture import capture
from ledger.epcis.edges import rebuild_edges
from ledger.epcis.hashid import hash_ids, reference_path, split_context
from ledger.epcis.index import index_entry, link_rows
from ledger.epcis.query import query_events
from ledger.epcis.validate import jsonschema_only
from ledger.log import Log
from ledger.registry import KeySnapshot, now_us
from ledger.signing import Domain, Signer
from ledger.store import Store, sqlite_url

DOMAIN = Domain(chain_id=131277322940537, verifying_contract="0x" + "ab" * 20)
BATCH = 20_000
SIGNATURE = bytes(65)


def config(events: int) -> PlantConfig:
    base = PlantConfig(stages=10, suppliers=12, raw_lot_uses=10, runs_per_pallet=5, seed=2026)
    runs = math.ceil(events / base.events_per_run())
    return PlantConfig(**{**base.__dict__, "runs": runs})


def rows(cfg: PlantConfig, facts: PlantFacts, limit: int) -> Iterator[tuple[list[Any], ...]]:
    """Batches of (records, events, links) rows for the first `limit` events."""
    records: list[Any] = []
    events: list[Any] = []
    links: list[Any] = []
    t0 = now_us()
    for i, event in enumerate(plant_events(cfg, facts)):
        if i == limit:
            break
        canonical = json.dumps(
            {"kind": "epcis_event", "payload": event}, separators=(",", ":"), sort_keys=True
        ).encode()
        digest = hashlib.sha256(canonical).digest()
        entry = index_entry(event)
        signer = "0x" + "00" * 20
        records.append(
            (i, digest, "epcis_event", "plant", signer, t0, t0 + i, canonical, SIGNATURE)
        )
        event_id = f"ni:///sha-256;{hashlib.sha256(canonical[40:]).hexdigest()}?ver=CBV2.0"
        events.append(
            (i, event_id, event_id, entry.event_type, entry.event_time_us, entry.action,
             entry.biz_step, entry.disposition, entry.read_point, entry.biz_location,
             entry.model_digest, None)
        )  # fmt: skip
        links.extend(link_rows(i, entry))
        if len(records) == BATCH:
            yield records, events, links
            records, events, links = [], [], []
    if records:
        yield records, events, links


_COLUMNS = {
    "records": "leaf_index, leaf_hash, kind, participant, signer, created_us, appended_us,"
    " canonical, signature",
    # The loader's IDs stand in for both hash IDs (the event as given and as stored).
    "epcis_events": "leaf_index, event_id, stored_event_id, event_type, event_time_us, action,"
    " biz_step, disposition, read_point, biz_location, model_digest, error_declared_by",
    "epcis_links": "epc, role, leaf_index",
}


class Loader:
    """Bulk writes into one store: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.engine.raw_connection()
        self.pg = store.engine.dialect.name == "postgresql"
        if not self.pg:
            cur = self.conn.cursor()
            cur.execute("PRAGMA cache_size=-1000000")  # 1 GB of page cache while loading
            cur.close()

    def write(self, batch: tuple[list[Any], ...]) -> None:
        cur = self.conn.cursor()
        for table, data in zip(("records", "epcis_events", "epcis_links"), batch, strict=True):
            cols = _COLUMNS[table]
            if self.pg:
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in data:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(cols.split(",")))
                cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", data)
        self.conn.commit()
        cur.close()

    def finish(self, size: int) -> None:
        cur = self.conn.cursor()
        cur.execute(f"UPDATE log_state SET size = {size} WHERE id = 1")
        self.conn.commit()
        cur.execute("ANALYZE")
        self.conn.commit()
        cur.close()
        self.conn.close()


def open_stores(tmp: Path, pg_url: str | None) -> dict[str, tuple[Store, Callable[[], None]]]:
    stores: dict[str, tuple[Store, Callable[[], None]]] = {}
    sqlite = Store.open(sqlite_url(tmp / "plant.db"))
    stores["SQLite"] = (sqlite, sqlite.close)
    if pg_url:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(pg_url)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in pg_url else "?"
        pg = Store.open(f"{pg_url}{sep}options=-csearch_path%3D{schema}")

        def drop() -> None:
            pg.close()
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()

        stores["PostgreSQL"] = (pg, drop)
    return stores


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best-of-`repeat` milliseconds, and the last result."""
    best = math.inf
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3, out


def node_by_node(store: Store, lot: str, downstream: bool) -> int:
    """Baseline: the same walk, one query per identifier per hop."""
    seen = {lot}
    frontier = [lot]
    with store.reading() as conn:
        hop = gen._hop_statement(downstream, conn.dialect.name == "postgresql")
        while frontier:
            found = []
            for node in frontier:
                for _near, far, *_ in conn.execute(hop, {"frontier": [node]}):
                    if far not in seen:
                        seen.add(far)
                        found.append(far)
            frontier = found
    return len(seen)


def stats(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    return {
        "median_ms": statistics.median(s),
        "p95_ms": s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)],
        "max_ms": s[-1],
        "n": len(s),
    }


def bench_store(store: Store, cfg: PlantConfig, facts: PlantFacts) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # The bulk load wrote links, not the edges capture derives from them: derive them now.
    t = time.perf_counter()
    with store.engine.begin() as conn:
        rebuild_edges(conn)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    out["edges"] = {"build_s": time.perf_counter() - t}
    if store.engine.dialect.name == "postgresql":
        # What autovacuum does within minutes of a bulk load, and what tables written a capture
        # at a time have: the visibility map, without which every index-only probe of a
        # recall (~130k of them) also reads the heap.
        t = time.perf_counter()
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        out["edges"]["vacuum_s"] = time.perf_counter() - t
    finished = facts.finished
    lots = finished[-len(finished) // 10 :][:: max(1, len(finished) // 10 // 25)][:25]
    trace_ms, sizes = [], []
    gen.upstream(store, finished[0])  # warm the connection pool and caches
    for lot in lots:
        ms, g = timed(lambda lot=lot: gen.upstream(store, lot), repeat=3)
        assert g.depth == cfg.stages, (lot, g.depth)
        trace_ms.append(ms)
        sizes.append((len(g.nodes), len(g.edges), len(g.events)))
    out["upstream_10_hops"] = {
        **stats(trace_ms),
        "nodes_mean": statistics.mean(s[0] for s in sizes),
        "edges_mean": statistics.mean(s[1] for s in sizes),
        "events_mean": statistics.mean(s[2] for s in sizes),
    }
    ten = lots[:10]
    out["both_ways"] = stats([timed(lambda x=x: gen.trace(store, x), 3)[0] for x in ten])
    out["upstream_no_observations"] = stats(
        [timed(lambda x=x: gen.upstream(store, x, include_observations=False), 3)[0] for x in ten]
    )
    out["baseline_node_by_node"] = stats(
        [timed(lambda x=x: node_by_node(store, x, False))[0] for x in ten]
    )
    lot = lots[len(lots) // 2]

    raws = sorted(facts.raw_lots)
    raw_sample = raws[len(raws) // 2 : len(raws) // 2 + 10]
    down_ms = [timed(lambda r=r: gen.downstream(store, r), repeat=3)[0] for r in raw_sample]
    out["downstream_supplier_lot"] = stats(down_ms)

    recalls: dict[str, Callable[[], gen.Recall]] = {
        "recall_supplier_lot": lambda: gen.recall_from_lot(store, raw_sample[0]),
        "recall_rare_model": lambda: gen.recall_by_model(store, cfg.rare_model),
        "recall_nonconformant": lambda: gen.recall_nonconformant(store),
    }
    for key, recall in recalls.items():
        # Baseline in the same run: the hop-by-hop walk over the links (gen._recall_by_hops).
        gen.SET_BASED_RECALL = False
        try:
            old_ms, old = timed(recall, repeat=3)
        finally:
            gen.SET_BASED_RECALL = True
        ms, r = timed(recall, repeat=3)
        assert r == old, key  # the same answer, lot for lot
        out[key] = {
            "ms": ms, "baseline_ms": old_ms, "seeds": len(r.seeds), "finished": len(r.finished),
            "reached": len(r.reached),
        }  # fmt: skip
    for key, params in QUERIES.items():
        params = {k: (lot if v == "$lot" else v) for k, v in params.items()}
        ms, page = timed(lambda p=params: query_events(store, p, per_page=100), repeat=5)
        out[key] = {"ms": ms, "events": len(page.refs)}
    return out


QUERIES: dict[str, dict[str, str]] = {
    "query: MATCH_anyEPCClass one lot": {"MATCH_anyEPCClass": "$lot"},
    "query: non-conformant inspections, page 1": {
        "EQ_bizStep": "inspecting",
        "EQ_disposition": "non_conformant",
    },
    "query: MATCH_outputEPCClass GTIN pattern, page 1": {
        "MATCH_outputEPCClass": "urn:epc:idpat:sgtin:4012345.099999.*"
    },
    "query: one day of eventTime, page 1": {
        "GE_eventTime": "2026-01-20T00:00:00Z",
        "LT_eventTime": "2026-01-21T00:00:00Z",
    },
}


CAPTURE_MODES: dict[str, tuple[str, Callable[[], Any]]] = {
    # mode: (label, the context it runs in)
    "fast": ("fast hash-ID path + compiled validation", contextlib.nullcontext),
    "reference_hash": ("reference hash IDs (GS1 package)", reference_path),
    "before": (
        "before: reference hash IDs + jsonschema",
        lambda: _both(reference_path, jsonschema_only),
    ),
}


@contextlib.contextmanager
def _both(*managers: Callable[[], Any]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for m in managers:
            stack.enter_context(m())
        yield


def bench_capture(tmp: Path, pg_url: str | None, runs: int) -> dict[str, Any]:
    """The real path on one plant document: validate, hash, sign, check, append, index, on
    each database and in each mode (fresh tables each time), and the hash IDs alone."""
    signer = Signer.generate()
    keys = KeySnapshot.of({signer.address: ("repo", ["operator"])})
    events = list(plant_events(PlantConfig(runs=runs, stages=10, seed=3)))
    document = plant_document(events)
    out: dict[str, Any] = {"events": len(events), "hash_ids_per_s": {}}
    split = [split_context(e) for e in events]
    for mode, manager in (("fast", contextlib.nullcontext), ("reference", reference_path)):
        with manager():
            hash_ids(*split[0])  # warm caches (context, pyld, memos) as a running service has
            best = math.inf
            for _ in range(CAPTURE_REPEAT):
                cold_memos()
                t = time.perf_counter()
                for body, context in split:
                    hash_ids(body, context)
                best = min(best, time.perf_counter() - t)
            out["hash_ids_per_s"][mode] = len(split) / best
    # Best of CAPTURE_REPEAT, the modes interleaved so that load on the machine hits them alike.
    for rep in range(CAPTURE_REPEAT):
        for mode, (_, manager) in CAPTURE_MODES.items():
            (tmp / f"capture-{mode}-{rep}").mkdir()
            for name, (store, close) in open_stores(tmp / f"capture-{mode}-{rep}", pg_url).items():
                with manager():
                    # Warm-up (pool, caches) on the first events, which are then duplicates.
                    capture(Log(store), plant_document(events[:5]), signer=signer,
                            participant="repo", domain=DOMAIN, keys=keys)  # fmt: skip
                    cold_memos()
                    log = Log(store)
                    t = time.perf_counter()
                    result = capture(log, document, signer=signer, participant="repo",
                                     domain=DOMAIN, keys=keys)  # fmt: skip
                    elapsed = time.perf_counter() - t
                close()
                assert result.new == len(events) - 5, (result.new, len(events))
                best = out.setdefault(name, {}).setdefault(mode, {"events_per_s": 0.0})
                best["events_per_s"] = max(best["events_per_s"], result.new / elapsed)
    return out


CAPTURE_REPEAT = 3


def cold_memos() -> None:
    """Forget the fast path's memos (values, time stamps), so that no run profits from the
    values an earlier one saw: each document's values are new to it, as for a first capture."""
    fasthash._canonize_value.cache_clear()
    fasthash._fix_time_stamp_format.cache_clear()
    fasthash._replacements.cache_clear()


def capture_rows(f: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for name in ("SQLite", "PostgreSQL"):
        for mode, (label, _) in CAPTURE_MODES.items():
            if name in f:
                rate = f[name][mode]["events_per_s"]
                rows.append([name, f"capture end to end, {label}", f"{rate:,.0f}", "events/s"])
    for mode, rate in f["hash_ids_per_s"].items():
        rows.append(["-", f"hash IDs only (hash_ids), {mode}", f"{rate:,.0f}", "events/s"])
    return rows


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=None, help="history size (default 1M, quick 50k)")
    p.add_argument("--postgres-url", default=os.environ.get("FORGEPROOF_TEST_POSTGRES_URL"))
    p.add_argument(
        "--capture-only", action="store_true", help="only the capture part (no bulk history)"
    )
    args = p.parse_args()
    if args.capture_only:
        with tempfile.TemporaryDirectory() as tmp_name:
            f = bench_capture(Path(tmp_name), args.postgres_url, 20 if args.quick else 80)
        title = f"forgeproof EPCIS capture, one document of {f['events']:,} events"
        columns = ["database", "what", "rate", "unit"]
        report(title, columns, capture_rows(f), {"capture": f}, args.json)
        return
    n = args.events or (50_000 if args.quick else 1_000_000)
    cfg = config(n)
    figures: dict[str, Any] = {"events": n, "stages": cfg.stages, "load": {}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stores = open_stores(tmp, args.postgres_url)
        loaders = {name: Loader(store) for name, (store, _) in stores.items()}
        facts = PlantFacts()
        spent = dict.fromkeys(loaders, 0.0)
        with Progress(transient=True) as progress:
            task = progress.add_task(f"writing {n:,} events", total=n)
            for batch in rows(cfg, facts, n):
                for name, loader in loaders.items():
                    t = time.perf_counter()
                    loader.write(batch)
                    spent[name] += time.perf_counter() - t
                progress.advance(task, len(batch[0]))
        for name, loader in loaders.items():
            t = time.perf_counter()
            loader.finish(n)
            spent[name] += time.perf_counter() - t
            figures["load"][name] = {"events_per_s": n / spent[name]}
        with stores["SQLite"][0].reading() as conn:
            figures["links"] = conn.exec_driver_sql("SELECT COUNT(*) FROM epcis_links").scalar_one()
        figures["finished_lots"] = len(facts.finished)
        figures["capture"] = bench_capture(tmp, args.postgres_url, 20 if args.quick else 80)
        for name, (store, close) in stores.items():
            figures[name] = bench_store(store, cfg, facts)
            close()

    rows_out: list[list[Any]] = []
    for name in stores:
        rows_out += table_rows(name, figures[name], figures["load"][name]["events_per_s"])
    rows_out += capture_rows(figures["capture"])
    title = f"forgeproof EPCIS, {n:,} events, {figures['links']:,} links"
    columns = ["database", "what", "ms: median / p95 / max", "size"]
    report(title, columns, rows_out, figures, args.json)


def table_rows(name: str, f: dict[str, Any], load_rate: float) -> list[list[Any]]:
    up, base, bare = (
        f["upstream_10_hops"],
        f["baseline_node_by_node"],
        f["upstream_no_observations"],
    )
    size = f"{up['nodes_mean']:.0f} nodes, {up['edges_mean']:.0f} edges, {up['events_mean']:.0f} ev"
    ratio = base["median_ms"] / bare["median_ms"]
    out = [
        [name, "genealogy upstream, 10 hops (+ observations)", _m(up), size],
        [name, "  same, without observations", _m(bare), ""],
        [name, "  baseline: node by node, no observations", _m(base), f"{ratio:.1f}x slower"],
        [name, "genealogy both ways", _m(f["both_ways"]), ""],
        [name, "downstream of a supplier lot", _m(f["downstream_supplier_lot"]), ""],
    ]
    for key, label in (
        ("recall_supplier_lot", "recall: a supplier lot"),
        ("recall_rare_model", "recall: a model version (1% of inspections)"),
        ("recall_nonconformant", "recall: non-conformant upstream"),
    ):
        r = f[key]
        seeds = f"{r['seeds']} seeds, " if key != "recall_supplier_lot" else ""
        size = f"{seeds}{r['reached']} reached, {r['finished']} finished lots"
        out.append([name, label, f"{r['ms']:.1f}", size])
        ratio = r["baseline_ms"] / r["ms"]
        out.append([name, "  baseline: hop by hop over the links", f"{r['baseline_ms']:.1f}",
                    f"{ratio:.1f}x slower"])  # fmt: skip
    for key in QUERIES:
        out.append([name, key, f"{f[key]['ms']:.1f}", f"{f[key]['events']} events"])
    out.append([name, "bulk load (benchmark only)", f"{load_rate:,.0f}", "events/s"])
    return out


def _m(s: dict[str, float]) -> str:
    return f"{s['median_ms']:.1f} / {s['p95_ms']:.1f} / {s['max_ms']:.1f}"


if __name__ == "__main__":
    main()
