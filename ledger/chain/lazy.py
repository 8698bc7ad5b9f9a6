"""A chain client connected on first use, so that a process can start while its node is down.

Reads and appends need the database only; the sequencer, verify's chain checks and registry
changes need the node. `LazyChain` stands in for a `ChainClient`: every attribute is the
connected client's, and until the node answers each use raises ChainUnavailable at once (a
failed attempt is remembered for `retry_s`, so callers are not held up by connection retries).
Once connected, the client's own retries cover later outages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ledger.errors import LedgerError

if TYPE_CHECKING:
    from ledger.chain.client import ChainClient


class LazyChain:
    def __init__(self, connect: Callable[[], ChainClient], *, retry_s: float = 2.0) -> None:
        self._connect = connect
        self._retry_s = retry_s
        self._client: ChainClient | None = None
        self._failed: tuple[float, LedgerError] | None = None
        self._lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None

    def client(self) -> ChainClient:
        """The connected client.

        Raises:
            ChainUnavailable: the node could not be reached (now or within `retry_s`).
            ChainError: the node answered with something else (another contract, say).
        """
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is not None:
                return self._client
            if self._failed is not None and time.monotonic() - self._failed[0] < self._retry_s:
                raise self._failed[1]
            try:
                self._client = self._connect()
            except LedgerError as exc:
                self._failed = (time.monotonic(), exc)
                raise
            self._failed = None
            return self._client

    def resync(self) -> None:
        if self._client is not None:
            self._client.resync()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.client(), name)
