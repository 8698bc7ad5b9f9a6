"""RFC 6962 proofs: official vectors, a naive reference, and property tests."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import ProofError
from ledger.merkle import (
    Frontier,
    NodeID,
    consistency_plan,
    hash_leaf,
    inclusion_plan,
    materialize,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger.testonly import reference


def _b64(v: str | None) -> bytes:
    return base64.b64decode(v) if v else b""


def _vectors(vectors_dir: Path, kind: str) -> list[tuple[str, dict]]:
    root = vectors_dir / "rfc6962" / kind
    files = sorted(root.rglob("*.json"))
    assert files, f"no vectors under {root}"
    return [(str(f.relative_to(root)), json.loads(f.read_text())) for f in files]


def test_inclusion_vectors(vectors_dir: Path) -> None:
    accepted = rejected = 0
    for _name, v in _vectors(vectors_dir, "inclusion"):
        proof = [_b64(h) for h in v["proof"] or []]
        args = (_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof, _b64(v["root"]))
        if v["wantErr"]:
            with pytest.raises(ProofError):
                verify_inclusion(*args)
            rejected += 1
        else:
            verify_inclusion(*args)
            accepted += 1
    assert accepted >= 5 and rejected >= 50, (accepted, rejected)


def test_consistency_vectors(vectors_dir: Path) -> None:
    accepted = rejected = 0
    for _name, v in _vectors(vectors_dir, "consistency"):
        proof = [_b64(h) for h in v["proof"] or []]
        args = (v["size1"], v["size2"], proof, _b64(v["root1"]), _b64(v["root2"]))
        if v["wantErr"]:
            with pytest.raises(ProofError):
                verify_consistency(*args)
            rejected += 1
        else:
            verify_consistency(*args)
            accepted += 1
    assert accepted >= 5 and rejected >= 50, (accepted, rejected)


class MemoryNodes:
    """Stored perfect-subtree nodes, as a log would persist them."""

    def __init__(self) -> None:
        self.frontier = Frontier()
        self.nodes: dict[NodeID, bytes] = {}

    def append(self, data: bytes) -> None:
        self.nodes.update(self.frontier.append(hash_leaf(data)))

    def read(self, ids):  # type: ignore[no-untyped-def]
        return [self.nodes[i] for i in ids]

    def root(self, size: int) -> bytes:
        return merkle.fold_right(self.read(merkle.range_nodes(0, size)))


def _leaves(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") * 3 for i in range(n)]


def test_against_reference_exhaustive_small() -> None:
    leaves = _leaves(40)
    tree = MemoryNodes()
    for n, leaf in enumerate(leaves, start=1):
        tree.append(leaf)
        want_root = reference.mth(leaves[:n])
        assert tree.frontier.root() == want_root
        assert tree.root(n) == want_root
        for m in range(n):
            proof = materialize(inclusion_plan(m, n), tree.read)
            assert proof == reference.path(m, leaves[:n])
            verify_inclusion(hash_leaf(leaves[m]), m, n, proof, want_root)
        for m in range(1, n + 1):
            proof = materialize(consistency_plan(m, n), tree.read)
            assert proof == reference.proof(m, leaves[:n])
            verify_consistency(m, n, proof, reference.mth(leaves[:m]), want_root)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.data())
def test_proofs_property(n: int, data: st.DataObject) -> None:
    leaves = _leaves(n)
    tree = MemoryNodes()
    for leaf in leaves:
        tree.append(leaf)
    root = reference.mth(leaves)
    m = data.draw(st.integers(0, n - 1))
    proof = materialize(inclusion_plan(m, n), tree.read)
    verify_inclusion(hash_leaf(leaves[m]), m, n, proof, root)
    # Any single flipped bit anywhere is caught.
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof]
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        with pytest.raises(ProofError):
            verify_inclusion(hash_leaf(leaves[m]), m, n, bad, root)
    with pytest.raises(ProofError):  # the same proof claimed for a larger tree
        verify_inclusion(hash_leaf(leaves[m]), m, n + 1, proof, reference.mth([*leaves, b"x"]))
    s1 = data.draw(st.integers(1, n))
    cproof = materialize(consistency_plan(s1, n), tree.read)
    verify_consistency(s1, n, cproof, reference.mth(leaves[:s1]), root)
    if s1 < n:
        forked = reference.mth([*leaves[: s1 - 1], b"forged"])
        with pytest.raises(ProofError):
            verify_consistency(s1, n, cproof, forked, root)


def test_refuses_vacuous_and_out_of_range() -> None:
    with pytest.raises(ProofError, match="outside"):
        inclusion_plan(5, 5)
    with pytest.raises(ProofError, match="outside"):
        verify_inclusion(b"\x00" * 32, 0, 0, [], b"\x00" * 32)
    with pytest.raises(ProofError, match="smaller"):
        verify_consistency(5, 4, [], b"\x00" * 32, b"\x00" * 32)
    with pytest.raises(ProofError, match="forked"):
        verify_consistency(3, 3, [], b"\x01" * 32, b"\x02" * 32)


def test_range_nodes_are_aligned_perfect_subtrees() -> None:
    assert merkle.range_nodes(0, 13) == [NodeID(3, 0), NodeID(2, 2), NodeID(0, 12)]
    assert merkle.range_nodes(8, 13) == [NodeID(2, 2), NodeID(0, 12)]
    for begin, end in [(0, 1), (4, 7), (16, 31)]:
        covered = sum(1 << n.level for n in merkle.range_nodes(begin, end))
        assert covered == end - begin


@given(st.integers(0, 300), st.integers(1, 70))
def test_push_stores_what_append_completes(start: int, n: int) -> None:
    data = [i.to_bytes(4, "big") for i in range(start + n)]
    leaves = [hash_leaf(d) for d in data]
    a, b = Frontier(), Frontier()
    for leaf in leaves[:start]:
        a.append(leaf)
        b.append(leaf)
    pushed: list[tuple[int, bytes]] = []
    appended: list[tuple[int, bytes]] = []
    for leaf in leaves[start:]:
        b.push(leaf, pushed)
        appended.extend((node.key, h) for node, h in a.append(leaf))
    assert pushed == appended
    assert (b.size, b.hashes, b.root()) == (a.size, a.hashes, reference.mth(data))
