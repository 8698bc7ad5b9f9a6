"""RFC 6962 / RFC 9162 Merkle trees: hashing, proofs, and their verifiers.

Vocabulary follows RFC 6962: a tree of `size` leaves, `index` of a leaf, `leaf_hash`, `proof`,
`root`. Nodes are addressed by `NodeID(level, index)`: the perfect subtree of 2**level leaves
starting at leaf `index * 2**level`. Only perfect subtrees are ever stored; the few nodes of a
proof that are not perfect (on the right border of a tree whose size is not a power of two) are
folded from O(log n) stored ones, so proofs never rebuild the tree.

Verifiers raise `ProofError` or return a computed value; they never return a bare bool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger.errors import ProofError

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def hash_leaf(data: bytes) -> bytes:
    """MTH of a single leaf: SHA-256(0x00 || data)."""
    return _sha256(LEAF_PREFIX + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """Interior node: SHA-256(0x01 || left || right)."""
    return _sha256(NODE_PREFIX + left + right).digest()


# Not frozen: a frozen dataclass's __init__ costs a microsecond per node on the append path.
# Treat instances as immutable; they are hashed as dictionary keys.
@dataclass(slots=True, unsafe_hash=True)
class NodeID:
    """The perfect subtree of 2**level leaves starting at leaf index * 2**level."""

    level: int
    index: int

    @property
    def key(self) -> int:
        """A single integer key for storage: level in the top bits, index below."""
        return (self.level << 56) | self.index


def _split(n: int) -> int:
    """k of RFC 6962: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(begin: int, end: int) -> list[NodeID]:
    """The perfect subtrees that make up leaves [begin, end), left to right.

    Valid for the ranges RFC 6962 recursion produces: `begin` is a multiple of a power of two
    at least `end - begin` (or the range is empty), so the greedy split stays aligned.
    """
    nodes: list[NodeID] = []
    while begin < end:
        # Largest power of two that both fits in the range and keeps `begin` aligned.
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append(NodeID(level, begin >> level))
        begin += 1 << level
    return nodes


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its perfect subtrees, left to right (see `range_nodes`)."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = hash_children(h, acc)
    return acc


