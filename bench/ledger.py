"""Ledger throughput: fast-path signing vs eth-account, end-to-end appends, proof generation.

    python bench/ledger.py [--quick] [--json] [--plot docs/img/ledger-append.png]

End to end means what `forgeproof append` does to each line, through the same function
(`ledger.ingest.append_lines`): parse and validate the submission, canonicalise (RFC 8785), hash,
recover the EIP-712 signer, check the key, append to the Merkle log and persist records and
nodes in SQLite (WAL), all input in one transaction, inserted 2,000 records at a time. "2 checker
processes" is the default on this 2-core machine: two processes check while the parent appends.
At 10k records each figure is the mean of 3 runs ± half their range; "CPU" is the processor time
of all processes per record, and 2 cores / CPU the rate an otherwise idle machine would allow.
"""

from __future__ import annotations

import gc
import json
import pickle
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rfc8785

from bench._common import parser, rate, report
from ledger.ingest import (
    Accepted,
    append_lines,
    check_batch,
    check_line,
    parse_line,
    parse_submission,
    submission_json,
)
from ledger.log import Log
from ledger.merkle import Frontier, hash_leaf
from ledger.records import Record, commitment
from ledger.registry import KeySnapshot, now_us
from ledger.signing import Domain, Signer, digest_of, recover_digest
from ledger.store import Store, sqlite_url
from ledger.store.models import LogState, Node

T = TypeVar("T")
DOMAIN = Domain(chain_id=131277322940537, verifying_contract="0x" + "ab" * 20)
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def _record(i: int, address: str) -> Record:
    return Record.new(
        "inspection",
        {
            "item": f"urn:epc:id:sgtin:4012345.011111.{i}",
            "station": "vision-3",
            "verdict": "conformant",
            "confidence": 0.9731,
            "model": "0x" + "cd" * 32,
        },
        participant="plant-line-3",
        address=address,
    )


def _sign_chunk(args: tuple[int, int]) -> list[bytes]:
    start, n = args
    signer = Signer(KEY)
    out = []
    for i in range(start, start + n):
        rec = _record(i, signer.address)
        out.append(
            json.dumps(
                submission_json(rec, signer.sign(DOMAIN, rec)), separators=(",", ":")
            ).encode()
        )
    return out


def signed_lines(n: int) -> list[bytes]:
    step = 10_000
    with Pool(2) as pool:
        parts = pool.map(_sign_chunk, [(s, min(step, n - s)) for s in range(0, n, step)])
    return [line for part in parts for line in part]


