"""Ledger throughput: fast-path signing vs eth-account, end-to-end appends, proof generation.

    python bench/ledger.py [--quick] [--json]

End to end means what `forgeproof append` does to each line: parse JSON, validate the record,
canonicalise (RFC 8785), hash, recover the EIP-712 signer, check the key, append to the Merkle
log and persist records and nodes in SQLite (WAL), one transaction per 2,000 records.
"""

from __future__ import annotations

import json
import pickle
import random
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rfc8785

from bench._common import parser, rate, report
from ledger.ingest import (
    append_lines,
    check_line,
    parse_line,
    parse_submission,
    submission_json,
)
from ledger.log import Log
from ledger.merkle import Frontier, hash_leaf
from ledger.records import Record, commitment
from ledger.registry import Registry, now_us
from ledger.signing import Domain, Signer, digest_of, recover_digest
from ledger.store import Store, sqlite_url
from ledger.store.models import LogState, Node

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


def setup(path: Path) -> tuple[Store, Registry]:
    store = Store.open(sqlite_url(path))
    reg = Registry(store)
    reg.add_participant("plant-line-3", "Line 3", ["manufacturer"])
    reg.add_key("plant-line-3", Signer(KEY).address, valid_from_us=now_us() - 86_400_000_000)
    return store, reg


def bench_append(lines: list[bytes], workdir: Path, workers: int) -> float:
    """Records/s through `append_lines`, the path `forgeproof append` takes."""
    store, reg = setup(workdir / f"append-{len(lines)}-{workers}.db")
    log = Log(store)
    keys = reg.snapshot()
    t = time.perf_counter()
    done = append_lines(log, lines, DOMAIN, keys, workers=workers)
    elapsed = time.perf_counter() - t
    assert done.appended == len(lines) and log.committed_size() == len(lines), done
    store.close()
    return len(lines) / elapsed


def where_time_goes(lines: list[bytes], workdir: Path) -> dict[str, float]:
    """CPU microseconds per record for each stage, measured one stage at a time.

    Process time, not wall time: on a shared machine it says what a stage costs, not how long
    it waited for a core. The rfc8785 reference canonicaliser is timed on the same records as
    the baseline of the fast path.
    """
    store, reg = setup(workdir / "stages.db")
    keys = reg.snapshot()
    n = len(lines)
    stages: dict[str, float] = {}
    clock = time.process_time

    t = clock()
    subs = [parse_line(line) for line in lines]
    stages["parse + validate (pydantic, from bytes)"] = clock() - t
    t = clock()
    slow = [parse_submission(json.loads(line)) for line in lines]
    stages["baseline: json.loads, then validate"] = clock() - t
    assert slow == subs
    t = clock()
    canon = [r.canonical_bytes() for r, _ in subs]
    stages["canonicalise (fast path)"] = clock() - t
    dumped = [r.model_dump() for r, _ in subs]
    t = clock()
    reference = [rfc8785.dumps(d) for d in dumped]
    stages["baseline: canonicalise with rfc8785"] = clock() - t
    assert reference == canon
    t = clock()
    digests = [digest_of(DOMAIN, r, commitment(c)) for (r, _), c in zip(subs, canon, strict=True)]
    stages["SHA-256 + EIP-712 Keccak"] = clock() - t
    t = clock()
    for d, (_, sig) in zip(digests, subs, strict=True):
        recover_digest(d, sig)
    stages["recover signer (secp256k1)"] = clock() - t
    now = now_us()
    t = clock()
    accepted = [check_line(line, DOMAIN, keys, now) for line in lines]
    whole = clock() - t
    parts = [
        "parse + validate (pydantic, from bytes)",
        "canonicalise (fast path)",
        "SHA-256 + EIP-712 Keccak",
        "recover signer (secp256k1)",
    ]
    stages["key check, times, bookkeeping"] = max(0.0, whole - sum(stages[k] for k in parts))
    t = clock()
    pickle.loads(pickle.dumps([tuple(a) for a in accepted], pickle.HIGHEST_PROTOCOL))
    stages["to the appending process (pickle)"] = clock() - t
    log = Log(store)
    t = clock()
    with log.appending() as app:
        for i in range(0, n, 2000):
            app.add(accepted[i : i + 2000])
    stages["append + persist (SQLite)"] = clock() - t
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


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
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
            one = bench_append(lines[:n], work, workers=1)
            two = bench_append(lines[:n], work, workers=2)
            figures[f"append_{n}"] = {"workers_1_per_s": one, "workers_2_per_s": two}
            rows.append([f"end-to-end append, {n:,} records, 1 process", one, "records/s"])
            rows.append(
                [
                    f"end-to-end append, {n:,} records, 2 checker processes",
                    two,
                    f"records/s ({two / one:.2f}x)",
                ]
            )
        proof_log = synthetic_log(work / "proofs.db", 1_000_000)
        proofs = bench_proofs(proof_log, 1000)
        figures["proofs_1m"] = proofs
        rows.append(["inclusion proof at 1M leaves", proofs["inclusion_ms"], "ms each"])
        rows.append(["consistency proof at 1M leaves", proofs["consistency_ms"], "ms each"])
        proof_log.store.close()

    for stage, us in stages.items():
        rows.append([f"  where the time goes: {stage}", us, "µs/record (1 process)"])
    report("forgeproof ledger", ["what", "figure", "unit / ratio"], rows, figures, args.json)


if __name__ == "__main__":
    main()
