"""The sequencer: publishes checkpoints of the log to the chain, and survives anything.

Every round it (1) reconciles: local checkpoints the chain already anchors get their anchoring
data, which covers a crash between publishing and recording; (2) checks the chain against the
log: the anchored root must be the log's root at that size, or the database has forked or lost
records, and the sequencer stops rather than paper over it; (3) when N records or T seconds have
accumulated, commits a checkpoint locally, publishes it with a consistency proof from the
anchored one, waits for confirmation, and records where it landed.

Nothing here is held only in memory: a process killed at any instruction restarts from the
database and the chain. Roots are a pure function of the append-only log, so a size can never
be published with two roots, and `publish_checkpoint` is idempotent for the same (size, root).
While the chain is unreachable, appends continue and the backlog publishes when it returns.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.errors import ChainError, ChainUnavailable, Conflict, VerificationError
from ledger.log import Checkpoint, Log
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


class Chain(Protocol):
    """What the sequencer needs of `ledger.chain.ChainClient`."""

    def latest_checkpoint(self) -> ChainCheckpointLike | None: ...
    def find_checkpoint(self, size: int) -> ChainCheckpointLike | None: ...
    def anchor_of(self, size: int) -> AnchorLike: ...
    def publish_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes] | Callable[[int], Sequence[bytes]]
    ) -> AnchorLike: ...


@dataclass(frozen=True)
class Policy:
    every: int = 256  # publish when this many records wait ...
    interval_s: float = 5.0  # ... or when the oldest waiting record is this old


def _crash_point(name: str) -> None:
    """Fault injection for the crash tests: FORGEPROOF_CRASH_AT=name kills the process here."""
    if os.environ.get("FORGEPROOF_CRASH_AT") == name:
        os._exit(137)


class Sequencer:
    def __init__(self, log_: Log, chain: Chain, policy: Policy = Policy()) -> None:
        self.log = log_
        self.chain = chain
        self.policy = policy
        self._waiting_since: float | None = None
        self.published = 0

    def reconcile(self) -> int:
        """Check the chain against the log and record anchors published before a crash.

        Returns the anchored size (0 before the first checkpoint).

        Raises:
            VerificationError: the chain anchors a root the log does not have (fork or loss).
        """
        latest = self.chain.latest_checkpoint()
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
                self._record(cp.size, self.chain.anchor_of(cp.size))
        return latest.size

    def due(self, waiting: int) -> bool:
        if waiting <= 0:
            self._waiting_since = None
            return False
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        return waiting >= self.policy.every or now - self._waiting_since >= self.policy.interval_s

    def step(self, *, force: bool = False) -> Checkpoint | None:
        """One round; returns the checkpoint it anchored, if any.

        Raises:
            ChainUnavailable: the node is down (nothing is lost; try again later).
            VerificationError: the chain and the log disagree (see `reconcile`).
        """
        anchored = self.reconcile()
        waiting = self.log.committed_size() - anchored
        if not (self.due(waiting) or (force and waiting > 0)):
            return None
        cp = self.log.checkpoint()
        _crash_point("after_local_checkpoint")

        def proof(previous: int) -> list[bytes]:
            return self.log.consistency_proof(previous, cp.size).hashes if previous else []

        anchor = self.chain.publish_checkpoint(cp.size, cp.root, proof)
        _crash_point("after_publish")
        self._record(cp.size, anchor)
        self._waiting_since = None
        self.published += 1
        log.info("anchored checkpoint size %d in block %d", cp.size, anchor.block_number)
        return cp

    def _record(self, size: int, anchor: AnchorLike) -> None:
        self.log.mark_anchored(
            size,
            chain_id=anchor.chain_id,
            contract=anchor.contract.lower(),
            tx_hash=anchor.tx_hash,
            block_number=anchor.block_number,
        )

    def run(
        self,
        stop: threading.Event,
        *,
        tick_s: float = 0.2,
        on_anchor: Callable[[Checkpoint], Any] | None = None,
    ) -> None:
        """Loop until `stop` is set; chain outages back off and retry, never drop records."""
        backoff = tick_s
        while not stop.is_set():
            try:
                cp = self.step()
                if cp is not None and on_anchor is not None:
                    on_anchor(cp)
                backoff = tick_s
            except (ChainUnavailable, Conflict) as exc:
                log.warning("checkpoint not published yet: %s (retrying in %.1fs)", exc, backoff)
                backoff = min(backoff * 2, 10.0)
            except VerificationError:
                log.exception("the chain and the log disagree; the sequencer stops")
                raise
            except ChainError as exc:
                log.warning("chain error: %s (retrying in %.1fs)", exc, backoff)
                backoff = min(backoff * 2, 10.0)
            stop.wait(backoff)
