"""ProvenanceLedger checkpoints: the on-chain RFC 9162 verifiers against the Python reference.

Proofs come from `ledger.merkle` over real trees (every size class up to 1000 leaves) and over
synthetic uniform trees up to 2**32 leaves; the contract must accept exactly what
`ledger.merkle` accepts, the official RFC 6962 vectors included.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from web3.logs import DISCARD

from ledger.chain import ChainClient
from ledger.errors import (
    CheckpointConflict,
    NotFound,
    ProofError,
    TransactionReverted,
    VerificationError,
)
from ledger.merkle import verify_consistency, verify_inclusion
from tests.contracts.test_registry import reverts
from tests.ledger.chain.testonly import ChainEnv
from tests.ledger.testonly.trees import MemoryTree, UniformTree

# Sizes around every power of two up to 512, and an arbitrary one.
SIZE_CLASSES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129]
SIZE_CLASSES += [255, 256, 257, 511, 512, 513, 1000]
GAS_LIMIT_PER_CHECKPOINT = 150_000


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    return MemoryTree().extend_to(1000)


@pytest.fixture(scope="module")
def verifier(env: ChainEnv) -> ChainClient:
    """One deployment for the pure verifier views (they read no state)."""
    return env.deploy()


def flip(proof: list[bytes], i: int) -> list[bytes]:
    bad = list(proof)
    bad[i] = bytes([bad[i][0] ^ 0x01]) + bad[i][1:]
    return bad


def test_first_checkpoint_takes_no_proof(ledger: ChainClient, tree: MemoryTree) -> None:
    reverts("UnexpectedProof", ledger.transact, "publishCheckpoint", 5, tree.root(5), [b"\1" * 32])
    reverts("SizeNotIncreasing", ledger.transact, "publishCheckpoint", 0, tree.root(5), [])
    reverts("ZeroRoot", ledger.transact, "publishCheckpoint", 5, b"\0" * 32, [])
    anchor = ledger.publish_checkpoint(5, tree.root(5), [])
    receipt = ledger.w3.eth.get_transaction_receipt(anchor.tx_hash)  # type: ignore[arg-type]
    published = ledger.contract.events.CheckpointPublished().process_receipt(
        receipt, errors=DISCARD
    )
    assert [dict(e["args"]) for e in published] == [
        {"size": 5, "root": tree.root(5), "previousSize": 0, "index": 0}
    ]
    latest = ledger.latest_checkpoint()
    assert latest is not None
    assert (latest.size, latest.root, latest.previous_size, latest.index) == (5, tree.root(5), 0, 0)
    assert (latest.block_number, latest.timestamp) == (anchor.block_number, anchor.timestamp)
    # Now a proof is required.
    reverts("ProofLength", ledger.transact, "publishCheckpoint", 6, tree.root(6), [])


def test_covering_checkpoint_is_the_first_that_covers_a_leaf(
    ledger: ChainClient, tree: MemoryTree
) -> None:
    """A record's key is judged at the block of the first checkpoint that covered it: the
    contract walks back along previousSize to find it, from any later checkpoint."""
    sizes = [3, 8, 9, 20]
    blocks = {}
    previous = 0
    for size in sizes:
        proof = tree.consistency(previous, size) if previous else []
        blocks[size] = ledger.publish_checkpoint(size, tree.root(size), proof).block_number
        previous = size
    expect = {0: 3, 2: 3, 3: 8, 7: 8, 8: 9, 9: 20, 19: 20}
    for index, first in expect.items():
        for start in [s for s in sizes if s > index] + [0]:
            cp = ledger.covering_checkpoint(index, start)
            assert (cp.size, cp.block_number) == (first, blocks[first]), (index, start)
    reverts("IndexOutOfRange", ledger.call, "coveringCheckpoint", 8, 8)
    reverts("UnknownCheckpoint", ledger.call, "coveringCheckpoint", 1, 5)
    with pytest.raises(NotFound, match="covers leaf 20"):
        ledger.covering_checkpoint(20)


def test_every_size_class_in_sequence(ledger: ChainClient, tree: MemoryTree) -> None:
    previous = 0
    for size in SIZE_CLASSES:
        proof = tree.consistency(previous, size) if previous else []
        ledger.publish_checkpoint(size, tree.root(size), proof)
        previous = size
    chain = ledger.checkpoints()
    assert [c.size for c in chain] == SIZE_CLASSES
    assert [c.previous_size for c in chain] == [0, *SIZE_CLASSES[:-1]]
    assert [c.index for c in chain] == list(range(len(SIZE_CLASSES)))
    assert all(c.root == tree.root(c.size) for c in chain)
    for size in SIZE_CLASSES:
        for index in sorted({0, size // 2, size - 1}):
            proof = tree.inclusion(index, size)
            got = ledger.verify_inclusion(size, index, tree.leaf_hash(index), proof)
            assert got == tree.root(size)
            if proof:
                with pytest.raises(VerificationError, match="InclusionRootMismatch"):
                    ledger.verify_inclusion(size, index, tree.leaf_hash(index), flip(proof, 0))
    with pytest.raises(VerificationError, match="IndexOutOfRange"):
        ledger.verify_inclusion(8, 8, tree.leaf_hash(0), tree.inclusion(0, 8))
    with pytest.raises(VerificationError, match="ProofLength"):
        ledger.verify_inclusion(8, 0, tree.leaf_hash(0), tree.inclusion(0, 8)[:-1])
    with pytest.raises(NotFound):
        ledger.verify_inclusion(10, 0, tree.leaf_hash(0), tree.inclusion(0, 10))


def test_forked_log_is_rejected(ledger: ChainClient) -> None:
    honest = MemoryTree(b"honest").extend_to(100)
    ledger.publish_checkpoint(40, honest.root(40), [])

    # A log that rewrote leaf 17 and grew on: it cannot prove it extends the anchored one.
    class Forged(MemoryTree):
        def data(self, index: int) -> bytes:
            return b"forged" if index == 17 else super().data(index)

    forged = Forged(b"honest").extend_to(100)
    assert forged.root(40) != honest.root(40)
    reverts(
        "OldRootMismatch",
        ledger.transact,
        "publishCheckpoint",
        100,
        forged.root(100),
        forged.consistency(40, 100),
    )
    reverts(
        "NewRootMismatch",
        ledger.transact,
        "publishCheckpoint",
        100,
        forged.root(100),
        honest.consistency(40, 100),
    )
    reverts(
        "ProofLength",
        ledger.transact,
        "publishCheckpoint",
        100,
        honest.root(100),
        [*honest.consistency(40, 100), b"\x07" * 32],
    )
    reverts(
        "ProofLength",
        ledger.transact,
        "publishCheckpoint",
        100,
        honest.root(100),
        honest.consistency(40, 100)[:-1],
    )
    ledger.publish_checkpoint(100, honest.root(100), honest.consistency(40, 100))
    # History cannot be rewritten at or below the latest size either.
    reverts("SizeNotIncreasing", ledger.transact, "publishCheckpoint", 100, forged.root(100), [])
    reverts("SizeNotIncreasing", ledger.transact, "publishCheckpoint", 90, honest.root(90), [])
    with pytest.raises(CheckpointConflict):
        ledger.publish_checkpoint(100, forged.root(100), [])
    assert ledger.checkpoint(100).root == honest.root(100)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_verifiers_agree_with_python(
    verifier: ChainClient, tree: MemoryTree, data: st.DataObject
) -> None:
    size2 = data.draw(st.integers(1, 300), label="size2")
    size1 = data.draw(st.integers(1, size2), label="size1")
    proof = tree.consistency(size1, size2)
    args = (size1, size2, tree.root(size1), tree.root(size2))
    verify_consistency(size1, size2, proof, args[2], args[3])
    verifier.call("verifyConsistency", *args, proof)
    if proof:
        bad = flip(proof, data.draw(st.integers(0, len(proof) - 1), label="flipped"))
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, bad, args[2], args[3])
        with pytest.raises(TransactionReverted):
            verifier.call("verifyConsistency", *args, bad)

    index = data.draw(st.integers(0, size2 - 1), label="index")
    path = tree.inclusion(index, size2)
    got = verifier.call("rootFromInclusionProof", size2, index, tree.leaf_hash(index), path)
    assert got == tree.root(size2)
    if path:
        bad = flip(path, data.draw(st.integers(0, len(path) - 1), label="flipped_path"))
        with pytest.raises(ProofError):
            verify_inclusion(tree.leaf_hash(index), index, size2, bad, tree.root(size2))
        assert verifier.call(
            "rootFromInclusionProof", size2, index, tree.leaf_hash(index), bad
        ) != tree.root(size2)


# (size1, size2) pairs up to 2**32 leaves. (2**32 - 1, 2**32) needs the longest proof there is
# below 2**32 (33 hashes) and the most hashing (63 compressions): the worst case for gas.
LARGE = [
    (2**16, 2**16 + 4096),
    (2**20 + 1, 2**20 + 4097),
    (2**31 - 1, 2**31 + 4095),
    (2**31, 2**31 + 1),
    (3 * 2**30 + 12345, 3 * 2**30 + 12345 + 4096),
    (2**32 - 4097, 2**32 - 1),
    (2**32 - 1, 2**32),
    (3, 2**32),
]


@pytest.mark.parametrize(("size1", "size2"), LARGE)
def test_large_logs_up_to_2_pow_32(env: ChainEnv, size1: int, size2: int) -> None:
    tree = UniformTree()
    ledger = env.deploy()
    ledger.publish_checkpoint(size1, tree.root(size1), [])
    proof = tree.consistency(size1, size2)
    with pytest.raises(TransactionReverted, match=r"OldRootMismatch|NewRootMismatch"):
        ledger.transact("publishCheckpoint", size2, tree.root(size2), flip(proof, len(proof) - 1))
    anchor = ledger.publish_checkpoint(size2, tree.root(size2), proof)
    assert anchor.gas_used is not None and anchor.gas_used <= GAS_LIMIT_PER_CHECKPOINT
    for index in (0, size1 - 1, size1, size2 - 1):
        path = tree.inclusion(index, size2)
        assert ledger.verify_inclusion(size2, index, tree.leaf, path) == tree.root(size2)


# ------------------------------------------------------------------------------- RFC 6962 vectors
def _b64(v: str | None) -> bytes:
    return base64.b64decode(v) if v else b""


def _vectors(vectors_dir: Path, kind: str) -> list[dict[str, Any]]:
    root = vectors_dir / "rfc6962" / kind
    files = sorted(root.rglob("*.json"))
    assert files, f"no vectors under {root}"
    return [{**json.loads(f.read_text()), "name": str(f.relative_to(root))} for f in files]


def _bytes32(*values: bytes) -> bool:
    return all(len(v) == 32 for v in values)


def test_rfc6962_consistency_vectors(
    vectors_dir: Path, env: ChainEnv, verifier: ChainClient
) -> None:
    """Every vector whose hashes fit bytes32 (garbage of other lengths cannot even be encoded),
    through the pure view and, where a checkpoint can be published, through publishCheckpoint."""
    accepted = rejected = 0
    publishable: dict[tuple[int, bytes], list[dict[str, Any]]] = defaultdict(list)
    for v in _vectors(vectors_dir, "consistency"):
        proof = [_b64(h) for h in v["proof"] or []]
        root1, root2 = _b64(v["root1"]), _b64(v["root2"])
        if not _bytes32(root1, root2, *proof):
            continue
        args = (v["size1"], v["size2"], root1, root2, proof)
        if v["wantErr"]:
            with pytest.raises(TransactionReverted):
                verifier.call("verifyConsistency", *args)
            rejected += 1
        else:
            verifier.call("verifyConsistency", *args)
            accepted += 1
        if 1 <= v["size1"] < v["size2"]:
            publishable[(v["size1"], root1)].append({**v, "proof": proof, "root2": root2})
    assert accepted >= 5 and rejected >= 40, (accepted, rejected)

    published = 0
    for (size1, root1), group in publishable.items():
        # Refusals leave the contract as it was: one deployment serves them all. Each
        # accepted vector moves the latest checkpoint, so it gets a deployment of its own.
        refusals = [v for v in group if v["wantErr"]]
        for batch in [refusals, *([v] for v in group if not v["wantErr"])]:
            ledger = env.deploy()
            ledger.publish_checkpoint(size1, root1, [])
            for vector in batch:
                call = ("publishCheckpoint", vector["size2"], vector["root2"], vector["proof"])
                if vector["wantErr"]:
                    with pytest.raises(TransactionReverted):
                        ledger.transact(*call)
                else:
                    ledger.transact(*call)
                    published += 1
    assert published >= 4


def test_rfc6962_inclusion_vectors(vectors_dir: Path, env: ChainEnv, verifier: ChainClient) -> None:
    accepted = rejected = 0
    anchored: dict[int, ChainClient] = {}
    for v in _vectors(vectors_dir, "inclusion"):
        proof = [_b64(h) for h in v["proof"] or []]
        leaf, root = _b64(v["leafHash"]), _b64(v["root"])
        if not _bytes32(leaf, root, *proof):
            continue
        size, index = v["treeSize"], v["leafIdx"]
        try:
            got = verifier.call("rootFromInclusionProof", size, index, leaf, proof)
            ok = bytes(got) == root
        except TransactionReverted:
            ok = False
        assert ok != v["wantErr"], v["name"]
        accepted += ok
        rejected += not ok
        # Against chain state: anchor each happy path's checkpoint, check every vector there.
        if not v["wantErr"] and size not in anchored:
            anchored[size] = env.deploy()
            anchored[size].publish_checkpoint(size, root, [])
    assert accepted >= 5 and rejected >= 40, (accepted, rejected)
    for v in _vectors(vectors_dir, "inclusion"):
        proof = [_b64(h) for h in v["proof"] or []]
        leaf, root = _b64(v["leafHash"]), _b64(v["root"])
        ledger = anchored.get(v["treeSize"])
        if (
            ledger is None
            or not _bytes32(leaf, *proof)
            or ledger.checkpoint(v["treeSize"]).root != root
        ):
            continue
        if v["wantErr"]:
            with pytest.raises(VerificationError):
                ledger.verify_inclusion(v["treeSize"], v["leafIdx"], leaf, proof)
        else:
            assert ledger.verify_inclusion(v["treeSize"], v["leafIdx"], leaf, proof) == root
