"""A lease in the database: one holder at a time, a fencing term, takeover when the holder dies.

Any number of candidates (sequencers in `forgeproof up` processes or standalone) share one row:

- the holder beats (bumps `beat`) every `ttl_s / 4` from a thread of its own, so a long chain
  wait does not cost it the lease;
- a candidate that sees the same (term, beat) for `ttl_s` by its own monotonic clock takes the
  lease over and bumps `term`. No wall clocks are compared, so clock skew between hosts does
  not matter; only clock rates do, and the holder counts its lease valid for 0.8 `ttl_s` after
  a beat it began to write;
- the holder's writes call `fence(conn)` in their own transaction: it locks the row and refuses
  (LeaseLost) unless the holder still holds the term it acts under, so a holder that was taken
  over, however slow, changes nothing. The row lock orders every fenced write against every
  takeover.

On SQLite "locking the row" takes the database's write lock; on PostgreSQL it is SELECT ... FOR
UPDATE. Same code path.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Update, select, update

from ledger.errors import Conflict, LedgerError
from ledger.registry import now_us
from ledger.store import Store
from ledger.store.models import LeaseRow

log = logging.getLogger("forgeproof.lease")

VALID_FRACTION = 0.8  # of ttl_s after a beat: margin for clock rates that differ


class LeaseLost(Conflict):
    """This candidate does not hold the lease (any more): its write was refused."""


@dataclass(frozen=True)
class LeaseState:
    """The row as last read: who holds the lease, under which term, how fresh its beat is."""

    name: str
    holder: str | None
    term: int
    beat: int
    renewed_us: int


def candidate_id(role: str) -> str:
    """host:pid:role:random, unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}:{secrets.token_hex(3)}"


class Lease:
    def __init__(
        self,
        store: Store,
        holder: str,
        *,
        name: str = "sequencer",
        ttl_s: float = 6.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.holder = holder
        self.name = name
        self.ttl_s = ttl_s
        self.clock = clock
        self._term: int | None = None  # the term held, if any
        self._valid_until = -float("inf")
        self._seen: tuple[int, int, str | None] | None = None  # another holder's (term, beat)
        self._seen_at = 0.0
        self._paused_until = -float("inf")  # `step_down`: no taking the lease before then
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    # --- the holder's view ------------------------------------------------------------------

    @property
    def term(self) -> int | None:
        """The term this candidate holds now, or None (never held, taken over, or not renewed
        in time: a holder that cannot reach the database stops counting itself the holder)."""
        with self._lock:
            if self._term is not None and self.clock() < self._valid_until:
                return self._term
            return None

    def hold(self) -> int | None:
        """Renew the lease, or take it if it is free or its holder stopped beating; returns the
        term held, or None while another candidate holds it.

        Raises:
            StorageError: the database cannot be reached (the lease lapses after ttl_s).
        """
        began = self.clock()
        with self.store.transaction() as conn:
            row = self._lock_row(conn)
            seen = (row.term, row.beat, row.holder)
            with self._lock:
                mine = row.holder == self.holder and row.term == self._term
                stale = seen == self._seen and began - self._seen_at >= self.ttl_s
                if seen != self._seen:
                    self._seen, self._seen_at = seen, began
            if mine:
                conn.execute(self._update(beat=row.beat + 1))
                term = row.term
            elif (row.holder is None or stale) and began >= self._paused_until:
                term = row.term + 1
                conn.execute(self._update(holder=self.holder, term=term, beat=0))
            else:
                term = None
        with self._lock:
            if term is not None:
                if term != self._term:
                    log.info("%s holds the %s lease, term %d", self.holder, self.name, term)
                self._term, self._valid_until = term, began + VALID_FRACTION * self.ttl_s
            else:
                if self._term is not None:
                    log.warning("%s lost the %s lease to %s", self.holder, self.name, row.holder)
                self._term = None
        return term

    def release(self) -> None:
        """Give the lease up now (a clean stop), so that a standby takes over at once."""
        with self._lock:
            term, self._term = self._term, None
        if term is None:
            return
        try:
            with self.store.transaction() as conn:
                row = self._lock_row(conn)
                if row.holder == self.holder and row.term == term:
                    conn.execute(self._update(holder=None))
        except LedgerError as exc:
            log.warning("could not release the %s lease (it lapses instead): %s", self.name, exc)

    def step_down(self, for_s: float) -> None:
        """Release the lease and take it again no sooner than `for_s` from now: a holder that
        cannot do its work (its node is unreachable) lets another candidate try."""
        with self._lock:
            self._paused_until = self.clock() + for_s
        self.release()

    def fence(self, conn: Connection, term: int) -> None:
        """Inside a write transaction: lock the lease row and refuse unless this candidate
        still holds `term`.

        Raises:
            LeaseLost: another candidate took the lease (or it was released).
        """
        row = self._lock_row(conn)
        if row.holder != self.holder or row.term != term:
            raise LeaseLost(
                f"the {self.name} lease is held by {row.holder} in term {row.term}; "
                f"{self.holder} acted under term {term}"
            )

    # --- the beating thread ------------------------------------------------------------------

    def start(self) -> None:
        """Beat (or stand by) from a thread until `stop`."""
        self._thread = threading.Thread(target=self._beat, name=f"{self.name}-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self.hold()
                self.last_error = None
            except LedgerError as exc:
                if self.last_error is None:
                    log.warning("%s lease not renewed: %s", self.name, exc)
                self.last_error = str(exc)
            except Exception as exc:  # never let the beat die silently
                log.exception("%s lease thread", self.name)
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(self.ttl_s / 4)

    def stop(self, *, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if release:
            self.release()

    def _lock_row(self, conn: Connection) -> Row[Any]:
        if conn.dialect.name == "sqlite":  # the write lock, before reading
            conn.execute(
                update(LeaseRow).where(LeaseRow.name == self.name).values(beat=LeaseRow.beat)
            )
        return conn.execute(
            select(LeaseRow).where(LeaseRow.name == self.name).with_for_update()
        ).one()

    def _update(self, **values: object) -> Update:
        return (
            update(LeaseRow).where(LeaseRow.name == self.name).values(renewed_us=now_us(), **values)
        )


def read_lease(store: Store, name: str = "sequencer") -> LeaseState:
    """The lease as the database has it, for health reports."""
    with store.reading() as conn:
        row = conn.execute(select(LeaseRow).where(LeaseRow.name == name)).one()
    return LeaseState(name, row.holder, row.term, row.beat, row.renewed_us)