# A proof plan: for each proof element, the perfect subtrees whose fold is that element.
ProofPlan = list[list[NodeID]]


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """Which stored nodes make the inclusion proof of leaf `index` in a tree of `size`."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    path: ProofPlan = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(range_nodes(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_nodes(lo, lo + k))
            lo += k
    path.reverse()  # RFC 6962 order: the sibling nearest the leaf first
    return path


def consistency_plan(size1: int, size2: int) -> ProofPlan:
    """Which stored nodes make the consistency proof from `size1` to `size2` (RFC 6962 2.1.2)."""
    if not 0 <= size1 <= size2:
        raise ProofError(f"no consistency proof from size {size1} to size {size2}")
    if size1 == 0 or size1 == size2:
        return []
    plan: ProofPlan = []
    m, lo, hi, complete = size1, 0, size2, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            plan.append(range_nodes(lo + k, hi))
            hi = lo + k
        else:
            plan.append(range_nodes(lo, lo + k))
            m -= k
            lo += k
            complete = False
    if not complete:
        plan.append(range_nodes(lo, hi))
    plan.reverse()
    return plan


NodeReader = Callable[[Sequence[NodeID]], Sequence[bytes]]


def materialize(plan: ProofPlan, read: NodeReader) -> list[bytes]:
    """Turn a proof plan into hashes with one batched read of the stored nodes."""
    wanted = list(dict.fromkeys(n for element in plan for n in element))
    found = dict(zip(wanted, read(wanted), strict=True))
    return [fold_right([found[n] for n in element]) for element in plan]


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that `proof` implies for `leaf_hash` at `index` (RFC 9162 2.1.3.2).

    Raises:
        ProofError: index out of range, or the proof has the wrong length or hash sizes.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hashes(proof, "inclusion proof")
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf_hash)} bytes, expected {HASH_SIZE}")
    want = _inclusion_length(index, size)
    if len(proof) != want:
        raise ProofError(f"inclusion proof has {len(proof)} hashes, expected {want}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `size` with `root`.

    Raises:
        ProofError: the proof is malformed or leads to another root.
    """
    got = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if got != root:
        raise ProofError(f"inclusion proof leads to root {got.hex()}, expected {bytes(root).hex()}")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (size2, root2) extends the tree (size1, root1) (RFC 9162 2.1.4.2).

    Raises:
        ProofError: the sizes are inconsistent, the proof is malformed, or a root differs.
    """
    if size2 < size1:
        raise ProofError(f"size2 {size2} is smaller than size1 {size1}")
    if size1 == 0:
        # Every tree extends the empty one: such a "proof" would be vacuous, so refuse it.
        raise ProofError("a consistency proof from the empty tree proves nothing")
    _check_hashes(proof, "consistency proof")
    if size1 == size2:
        if proof:
            raise ProofError(f"consistency proof between equal sizes has {len(proof)} hashes")
        if root1 != root2:
            raise ProofError("equal sizes with different roots: the log forked")
        return
    want = _consistency_length(size1, size2)
    if len(proof) != want:
        raise ProofError(f"consistency proof has {len(proof)} hashes, expected {want}")
    seed, rest = (root1, proof) if size1 & (size1 - 1) == 0 else (proof[0], proof[1:])
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = seed
    for c in rest:
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if fr != root1:
        raise ProofError(f"consistency proof leads to root1 {fr.hex()}, expected {root1.hex()}")
    if sr != root2:
        raise ProofError(f"consistency proof leads to root2 {sr.hex()}, expected {root2.hex()}")


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what} hash {i} is {len(h)} bytes, expected {HASH_SIZE}")


def _inclusion_length(index: int, size: int) -> int:
    # Inner part: levels below the point where index's and the last leaf's paths meet;
    # border part: the set bits above it (RFC 9162's decomposition).
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def _consistency_length(size1: int, size2: int) -> int:
    return len(consistency_plan(size1, size2))


class Frontier:
    """The right edge of a growing tree: the roots of its perfect subtrees, left to right.

    `append` is O(log n) amortised O(1) and returns the nodes that became complete, which is
    exactly what a node store must persist; `root()` folds the frontier in O(log n).
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ProofError(
                f"a frontier of size {size} has {size.bit_count()} hashes, got {len(hashes)}"
            )
        self.size = size
        self.hashes = list(hashes)

    @staticmethod
    def nodes_for(size: int) -> list[NodeID]:
        """The stored nodes that form the frontier of a tree of `size`."""
        return range_nodes(0, size)

    def append(self, leaf_hash: bytes) -> list[tuple[NodeID, bytes]]:
        index = self.size
        new = [(NodeID(0, index), leaf_hash)]
        h, level = leaf_hash, 0
        while index & 1:
            h = hash_children(self.hashes.pop(), h)
            level += 1
            index >>= 1
            new.append((NodeID(level, index), h))
        self.hashes.append(h)
        self.size += 1
        return new

    def push(self, leaf_hash: bytes, out: list[tuple[int, bytes]]) -> None:
        """`append` for the node store: the completed nodes go to `out` as (`NodeID.key`, hash).

        The bulk append path calls this once per record; it skips building `NodeID`s.
        """
        index = self.size
        out.append((index, leaf_hash))  # level 0: the key is the index
        h, level, hashes = leaf_hash, 0, self.hashes
        while index & 1:
            h = _sha256(NODE_PREFIX + hashes.pop() + h).digest()
            level += 1
            index >>= 1
            out.append(((level << 56) | index, h))
        hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        return fold_right(self.hashes) if self.hashes else EMPTY_ROOT
