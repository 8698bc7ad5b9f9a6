"""The service's group commit: concurrent appends share transactions, each gets its own result."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from api.service import Service
from ledger.errors import StorageError
from ledger.ingest import check_record
from ledger.records import Record
from tests.api.conftest import Plant


def _accepted(plant: Plant, n: int) -> list[tuple[Any, dict[str, Any]]]:
    svc, signer = plant.service, plant.signers["acme"]
    out = []
    for i in range(n):
        rec = Record.new(
            "supplier_record",
            {"lot": f"G{i}", "asset": f"a{i % 3}"},
            participant="acme",
            address=signer.address,
        )
        sig = signer.sign(svc.dep.domain, rec)
        out.append((check_record(rec, sig, svc.dep.domain, svc.key_snapshot()), rec.payload))
    return out


def _together(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run fn(0..n-1) on n threads released at once; results (or exceptions) in order."""
    start = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        start.wait()
        try:
            out[i] = fn(i)
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def test_concurrent_appends_get_their_own_results(plant: Plant) -> None:
    svc = plant.service
    items = _accepted(plant, 24)
    before = svc.dep.log.size
    # Every record twice, from different threads: one is appended, the other is a duplicate.
    jobs = items + items
    results = _together(len(jobs), lambda i: svc.append([jobs[i][0]], [jobs[i][1]])[0])
    assert not [r for r in results if isinstance(r, Exception)]
    for (accepted, _), res in zip(jobs, results, strict=True):
        assert res.leaf_hash == accepted.leaf_hash
    by_leaf: dict[bytes, list[Any]] = {}
    for res in results:
        by_leaf.setdefault(res.leaf_hash, []).append(res)
    for pair in by_leaf.values():
        assert len({r.index for r in pair}) == 1
        assert sorted(r.duplicate for r in pair) == [False, True]
    assert svc.dep.log.size == before + len(items)
    assert svc.dep.log.refresh() == before + len(items)
    # Each appended record is stored at the index its caller was told.
    for res in results:
        assert svc.dep.log.get(res.index).leaf_hash == res.leaf_hash


def test_a_failed_batch_fails_every_caller_in_it(plant: Plant) -> None:
    class Failing(Service):
        calls = 0

        def _append_now(self, items: Any, payloads: Any) -> Any:
            Failing.calls += 1
            raise StorageError("database is gone")

    svc = Failing(plant.service.dep, plant.service.settings)
    items = _accepted(plant, 8)
    results = _together(8, lambda i: svc.append([items[i][0]], [items[i][1]]))
    assert all(isinstance(r, StorageError) for r in results)
    assert 1 <= Failing.calls <= 8
    # Nothing queued is left behind for a later caller to append by surprise.
    assert svc._queue == []
    with pytest.raises(StorageError):
        svc.append([items[0][0]], [items[0][1]])


def test_callers_queued_behind_a_transaction_share_the_next(plant: Plant) -> None:
    n = 12
    batches: list[int] = []

    class Recording(Service):
        def _append_now(self, items: Any, payloads: Any) -> Any:
            if not batches:  # hold the first transaction until the rest queue up
                for _ in range(1000):
                    if len(self._queue) + len(items) >= n:
                        break
                    threading.Event().wait(0.01)
            batches.append(len(items))
            return super()._append_now(items, payloads)

    svc = Recording(plant.service.dep, plant.service.settings)
    items = _accepted(plant, n)
    results = _together(n, lambda i: svc.append([items[i][0]], [items[i][1]])[0])
    assert sum(batches) == n and len(batches) <= 2
    assert max(batches) > 1
    assert len({r.index for r in results}) == n and not any(r.duplicate for r in results)
