"""The sequencer lease: one holder at a time, takeover after silence, fenced writes."""

from __future__ import annotations

import threading
import time

import pytest

from ledger.lease import Lease, LeaseLost, read_lease
from ledger.store import Store


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_holder_and_takeover_after_silence(store: Store) -> None:
    clock = Clock()
    a, b, c = (Lease(store, name, ttl_s=6.0, clock=clock) for name in "abc")
    assert a.hold() == 1  # free: taken, term 1
    assert b.hold() is None and c.hold() is None
    for _ in range(5):  # a keeps beating: nobody takes over, however long
        clock.now += 5.0
        assert a.hold() == 1
        assert b.hold() is None and c.hold() is None
    # a goes silent; b and c see the same beat for a whole ttl, then the first one takes over.
    clock.now += 6.0
    assert b.hold() == 2
    assert c.hold() is None
    assert a.term is None  # a's own view lapsed with its last beat (0.8 ttl)
    assert a.hold() is None  # and the row says b
    state = read_lease(store)
    assert (state.holder, state.term) == ("b", 2)


def test_a_holder_counts_itself_holder_only_while_its_beat_is_fresh(store: Store) -> None:
    clock = Clock()
    a = Lease(store, "a", ttl_s=10.0, clock=clock)
    assert a.hold() == 1 and a.term == 1
    clock.now += 7.9
    assert a.term == 1
    clock.now += 0.2  # past 0.8 ttl without a beat: it cannot know nobody took over
    assert a.term is None


def test_fenced_writes_refused_after_takeover(store: Store) -> None:
    clock = Clock()
    a, b = Lease(store, "a", ttl_s=1.0, clock=clock), Lease(store, "b", ttl_s=1.0, clock=clock)
    assert a.hold() == 1
    with store.transaction() as conn:
        a.fence(conn, 1)  # holds: passes
    b.hold()
    clock.now += 1.0
    assert b.hold() == 2
    with pytest.raises(LeaseLost), store.transaction() as conn:
        a.fence(conn, 1)  # a slow old holder changes nothing
    with store.transaction() as conn:
        b.fence(conn, 2)


def test_release_hands_over_at_once_and_step_down_waits(store: Store) -> None:
    clock = Clock()
    a, b = Lease(store, "a", clock=clock), Lease(store, "b", clock=clock)
    assert a.hold() == 1
    a.release()
    assert read_lease(store).holder is None
    assert b.hold() == 2  # no ttl to wait
    b.step_down(for_s=10.0)
    assert b.hold() is None  # stepped down: not before 10 s
    assert a.hold() == 3
    clock.now += 11.0
    assert b.hold() is None  # a has been silent, but b must see it silent for a whole ttl
    clock.now += 6.0
    assert b.hold() == 4


def test_racing_candidates_never_share_a_term(store: Store) -> None:
    """Real threads and clocks: candidates that come and go; at every instant at most one
    counts itself the holder, and each term has one holder."""
    leases = [Lease(store, f"c{i}", ttl_s=0.4) for i in range(3)]
    holders: dict[int, set[str]] = {}
    overlap: list[tuple[str, str]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            held = [(lease.holder, lease.term) for lease in leases if lease.term is not None]
            for holder, term in held:
                assert term is not None
                holders.setdefault(term, set()).add(holder)
            if len(held) > 1:
                overlap.append((held[0][0], held[1][0]))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    for lease in leases:
        lease.start()
    try:
        for i in range(6):
            time.sleep(0.5)
            victim = next((lease for lease in leases if lease.term is not None), None)
            if victim is not None:  # the holder dies without a word: no release
                victim.stop(release=False)
                time.sleep(0.7)
                leases[leases.index(victim)] = fresh = Lease(store, f"n{i}", ttl_s=0.4)
                fresh.start()
    finally:
        for lease in leases:
            lease.stop()
        stop.set()
        watcher.join()
    assert not overlap, overlap
    assert all(len(h) == 1 for h in holders.values()), holders
    assert len(holders) >= 4  # the lease did change hands after each silent death
