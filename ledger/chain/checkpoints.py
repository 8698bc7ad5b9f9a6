"""Checkpoints of the Merkle log on chain: publishing them, reading them back, checking claims.

A checkpoint (size, root) is published with the consistency proof from the latest one on
chain, which the contract checks. It counts as anchored only once `confirmations` blocks
include it; if a reorg drops it meanwhile it is published again (re-proved, when the caller
gave a `ProofSource`, against whatever the chain's latest checkpoint is by then).
Publication is idempotent: a chain that already anchors the same (size, root) answers with
its anchor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger.chain._wire import event_topic, hex0x, wire_address
from ledger.chain.transactions import Transactor
from ledger.errors import (
    ChainError,
    CheckpointConflict,
    NotFound,
    TransactionReverted,
    VerificationError,
)
from ledger.retry import NotYet

# A proof source: given the size of the latest checkpoint on chain, the consistency proof
# from it to the new checkpoint. Lets the client re-prove after a reorg moved the chain back.
ProofSource = Callable[[int], Sequence[bytes]]


@dataclass(frozen=True)
class Anchor:
    """Where a checkpoint (size, root) is anchored: what a receipt cites.

    `gas_used` is None when the anchor was recovered from chain state (contract storage and
    the event log) rather than from the publishing transaction's receipt.
    """

    chain_id: int
    contract: str
    size: int
    root: bytes
    tx_hash: str
    block_number: int
    block_hash: str
    timestamp: int
    gas_used: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "root": hex0x(self.root)}


@dataclass(frozen=True)
class ChainCheckpoint:
    """A checkpoint as the contract stores it."""

    size: int
    root: bytes
    previous_size: int
    block_number: int
    timestamp: int
    index: int


@dataclass
class PendingCheckpoint:
    """A checkpoint mined but not yet confirmed, with what it takes to publish it again.

    `anchor` is where it is now (it changes if a reorg forces re-publication);
    `republished` counts those re-publications.
    """

    size: int
    root: bytes
    proof: Sequence[bytes] | ProofSource
    anchor: Anchor
    republished: int = field(default=0)


class CheckpointOps(Transactor):
    """The checkpoint half of `ChainClient`."""

    # -------------------------------------------------------------------------- reads
    def latest_checkpoint(self) -> ChainCheckpoint | None:
        """The latest anchored checkpoint, or None before the first."""
        try:
            size, root, previous, block, timestamp, index = self.call("latestCheckpoint")
        except TransactionReverted as exc:
            if exc.error_name == "NoCheckpoint":
                return None
            raise
        return ChainCheckpoint(size, bytes(root), previous, block, timestamp, index)

    def checkpoint(self, size: int) -> ChainCheckpoint:
        """The checkpoint at `size`. Raises: NotFound."""
        found = self.find_checkpoint(size)
        if found is None:
            raise NotFound(f"no checkpoint of size {size} on chain")
        return found

    def find_checkpoint(self, size: int) -> ChainCheckpoint | None:
        try:
            root, previous, block, timestamp, index = self.call("checkpoint", size)
        except TransactionReverted as exc:
            if exc.error_name == "UnknownCheckpoint":
                return None
            raise
        return ChainCheckpoint(size, bytes(root), previous, block, timestamp, index)

    def checkpoint_count(self) -> int:
        return int(self.call("checkpointCount"))

    def covering_checkpoint(self, index: int, from_size: int = 0) -> ChainCheckpoint:
        """The first anchored checkpoint that covers leaf `index`: the chain's answer to "when
        was this record first anchored", walking back from the checkpoint at `from_size`
        (0: the latest).

        Raises:
            NotFound: no checkpoint at `from_size`, or none anchored covers `index` yet.
        """
        try:
            size, _ = self.call("coveringCheckpoint", index, from_size)
        except TransactionReverted as exc:
            if exc.error_name == "UnknownCheckpoint":
                raise NotFound(f"no checkpoint of size {from_size or 'any'} on chain") from exc
            if exc.error_name == "IndexOutOfRange":
                raise NotFound(f"no anchored checkpoint covers leaf {index} yet") from exc
            raise
        return self.checkpoint(size)

    def checkpoints(self) -> list[ChainCheckpoint]:
        """Every checkpoint, oldest first (walks the chain of previous sizes)."""
        out: list[ChainCheckpoint] = []
        cp = self.latest_checkpoint()
        while cp is not None:
            out.append(cp)
            cp = self.checkpoint(cp.previous_size) if cp.previous_size else None
        return out[::-1]

    def anchor_of(self, size: int) -> Anchor:
        """Where the checkpoint at `size` was anchored, recovered from chain state alone.

        Raises:
            NotFound: no checkpoint at `size`.
        """
        cp = self.checkpoint(size)
        event = self.contract.events.CheckpointPublished()
        logs = self._rpc(
            "eth_getLogs",
            lambda: self.w3.eth.get_logs(
                {
                    "address": self.contract.address,
                    "fromBlock": cp.block_number,
                    "toBlock": cp.block_number,
                    "topics": [event_topic(event.abi), hex0x(size.to_bytes(32, "big"))],
                }
            ),
        )
        if not logs:
            raise ChainError(
                f"checkpoint {size} is in storage at block {cp.block_number} without its event"
            )
        log = logs[-1]
        return Anchor(
            chain_id=self.chain_id,
            contract=self.address,
            size=size,
            root=cp.root,
            tx_hash=hex0x(log["transactionHash"]),
            block_number=cp.block_number,
            block_hash=hex0x(log["blockHash"]),
            timestamp=cp.timestamp,
        )

    # -------------------------------------------------------------------------- checks
    def require_checkpoint(self, size: int, root: bytes) -> ChainCheckpoint:
        """Check that the chain anchors exactly (size, root).

        Raises:
            NotFound: nothing is anchored at `size`.
            VerificationError: another root is anchored at `size`.
        """
        cp = self.checkpoint(size)
        if cp.root != bytes(root):
            raise VerificationError(
                f"chain anchors root {hex0x(cp.root)} at size {size}, expected {hex0x(root)}"
            )
        return cp

    def check_anchor(
        self,
        size: int,
        root: bytes,
        *,
        chain_id: int | None = None,
        contract: str | None = None,
        tx_hash: str | None = None,
        block_number: int | None = None,
    ) -> Anchor:
        """Check a receipt's anchoring claims against chain state; return the chain's anchor.

        Each given claim must hold: this chain and contract, (size, root) anchored, in that
        block, by that transaction.

        Raises:
            NotFound: nothing is anchored at `size`.
            VerificationError: a claim differs from chain state.
        """
        if chain_id is not None and chain_id != self.chain_id:
            raise VerificationError(f"anchor names chain {chain_id}, this is chain {self.chain_id}")
        if contract is not None and wire_address(contract) != self.address:
            raise VerificationError(f"anchor names contract {contract}, this is {self.address}")
        self.require_checkpoint(size, root)
        anchor = self.anchor_of(size)
        if block_number is not None and block_number != anchor.block_number:
            raise VerificationError(
                f"checkpoint {size} is anchored in block {anchor.block_number}, not {block_number}"
            )
        if tx_hash is not None and tx_hash.lower() != anchor.tx_hash:
            raise VerificationError(
                f"checkpoint {size} was anchored by {anchor.tx_hash}, not {tx_hash}"
            )
        return anchor

    def verify_inclusion(
        self, size: int, index: int, leaf_hash: bytes, proof: Sequence[bytes]
    ) -> bytes:
        """Check an inclusion proof against the anchored checkpoint at `size`, on chain.

        Returns the checkpoint's root.

        Raises:
            NotFound: no checkpoint at `size`.
            VerificationError: the proof is malformed or leads to another root.
        """
        try:
            return bytes(self.call("verifyInclusion", size, index, leaf_hash, list(proof)))
        except TransactionReverted as exc:
            if exc.error_name == "UnknownCheckpoint":
                raise NotFound(f"no checkpoint of size {size} on chain") from exc
            if exc.error_name in {"IndexOutOfRange", "ProofLength", "InclusionRootMismatch"}:
                raise VerificationError(f"on-chain inclusion check failed: {exc}") from exc
            raise

    # -------------------------------------------------------------------------- publication
    def publish_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes] | ProofSource
    ) -> Anchor:
        """Anchor (size, root) and wait until `confirmations` blocks include it.

        `proof` is the consistency proof from the latest checkpoint on chain (empty for the
        first), or a function from that checkpoint's size to the proof: with a function the
        client can re-prove when a reorg took earlier checkpoints away, too.

        Idempotent: if the chain already anchors this exact (size, root), e.g. after a crash
        between sending and recording, its anchor is returned without a new transaction.

        Raises:
            CheckpointConflict: the chain anchors another root at `size`.
            TransactionReverted: the contract refused (NotOperator, SizeNotIncreasing,
                OldRootMismatch: not an extension of the anchored log, ...).
            ChainUnavailable: the node is unreachable, or confirmations did not come in time.
        """
        return self.wait_anchored(self.submit_checkpoint(size, root, proof))

    def submit_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes] | ProofSource
    ) -> PendingCheckpoint:
        """The first half of `publish_checkpoint`: send it and wait for its receipt only.

        Hand the result to `wait_anchored` for the confirmations (a caller may record the
        transaction hash in between). Raises as `publish_checkpoint` does.
        """
        root = bytes(root)
        return PendingCheckpoint(size, root, proof, self._submit(size, root, proof))

    def wait_anchored(self, pending: PendingCheckpoint) -> Anchor:
        """Wait until `confirmations` blocks include the checkpoint, re-publishing it (and
        updating `pending`) if a reorg drops it meanwhile.

        Raises:
            ChainUnavailable: confirmations did not come within `timeout`.
            TransactionReverted: re-publication was refused (e.g. a fixed proof no longer
                fits the chain's latest checkpoint: pass a ProofSource to avoid that).
        """

        def confirmed() -> Anchor:
            anchor = pending.anchor
            block = self._block_or_none(anchor.block_number)
            if block is None or hex0x(block["hash"]) != anchor.block_hash:
                self._reanchor(pending)
                raise NotYet
            # Its block is canonical: with depth 1 that is all we need to know.
            depth = 1 if self.confirmations == 1 else self.block_number() - block["number"] + 1
            if depth < self.confirmations:
                raise NotYet
            return anchor

        return self._poll(confirmed, f"{self.confirmations} confirmations")

    def _reanchor(self, pending: PendingCheckpoint) -> None:
        """The block that held `pending` is gone. The node may have re-included the
        transaction elsewhere; otherwise publish again (our nonce may have been rolled back
        too)."""
        self.resync()
        existing = self.find_checkpoint(pending.size)
        if existing is not None and existing.root == pending.root:
            pending.anchor = self.anchor_of(pending.size)
        else:
            pending.republished += 1
            pending.anchor = self._submit(pending.size, pending.root, pending.proof)

    def _submit(self, size: int, root: bytes, proof: Sequence[bytes] | ProofSource) -> Anchor:
        latest = self.latest_checkpoint()
        if latest is not None and latest.size >= size:
            existing = self.find_checkpoint(size)
            if existing is not None and existing.root != root:
                raise CheckpointConflict(
                    f"chain anchors root {hex0x(existing.root)} at size {size}, "
                    f"refusing to publish {hex0x(root)}"
                )
            if existing is not None:
                return self.anchor_of(size)
        hashes = list(proof(latest.size if latest else 0) if callable(proof) else proof)
        try:
            tx = self.transact("publishCheckpoint", size, root, hashes)
        except TransactionReverted:
            # A concurrent or earlier attempt may have landed the very same checkpoint.
            existing = self.find_checkpoint(size)
            if existing is not None and existing.root == root:
                return self.anchor_of(size)
            raise
        return Anchor(
            chain_id=self.chain_id,
            contract=self.address,
            size=size,
            root=root,
            tx_hash=tx.tx_hash,
            block_number=tx.block_number,
            block_hash=tx.block_hash,
            timestamp=int(self._block(tx.block_number)["timestamp"]),
            gas_used=tx.gas_used,
        )