def bench_signing(n: int) -> dict[str, float]:
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from ledger.signing import typed_data

    signer = Signer(KEY)
    rec = _record(0, signer.address)
    full = typed_data(DOMAIN, rec)
    sig = signer.sign(DOMAIN, rec)
    digest = digest_of(DOMAIN, rec)
    n_slow = max(200, n // 10)
    return {
        "sign_fast_per_s": rate(
            lambda: signer.sign_digest(digest_of(DOMAIN, rec, commitment(b"x"))), n
        ),
        "sign_eth_account_per_s": rate(
            lambda: Account.sign_typed_data(KEY, full_message=full), n_slow
        ),
        "verify_fast_per_s": rate(
            lambda: recover_digest(digest_of(DOMAIN, rec, commitment(b"x")), sig), n
        ),
        "verify_eth_account_per_s": rate(
            lambda: Account.recover_message(encode_typed_data(full_message=full), signature=sig),
            n_slow,
        ),
        "_digest": float(len(digest)),
    }


def setup(path: Path) -> tuple[Store, KeySnapshot]:
    """A store, and the registry as the log sees it at append time (held in memory: the
    registry's own cost is the chain's, see bench/chain.py)."""
    store = Store.open(sqlite_url(path))
    keys = KeySnapshot.of({Signer(KEY).address: ("plant-line-3", ["manufacturer"])})
    return store, keys


def _cpu_s() -> float:
    """Processor seconds of this process and its reaped children (the checking workers)."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_append(lines: list[bytes], workdir: Path, workers: int) -> tuple[float, float]:
    """(records/s, CPU µs/record) through `append_lines`, the path `forgeproof append` takes."""
    store, keys = setup(workdir / f"append-{len(lines)}-{workers}-{time.time_ns()}.db")
    log = Log(store)
    cpu = _cpu_s()
    t = time.perf_counter()
    done = append_lines(log, lines, DOMAIN, keys, workers=workers)
    elapsed = time.perf_counter() - t
    cpu = _cpu_s() - cpu
    assert done.appended == len(lines) and log.committed_size() == len(lines), done
    store.close()
    for f in workdir.glob(f"append-{len(lines)}-{workers}-*"):
        f.unlink()  # a million records take a gigabyte
    return len(lines) / elapsed, cpu / len(lines) * 1e6


def _mean_spread(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (max(xs) - min(xs)) / 2


def where_time_goes(lines: list[bytes], workdir: Path) -> dict[str, float]:
    """CPU microseconds per record for each stage, measured one stage at a time.

    Process time, not wall time: on a shared machine it says what a stage costs, not how long
    it waited for a core. Each stage runs with the garbage collector paused (and a collection
    before it), so that no stage pays for the objects the earlier ones keep alive. The
    baselines, `json.loads` + validation and the rfc8785 reference canonicaliser, run on the
    same records in the same run.
    """
    store, keys = setup(workdir / "stages.db")
    n = len(lines)
    stages: dict[str, float] = {}
    now = now_us()

    def timed(name: str, fn: Callable[[], T]) -> T:
        gc.collect()
        gc.disable()
        try:
            t = time.process_time()
            out = fn()
            stages[name] = time.process_time() - t
        finally:
            gc.enable()
        return out

    for line in lines[:500]:  # warm up every code path first
        check_line(line, DOMAIN, keys, now)
    subs = timed("parse + validate (pydantic, from bytes)", lambda: [parse_line(x) for x in lines])
    slow = timed(
        "baseline: json.loads, then validate",
        lambda: [parse_submission(json.loads(x)) for x in lines],
    )
    assert slow == subs
    canon = timed("canonicalise (fast path)", lambda: [r.canonical_bytes() for r, _ in subs])
    dumped = [r.model_dump() for r, _ in subs]
    reference = timed(
        "baseline: canonicalise with rfc8785", lambda: [rfc8785.dumps(d) for d in dumped]
    )
    assert reference == canon
    digests = timed(
        "SHA-256 + EIP-712 Keccak",
        lambda: [
            digest_of(DOMAIN, r, commitment(c)) for (r, _), c in zip(subs, canon, strict=True)
        ],
    )
    timed(
        "recover signer (secp256k1)",
        lambda: [recover_digest(d, sig) for d, (_, sig) in zip(digests, subs, strict=True)],
    )
    numbered = list(enumerate(lines, start=1))
    accepted = timed(
        "whole check",
        lambda: [
            a
            for i in range(0, n, 512)  # as the checking workers do
            for a in check_batch(numbered[i : i + 512], DOMAIN, keys, now)
        ],
    )
    parts = [
        "parse + validate (pydantic, from bytes)",
        "canonicalise (fast path)",
        "SHA-256 + EIP-712 Keccak",
        "recover signer (secp256k1)",
    ]
    assert all(isinstance(a, Accepted) for a in accepted)
    ok = [a for a in accepted if isinstance(a, Accepted)]
    whole = stages.pop("whole check")
    # What the stages timed alone do not show: the key check and bookkeeping, and the CPU
    # caches each stage leaves colder for the next when records go through them together.
    stages["the rest: key check, bookkeeping, caches"] = max(
        0.0, whole - sum(stages[k] for k in parts)
    )
    wire = [tuple(a) for a in ok]
    timed(
        "to the appending process (pickle)",
        lambda: pickle.loads(pickle.dumps(wire, pickle.HIGHEST_PROTOCOL)),
    )
    log = Log(store)

    def append() -> None:
        with log.appending(cache_mib=256) as app:
            for i in range(0, n, 2000):
                app.add(ok[i : i + 2000])

    timed("append + persist (SQLite)", append)
    store.close()
    return {k: v / n * 1e6 for k, v in stages.items()}


def synthetic_log(path: Path, n: int) -> Log:
    """A log of `n` leaves holding only nodes (enough for proofs), written directly."""
    store = Store.open(sqlite_url(path))
    frontier = Frontier()
    from sqlalchemy import insert, update

    with store.transaction() as conn:
        rows: list[dict[str, object]] = []
        for i in range(n):
            for node, h in frontier.append(hash_leaf(i.to_bytes(8, "big"))):
                rows.append({"key": node.key, "hash": h})
            if len(rows) >= 100_000:
                conn.execute(insert(Node), rows)
                rows = []
        conn.execute(insert(Node), rows)
        conn.execute(update(LogState).where(LogState.id == 1).values(size=n))
    return Log(store)


def bench_proofs(log: Log, n_proofs: int) -> dict[str, float]:
    size = log.committed_size()
    rng = random.Random(1)
    idx = [rng.randrange(size) for _ in range(n_proofs)]
    t = time.perf_counter()
    for i in idx:
        log.inclusion_proof(i, size)
    incl = (time.perf_counter() - t) / n_proofs * 1e3
    t = time.perf_counter()
    for i in idx:
        log.consistency_proof(max(1, i), size)
    cons = (time.perf_counter() - t) / n_proofs * 1e3
    return {"inclusion_ms": incl, "consistency_ms": cons, "size": size}


def plot(figures: dict[str, Any], path: Path) -> None:
    """Where an append's CPU goes (now, and with the reference stages), and the rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages: dict[str, float] = figures["stages_us_per_record"]
    now = {k: v for k, v in stages.items() if not k.startswith("baseline")}
    before = dict(now)
    before["parse + validate (pydantic, from bytes)"] = stages[
        "baseline: json.loads, then validate"
    ]
    before["canonicalise (fast path)"] = stages["baseline: canonicalise with rfc8785"]
    short = {
        "parse + validate (pydantic, from bytes)": "parse + validate",
        "canonicalise (fast path)": "canonicalise",
        "SHA-256 + EIP-712 Keccak": "hashes",
        "recover signer (secp256k1)": "recover signer",
        "the rest: key check, bookkeeping, caches": "rest",
        "to the appending process (pickle)": "pickle",
        "append + persist (SQLite)": "SQLite",
    }
    names = [k for k in short if k in now] + [k for k in now if k not in short]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11, 3.8), dpi=120, gridspec_kw={"width_ratios": [2.2, 1]}
    )
    colours = [plt.get_cmap("tab10")(i) for i in range(10)]
    for row, parts in enumerate([before, now]):
        x = 0.0
        for i, name in enumerate(names):
            left.barh(
                row,
                parts[name],
                left=x,
                color=colours[i],
                edgecolor="white",
                label=short.get(name, name) if row == 1 else None,
            )
            if parts[name] >= 8:
                left.text(
                    x + parts[name] / 2,
                    row,
                    f"{parts[name]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white",
                )
            x += parts[name]
        left.text(x + 2, row, f"{x:.0f} µs", va="center", fontsize=9)
    left.set_yticks([0, 1], ["with json.loads + rfc8785\n(reference stages)", "now"])
    left.set_xlabel("CPU µs per record (stages timed one at a time, 10,000 records)")
    left.set_title("Where an append's CPU goes")
    left.set_xlim(0, max(sum(before.values()), sum(now.values())) * 1.15)
    left.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.22))

    labels, rates, bounds, spreads = [], [], [], []
    for key in sorted(k for k in figures if k.startswith("append_")):
        n = int(key.split("_")[1])
        for w, name in (("workers_1", "1 process"), ("workers_2", "2 checkers")):
            e = figures[key][w]
            labels.append(f"{n:,}\n{name}")
            rates.append(e["per_s"])
            spreads.append(e["spread_per_s"])
            bounds.append(e["idle_bound_per_s"])
    xs = range(len(labels))
    right.bar(xs, rates, yerr=spreads, color=colours[0], capsize=3, label="measured")
    right.scatter(
        xs, bounds, marker="_", s=400, color="black", zorder=5, label="cores / CPU per record"
    )
    right.axhline(10_000, color="red", linestyle="--", label="goal 10,000/s")
    for x, b in zip(xs, bounds, strict=True):
        right.text(x, b, f"{b:,.0f}", ha="center", va="bottom", fontsize=7)
    right.set_ylim(0, max([*bounds, *rates, 10_000]) * 1.2)
    right.set_xticks(list(xs), labels, fontsize=7)
    right.set_ylabel("records/s")
    right.set_title("End-to-end appends, SQLite")
    right.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--plot", type=Path, help="write a PNG of where the time goes")
    args = cli.parse_args()
    sizes = [10_000] if args.quick else [10_000, 1_000_000]
    figures: dict[str, object] = {}
    rows: list[list[object]] = []

    sig = bench_signing(2_000 if args.quick else 20_000)
    figures["signing"] = {k: v for k, v in sig.items() if not k.startswith("_")}
    rows += [
        [
            "sign, fast path (coincurve)",
            sig["sign_fast_per_s"],
            f"{sig['sign_fast_per_s'] / sig['sign_eth_account_per_s']:.1f}x eth-account",
        ],
        ["sign, eth-account sign_typed_data", sig["sign_eth_account_per_s"], "baseline"],
        [
            "verify, fast path (coincurve)",
            sig["verify_fast_per_s"],
            f"{sig['verify_fast_per_s'] / sig['verify_eth_account_per_s']:.1f}x eth-account",
        ],
        ["verify, eth-account recover_message", sig["verify_eth_account_per_s"], "baseline"],
    ]

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lines = signed_lines(max(sizes))
        stages = where_time_goes(lines[:10_000], work)
        figures["stages_us_per_record"] = stages
        for n in sizes:
            reps = 3 if n <= 10_000 else 1
            runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
            for _ in range(reps):
                for workers in (1, 2):
                    runs[workers].append(bench_append(lines[:n], work, workers))
            entry: dict[str, object] = {}
            for workers, label in ((1, "1 process"), (2, "2 checker processes")):
                rate_, spread = _mean_spread([r for r, _ in runs[workers]])
                cpu, _ = _mean_spread([c for _, c in runs[workers]])
                cores = min(workers, 2)
                entry[f"workers_{workers}"] = {
                    "per_s": rate_,
                    "spread_per_s": spread,
                    "runs": reps,
                    "cpu_us_per_record": cpu,
                    "idle_bound_per_s": cores * 1e6 / cpu,
                }
                pm = f" ± {spread:,.0f}" if reps > 1 else ""
                rows.append(
                    [
                        f"end-to-end append, {n:,} records, {label}",
                        rate_,
                        f"records/s{pm}; CPU {cpu:.0f} µs/record, "
                        f"{cores} core(s) / CPU = {cores * 1e6 / cpu:,.0f}/s",
                    ]
                )
            figures[f"append_{n}"] = entry
        proof_log = synthetic_log(work / "proofs.db", 1_000_000)
        proofs = bench_proofs(proof_log, 1000)
        figures["proofs_1m"] = proofs
        rows.append(["inclusion proof at 1M leaves", proofs["inclusion_ms"], "ms each"])
        rows.append(["consistency proof at 1M leaves", proofs["consistency_ms"], "ms each"])
        proof_log.store.close()

    for stage, us in stages.items():
        rows.append([f"  where the time goes: {stage}", us, "CPU µs/record"])
    if args.plot:
        plot(figures, args.plot)
    report("forgeproof ledger", ["what", "figure", "unit / ratio"], rows, figures, args.json)


if __name__ == "__main__":
    main()
