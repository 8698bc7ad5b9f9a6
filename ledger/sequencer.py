"""The sequencer: publishes checkpoints of the log to the chain, and survives anything.

Every round it (1) checks that what the database calls anchored the chain still holds: a node
that lost blocks (restored from an older state, a deep reorganisation) takes anchors away, and
their checkpoints are marked pending again and re-published (every round for anchors beyond
the chain's latest checkpoint, every `recheck_s` and after every reconnect for the recent
ones); (2) reconciles: local checkpoints the chain already anchors get their anchoring data,
which covers a crash between publishing and recording; (3) checks the chain against the log:
the anchored root must be the log's root at that size, or the database has forked or lost
records, and the sequencer stops rather than paper over it; (4) when N records or T seconds
have accumulated, commits a checkpoint locally, publishes it with a consistency proof from the
anchored one, waits for confirmation, and records where it landed.

Any number of sequencers may run for one deployment: with a `Lease`, one publishes and the
others stand by, taking over within the lease's ttl when it dies; its database writes are
fenced by its term. Nothing but an integrity failure (3) stops `run`: database and node
outages, lost leases and conflicts are logged and retried with backoff.

Nothing here is held only in memory: a process killed at any instruction restarts from the
database and the chain. Roots are a pure function of the append-only log, so a size can never
be published with two roots, and `publish_checkpoint` is idempotent for the same (size, root).
While the chain is unreachable, appends continue and the backlog publishes when it returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ledger.errors import (
    ChainUnavailable,
    CheckpointConflict,
    LedgerError,
    VerificationError,
)
from ledger.lease import Lease, LeaseLost
from ledger.log import Checkpoint, Fence, Log
from ledger.records import hex0x

log = logging.getLogger("forgeproof.sequencer")


class AnchorLike(Protocol):
    # Read-only members: the chain's values are frozen dataclasses.
    @property
    def chain_id(self) -> int: ...
    @property
    def contract(self) -> str: ...
    @property
    def tx_hash(self) -> str: ...
    @property
    def block_number(self) -> int: ...


class ChainCheckpointLike(Protocol):
    @property
    def size(self) -> int: ...
    @property
    def root(self) -> bytes: ...
    @property
    def block_number(self) -> int: ...


class Chain(Protocol):
    """What the sequencer needs of `ledger.chain.ChainClient`."""

    def latest_checkpoint(self) -> ChainCheckpointLike | None: ...
    def find_checkpoint(self, size: int) -> ChainCheckpointLike | None: ...
    def anchor_of(self, size: int) -> AnchorLike: ...
    def publish_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes] | Callable[[int], Sequence[bytes]]
    ) -> AnchorLike: ...
    def resync(self) -> None: ...


@dataclass(frozen=True)
class Policy:
    every: int = 256  # publish when this many records wait ...
    interval_s: float = 5.0  # ... or when the oldest waiting record is this old
    recheck_s: float = 10.0  # how often recent anchors are checked against the node
    recheck_depth: int = 64  # how many recent anchored checkpoints are checked
    max_backoff_s: float = 5.0  # retry delay after failures, doubling up to this


class Sequencer:
    """Publishes the log's checkpoints; see the module's documentation.

    `role` says what it is doing ("leader", "standby", "stopped" after an integrity failure,
    "starting"), `last_error` the latest transient failure, `failure` what stopped it.
    `on_unanchor` runs after anchors were found gone (to drop cached receipts and anchors).
    """

    # A test seam: called with the name of each point of a publication ("after_local_checkpoint",
    # "after_publish"); the crash tests end the process there. None in production.
    at_point: ClassVar[Callable[[str], Any] | None] = None

    def __init__(
        self,
        log_: Log,
        chain: Chain,
        policy: Policy = Policy(),
        *,
        lease: Lease | None = None,
        on_unanchor: Callable[[], Any] | None = None,
    ) -> None:
        self.log = log_
        self.chain = chain
        self.policy = policy
        self.lease = lease
        self.on_unanchor = on_unanchor
        self._waiting_since: float | None = None
        self._recheck_at = 0.0  # monotonic time of the next deep anchor check (0: now)
        self.published = 0
        self.unanchored = 0
        self.role = "starting"
        self.last_error: str | None = None
        self.last_error_class: str | None = None  # what may be shown to anyone
        self.failure: LedgerError | None = None

    # --- one round ---------------------------------------------------------------------------

    def reconcile(self, fence: Fence | None = None) -> int:
        """Check the chain against the log, take back anchors the chain no longer holds, and
        record anchors published before a crash.

        Returns the anchored size (0 before the first checkpoint).

        Raises:
            VerificationError: the chain anchors a root the log does not have (fork or loss).
        """
        latest = self.chain.latest_checkpoint()
        self._check_anchors(latest.size if latest else 0, fence)
        if latest is None:
            return 0
        have = self.log.committed_size()
        if latest.size > have:
            raise VerificationError(
                f"the chain anchors size {latest.size} but the log holds {have} records: "
                "the database lost records; restore it before going on"
            )
        root = self.log.root(latest.size)
        if root != latest.root:
            raise VerificationError(
                f"the chain anchors root {hex0x(latest.root)} at size {latest.size}, the log has "
                f"{hex0x(root)}: the database has forked from what was published"
            )
        for cp in self.log.checkpoints(limit=16):
            if cp.anchored or cp.size > latest.size:
                continue
            found = self.chain.find_checkpoint(cp.size)
            if found is not None and found.root == cp.root:
                self._record(cp.size, self.chain.anchor_of(cp.size), fence)
        return latest.size

    def _check_anchors(self, chain_size: int, fence: Fence | None) -> None:
        """Un-anchor what the database calls anchored and the chain does not hold: anchors
        beyond the chain's latest checkpoint every round, the recent ones against the chain's
        own record every `recheck_s` (and after `recheck_now`)."""
        deep = time.monotonic() >= self._recheck_at
        gone = 0
        for cp in self.log.checkpoints(limit=self.policy.recheck_depth if deep else 4):
            if not cp.anchored:
                continue
            if cp.size > chain_size:
                why = f"the chain's latest checkpoint is {chain_size}"
            elif deep:
                found = self.chain.find_checkpoint(cp.size)
                if found is not None and found.root == cp.root:
                    if found.block_number != cp.block_number:  # re-included elsewhere
                        self._record(cp.size, self.chain.anchor_of(cp.size), fence)
                    continue
                why = "the chain holds no checkpoint of that size"
            else:
                continue
            log.warning(
                "checkpoint %d was anchored in block %s (tx %s) but %s: the node lost blocks; "
                "marking it pending to publish it again",
                cp.size,
                cp.block_number,
                cp.tx_hash,
                why,
            )
            self.log.unanchor(cp.size, fence=fence)
            gone += 1
        if gone:
            self.unanchored += gone
            self.chain.resync()  # the node's nonce for our key went back with its blocks
            if self.on_unanchor is not None:
                self.on_unanchor()
        if deep:
            self._recheck_at = time.monotonic() + self.policy.recheck_s

    def recheck_now(self) -> None:
        """Check recent anchors deeply on the next round (after a reconnect)."""
        self._recheck_at = 0.0

    def due(self, waiting: int) -> bool:
        if waiting <= 0:
            self._waiting_since = None
            return False
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        return waiting >= self.policy.every or now - self._waiting_since >= self.policy.interval_s

    def step(self, *, force: bool = False, term: int | None = None) -> Checkpoint | None:
        """One round; returns the checkpoint it anchored, if any. With a lease, `term` is the
        term it acts under: every database write is fenced by it.

        Raises:
            ChainUnavailable: the node is down (nothing is lost; try again later).
            LeaseLost: another sequencer took over (nothing was written).
            VerificationError: the chain and the log disagree (see `reconcile`).
        """
        fence = self._fence(term)
        anchored = self.reconcile(fence)
        waiting = self.log.committed_size() - anchored
        if not (self.due(waiting) or (force and waiting > 0)):
            return None
        cp = self.log.checkpoint(fence=fence)
        self._point("after_local_checkpoint")

        def proof(previous: int) -> list[bytes]:
            return self.log.consistency_proof(previous, cp.size).hashes if previous else []

        if self.lease is not None and self.lease.term != term:
            raise LeaseLost(f"the lease lapsed before publishing checkpoint {cp.size}")
        anchor = self.chain.publish_checkpoint(cp.size, cp.root, proof)
        self.published += 1  # mined, whether or not recording it below still may
        self._point("after_publish")
        log.info(
            "published checkpoint size=%d block=%d tx=%s term=%s holder=%s",
            cp.size,
            anchor.block_number,
            anchor.tx_hash,
            term,
            self.lease.holder if self.lease else None,
        )
        self._record(cp.size, anchor, fence)
        self._waiting_since = None
        return cp

    def _point(self, name: str) -> None:
        hook = Sequencer.at_point  # read from the class: a function, not bound to self
        if hook is not None:
            hook(name)

    def _fence(self, term: int | None) -> Fence | None:
        lease = self.lease
        if lease is None or term is None:
            return None
        return lambda conn: lease.fence(conn, term)

    def _record(self, size: int, anchor: AnchorLike, fence: Fence | None) -> None:
        self.log.mark_anchored(
            size,
            chain_id=anchor.chain_id,
            contract=anchor.contract.lower(),
            tx_hash=anchor.tx_hash,
            block_number=anchor.block_number,
            fence=fence,
        )

    # --- the loop ----------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        *,
        tick_s: float = 0.2,
        on_anchor: Callable[[Checkpoint], Any] | None = None,
    ) -> None:
        """Loop until `stop` is set. With a lease, beat it from a thread of its own, publish
        only while holding it, and release it on the way out.

        Raises:
            VerificationError, CheckpointConflict: an integrity failure, the only way out
                besides `stop` (kept in `failure`; `role` becomes "stopped").
        """
        if self.lease is not None:
            self.lease.start()
        try:
            self._loop(stop, tick_s, on_anchor)
        finally:
            if self.lease is not None:
                self.lease.stop(release=True)

    def _loop(
        self, stop: threading.Event, tick_s: float, on_anchor: Callable[[Checkpoint], Any] | None
    ) -> None:
        backoff = tick_s
        chain_down_since: float | None = None
        while not stop.is_set():
            wait = tick_s
            try:
                term = self.lease.term if self.lease is not None else None
                if self.lease is not None and term is None:
                    self.role = "standby"
                    stop.wait(min(1.0, self.lease.ttl_s / 4))
                    continue
                self.role = "leader"
                cp = self.step(term=term)
                if cp is not None and on_anchor is not None:
                    on_anchor(cp)
                self.last_error = self.last_error_class = None
                backoff, chain_down_since = tick_s, None
            except (VerificationError, CheckpointConflict) as exc:
                self.role, self.failure = "stopped", exc
                log.critical("the chain and the log disagree; the sequencer stops: %s", exc)
                raise
            except LeaseLost as exc:
                log.info("standing by: %s", exc)
            except Exception as exc:  # outages, conflicts, bugs: logged, retried, never silent
                if isinstance(exc, LedgerError):
                    log.warning(
                        "checkpoint not published yet: %s (retrying in %.1fs)", exc, backoff
                    )
                else:
                    log.exception("sequencer round failed (retrying in %.1fs)", backoff)
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.last_error_class = type(exc).__name__
                if isinstance(exc, ChainUnavailable):
                    self.recheck_now()  # after the node returns, check what it still holds
                    chain_down_since = chain_down_since or time.monotonic()
                    self._step_down_if_cut_off(chain_down_since)
                wait, backoff = backoff, min(backoff * 2, self.policy.max_backoff_s)
            stop.wait(wait)

    def _step_down_if_cut_off(self, since: float) -> None:
        """A leader that cannot reach the node for 3 ttls lets a standby try its own."""
        lease = self.lease
        if lease is not None and time.monotonic() - since > 3 * lease.ttl_s:
            log.warning("the node is unreachable from here: handing the lease over")
            lease.step_down(2 * lease.ttl_s)
