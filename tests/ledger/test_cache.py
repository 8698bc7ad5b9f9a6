"""ledger/cache.py: least recently used out first, entries expire after ttl_s."""

from __future__ import annotations

import threading

import pytest

from ledger.cache import Cache


def test_least_recently_used_goes_first() -> None:
    c: Cache[str, int] = Cache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now the most recent
    c.put("c", 3)
    assert (c.get("a"), c.get("b"), c.get("c")) == (1, None, 3)
    assert len(c) == 2
    c.clear()
    assert len(c) == 0 and c.get("a") is None


def test_entries_expire() -> None:
    now = [0.0]
    c: Cache[str, int] = Cache(10, 0.5, timer=lambda: now[0])
    c.put("a", 1)
    now[0] = 0.49
    assert c.get("a") == 1
    now[0] = 0.5
    assert c.get("a") is None


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Cache(0)


def test_threads_share_it() -> None:
    c: Cache[int, int] = Cache(64)

    def work(base: int) -> None:
        for i in range(2000):
            c.put(base + i % 100, i)
            c.get(base + (i * 7) % 100)

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(c) == 64
