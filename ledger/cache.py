"""The one cache helper: a thread-safe map that keeps at most `max_entries` entries, least
recently used out first, each for at most `ttl_s` seconds when given (cachetools underneath).

    receipts: Cache[Key, bytes] = Cache(4096)             # an LRU
    answers: Cache[bytes, Caller] = Cache(10_000, 0.5)    # ... whose entries also expire
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import cachetools

K = TypeVar("K")
V = TypeVar("V")


class Cache(Generic[K, V]):
    def __init__(
        self,
        max_entries: int,
        ttl_s: float | None = None,
        *,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._items: cachetools.Cache[K, V] = (
            cachetools.LRUCache(max_entries)
            if ttl_s is None
            else cachetools.TTLCache(max_entries, ttl_s, timer=timer)
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._items[key] = value
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


__all__ = ["Cache"]
