"""Merkle trees to prove against: a real one over distinct leaves, and a synthetic one of any size.

`UniformTree` has every leaf equal, so the perfect subtree of 2**k leaves always hashes to the
same value: any stored node is a table lookup, and proofs for trees of 2**32 leaves (or more)
cost a few dozen hashes. The proofs are still genuine RFC 6962 proofs for that tree.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.merkle import (
    Frontier,
    NodeID,
    consistency_plan,
    fold_right,
    hash_children,
    hash_leaf,
    inclusion_plan,
    materialize,
    range_nodes,
)


class MemoryTree:
    """A log of distinct leaves, storing every perfect-subtree node as a real log would."""

    def __init__(self, tag: bytes = b"leaf") -> None:
        self.tag = tag
        self.frontier = Frontier()
        self.nodes: dict[NodeID, bytes] = {}

    @property
    def size(self) -> int:
        return self.frontier.size

    def data(self, index: int) -> bytes:
        return self.tag + index.to_bytes(8, "big")

    def leaf_hash(self, index: int) -> bytes:
        return self.nodes[NodeID(0, index)]

    def extend_to(self, size: int) -> MemoryTree:
        while self.frontier.size < size:
            self.nodes.update(self.frontier.append(hash_leaf(self.data(self.frontier.size))))
        return self

    def read(self, ids: Sequence[NodeID]) -> list[bytes]:
        return [self.nodes[i] for i in ids]

    def root(self, size: int | None = None) -> bytes:
        return fold_right(self.read(range_nodes(0, self.size if size is None else size)))

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return materialize(consistency_plan(size1, size2), self.read)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return materialize(inclusion_plan(index, size), self.read)


class UniformTree:
    """A synthetic tree of any size up to 2**64 whose leaves are all `data`."""

    def __init__(self, data: bytes = b"forgeproof") -> None:
        self.leaf = hash_leaf(data)
        self.levels = [self.leaf]
        for _ in range(64):
            self.levels.append(hash_children(self.levels[-1], self.levels[-1]))

    def leaf_hash(self, index: int) -> bytes:
        return self.leaf

    def read(self, ids: Sequence[NodeID]) -> list[bytes]:
        return [self.levels[i.level] for i in ids]

    def root(self, size: int) -> bytes:
        return fold_right(self.read(range_nodes(0, size)))

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return materialize(consistency_plan(size1, size2), self.read)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return materialize(inclusion_plan(index, size), self.read)
