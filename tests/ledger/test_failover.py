"""One sequencer at a time, and one that outlives everything but an integrity failure."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ledger.deployment import Deployment
from ledger.errors import ChainUnavailable, StorageError, VerificationError
from ledger.lease import Lease, LeaseLost
from ledger.log import Log
from ledger.sequencer import Policy, Sequencer
from ledger.store import Store
from tests.ledger.conftest import Plant
from tests.ledger.test_sequencer import _append, _deployment


def test_concurrent_checkpoints_do_not_collide(plant: Plant) -> None:
    """Two processes checkpointing the same size at once: one inserts, the other reads it.
    (It was check-then-insert: on PostgreSQL 7 tries in 10 failed with a key violation.)"""
    log = Log(plant.store)
    other = Log(Store(plant.store.engine))  # a second "process" on the same database
    log.append(plant.accepted(3))
    gate = threading.Barrier(2)
    errors: list[BaseException] = []
    sizes: dict[str, list[int]] = defaultdict(list)

    def checkpoint(name: str, which: Log) -> None:
        for _ in range(15):
            try:
                gate.wait(timeout=10)
                sizes[name].append(which.checkpoint().size)
                gate.wait(timeout=10)
                if name == "a":
                    which.append(plant.accepted(1))
            except BaseException as exc:
                errors.append(exc)
                gate.abort()
                return

    threads = [
        threading.Thread(target=checkpoint, args=("a", log)),
        threading.Thread(target=checkpoint, args=("b", other)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sizes["a"] == sizes["b"]  # both saw the same checkpoint every time
    assert [cp.size for cp in log.checkpoints()] == sorted(set(sizes["a"]), reverse=True)


class Flaky:
    """`target`, except that calls of the named methods raise the queued exceptions first."""

    def __init__(self, target: Any, **failures: list[BaseException]) -> None:
        self._target = target
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        queued = self.failures.get(name)
        if not callable(attr) or not queued:
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            if queued:
                raise queued.pop(0)
            return attr(*args, **kw)

        return call


def _run(seq: Sequencer, stop: threading.Event, **kw: Any) -> tuple[threading.Thread, list[Any]]:
    raised: list[BaseException] = []

    def go() -> None:
        try:
            seq.run(stop, tick_s=0.01, **kw)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, raised


def _until(what: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_sequencer_outlives_outages_and_bugs(tmp_path: Path) -> None:
    """Database and node outages, a lost race and a plain bug: each round that fails is
    retried; the loop never stops silently (it stopped for good on the first of them)."""
    dep = _deployment(tmp_path / "h")
    chain = dep.open_chain()
    _append(dep, 5)
    flaky_log = Flaky(
        dep.log,
        committed_size=[StorageError("database error: connection refused")] * 3,
        checkpoint=[StorageError("database error: duplicate key value violates pk_checkpoints")],
    )
    flaky_chain = Flaky(
        chain,
        latest_checkpoint=[ChainUnavailable("eth_call: node unreachable"), RuntimeError("a bug")],
    )
    seq = Sequencer(flaky_log, flaky_chain, Policy(every=1, max_backoff_s=0.05))  # type: ignore[arg-type]
    stop = threading.Event()
    thread, raised = _run(seq, stop)
    try:
        _until(lambda: (cp := chain.latest_checkpoint()) is not None and cp.size == 5)
        assert thread.is_alive() and not raised
        assert not any(flaky_log.failures.values()) and not any(flaky_chain.failures.values())
        assert seq.role == "leader" and seq.failure is None
        _append(dep, 2)  # and it goes on
        _until(lambda: chain.latest_checkpoint().size == 7)  # type: ignore[union-attr]
    finally:
        stop.set()
        thread.join(timeout=10)
        chain.close()


def test_only_an_integrity_failure_stops_it(tmp_path: Path) -> None:
    dep = _deployment(tmp_path / "h")
    chain = dep.open_chain()
    _append(dep, 2)
    forked = VerificationError("the chain anchors root 0x.. at size 2, the log has 0x..")
    seq = Sequencer(dep.log, Flaky(chain, latest_checkpoint=[forked]), Policy(every=1))  # type: ignore[arg-type]
    thread, raised = _run(seq, threading.Event())
    thread.join(timeout=10)
    assert raised == [forked] and seq.failure is forked and seq.role == "stopped"
    chain.close()


def test_three_candidates_publish_as_one_and_hand_over(tmp_path: Path) -> None:
    """Three sequencers on one deployment: one publishes, the others stand by; when it stops,
    one of them takes over within the lease's ttl and nothing is published twice."""
    dep = _deployment(tmp_path / "h")
    chain = dep.open_chain()
    candidates = [
        Sequencer(
            Deployment.open(dep.home).log,
            chain,
            Policy(every=5, interval_s=0.2),
            lease=Lease(dep.store, f"candidate-{i}", ttl_s=0.5),
        )
        for i in range(3)
    ]
    stops = [threading.Event() for _ in candidates]
    runs = [_run(seq, stop) for seq, stop in zip(candidates, stops, strict=True)]
    try:
        for _ in range(8):
            _append(dep, 5)
            time.sleep(0.1)
        _until(lambda: (cp := chain.latest_checkpoint()) is not None and cp.size == 40)
        # Mined is not yet counted: the publisher counts once the confirmation it waits for
        # arrives.
        _until(lambda: sum(seq.published for seq in candidates) >= chain.checkpoint_count())
        publishers = [seq for seq in candidates if seq.published]
        assert len(publishers) == 1, [seq.published for seq in candidates]
        assert publishers[0].published == chain.checkpoint_count()
        assert sorted(seq.role for seq in candidates) == ["leader", "standby", "standby"]
        # The leader stops (and releases the lease): another takes over and goes on.
        leader = candidates.index(publishers[0])
        stops[leader].set()
        runs[leader][0].join(timeout=10)
        _append(dep, 5)
        _until(lambda: chain.latest_checkpoint().size == 45)  # type: ignore[union-attr]
        # Every checkpoint on chain was published by exactly one of them (the new leader
        # counts its publication once the confirmation it waits for arrives).
        _until(lambda: sum(seq.published for seq in candidates) >= chain.checkpoint_count())
        assert sum(seq.published for seq in candidates) == chain.checkpoint_count()
        assert len([seq for seq in candidates if seq.published]) == 2
        assert all(not raised for _, raised in runs)
    finally:
        for stop in stops:
            stop.set()
        for thread, _ in runs:
            thread.join(timeout=10)
        chain.close()


def test_a_sequencer_that_lost_its_lease_writes_nothing(tmp_path: Path) -> None:
    dep = _deployment(tmp_path / "h")
    chain = dep.open_chain()
    _append(dep, 3)
    old = Lease(dep.store, "old", ttl_s=0.2)
    term = old.hold()
    new = Lease(dep.store, "new", ttl_s=0.2)
    new.hold()
    time.sleep(0.25)
    assert new.hold() == 2  # old went silent: taken over
    with pytest.raises(LeaseLost):
        Sequencer(dep.log, chain, Policy(every=1), lease=old).step(term=term)
    assert dep.log.checkpoints() == []  # the old leader's checkpoint row was refused
    chain.close()
