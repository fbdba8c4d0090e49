"""RFC 9162 §2.1 Merkle tree hashing, proofs and proof verification, free of any I/O.

Storage model: the repository keeps one row per *perfect* subtree, keyed by (level, index),
where level 0 holds leaf hashes and node (level, index) covers leaves
[index * 2**level, (index + 1) * 2**level). Perfect subtrees never change once complete,
so rows are append-only. Every node of the RFC tree of any size is either such a perfect
subtree or a right-edge node that can be rebuilt by folding a few of them; the functions
here say which rows a proof needs (so they can be fetched in one query) and combine them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

HASH_SIZE = 32

NodeId = tuple[int, int]
"""(level, index) of a perfect subtree."""

StoredNode = tuple[int, int, bytes]
"""(level, index, hash) of a perfect subtree, as persisted."""

LeafRange = tuple[int, int]
"""Half-open leaf range [start, end)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof, or the values it is checked against, does not verify."""


def leaf_hash(entry: bytes) -> bytes:
    return _sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(_NODE_PREFIX + left + right).digest()


def empty_root() -> bytes:
    return _sha256(b"").digest()


def _largest_power_of_two_below(n: int) -> int:
    """The RFC 9162 split point k: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_subtrees(start: int, end: int) -> list[NodeId]:
    """Decompose the leaf range [start, end) into maximal perfect subtrees, left to right.

    The range must be a node of some RFC 9162 tree, i.e. ``start`` is a multiple of the
    largest power of two not exceeding ``end - start``; this holds for [0, n) and for every
    range returned by the ``*_proof_ranges`` functions. For such ranges the pieces have
    strictly decreasing sizes (the binary digits of the width), which is exactly how the
    RFC split rule carves the range, so ``range_hash`` over them equals its MTH.
    """
    if not 0 <= start < end:
        raise ValueError(f"invalid leaf range [{start}, {end})")
    width = end - start
    top_level = width.bit_length() - 1
    if start % (1 << top_level):
        raise ValueError(f"leaf range [{start}, {end}) is not a node of an RFC 9162 tree")
    nodes: list[NodeId] = []
    position = start
    for level in range(top_level, -1, -1):
        if width >> level & 1:
            nodes.append((level, position >> level))
            position += 1 << level
    return nodes


def range_hash(nodes: Sequence[bytes]) -> bytes:
    """Fold the hashes of a ``perfect_subtrees`` decomposition right to left into one hash.

    Right to left because the RFC tree leans left: the smallest, right-most subtrees are
    joined first and the result becomes the right child of the next larger one.
    """
    if not nodes:
        raise ValueError("cannot hash an empty range")
    acc = nodes[-1]
    for left in reversed(nodes[:-1]):
        acc = node_hash(left, acc)
    return acc


def inclusion_proof_ranges(index: int, size: int) -> list[LeafRange]:
    """Leaf ranges whose hashes form PATH(index, D[size]) (RFC 9162 §2.1.3.1), leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    siblings: list[LeafRange] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo += k
    # The descent finds siblings root side first; the proof lists them leaf side first.
    siblings.reverse()
    return siblings


def consistency_proof_ranges(old_size: int, new_size: int) -> list[LeafRange]:
    """Leaf ranges whose hashes form PROOF(old_size, D[new_size]) (RFC 9162 §2.1.4.1)."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    siblings: list[LeafRange] = []
    lo, hi = 0, new_size
    old_tree_is_whole_subtree = True
    while old_size != hi:
        k = _largest_power_of_two_below(hi - lo)
        if old_size - lo <= k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo += k
            old_tree_is_whole_subtree = False
    siblings.reverse()
    # SUBPROOF(m, D[m], b) contributes MTH(D[m]) only when b is false: when the old tree is
    # the left-most subtree of the new one the verifier already knows that hash (old root).
    if old_tree_is_whole_subtree:
        return siblings
    return [(lo, hi), *siblings]


def nodes_needed(ranges: Iterable[LeafRange]) -> list[NodeId]:
    """The distinct stored nodes needed to hash all ``ranges``, in first-use order."""
    seen: dict[NodeId, None] = {}
    for start, end in ranges:
        for node in perfect_subtrees(start, end):
            seen.setdefault(node)
    return list(seen)


def assemble_proof(ranges: Sequence[LeafRange], node_lookup: Mapping[NodeId, bytes]) -> list[bytes]:
    """Turn proof ranges into proof hashes using stored perfect-subtree hashes."""
    return [range_hash(_lookup_all(perfect_subtrees(start, end), node_lookup)) for start, end in ranges]


def tree_root(size: int, node_lookup: Mapping[NodeId, bytes]) -> bytes:
    """MTH of the first ``size`` leaves from stored perfect-subtree hashes."""
    if size == 0:
        return empty_root()
    return range_hash(_lookup_all(perfect_subtrees(0, size), node_lookup))


def _lookup_all(nodes: Sequence[NodeId], node_lookup: Mapping[NodeId, bytes]) -> list[bytes]:
    try:
        return [node_lookup[node] for node in nodes]
    except KeyError as exc:
        raise KeyError(f"stored node (level, index) = {exc.args[0]} is missing") from None


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """MTH over all leaves, recomputed level by level.

    Pairing neighbours and promoting an unpaired last node unchanged to the next level builds
    the same left-leaning tree as the recursive RFC definition, without recursion and with one
    list comprehension per level, which keeps a million leaves in the low seconds.
    """
    level = list(hashes)
    if not level:
        return empty_root()
    sha256, prefix = _sha256, _NODE_PREFIX
    while len(level) > 1:
        pairs = iter(level)
        parents = [sha256(prefix + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0]


class CompactTree:
    """The right edge of a tree: hashes of the perfect subtrees that decompose [0, size).

    Holds O(log size) hashes, enough to append leaves and compute the root without touching
    storage. ``append`` reports every perfect subtree it completes, so the caller can persist
    exactly the rows that ``assemble_proof`` and ``from_nodes`` later read back.
    """

    def __init__(self) -> None:
        self._size = 0
        # (level, hash) of the frontier subtrees, largest (left-most) first.
        self._frontier: list[tuple[int, bytes]] = []

    def __repr__(self) -> str:
        return f"CompactTree(size={self._size})"

    @property
    def size(self) -> int:
        return self._size

    @staticmethod
    def frontier_nodes(size: int) -> list[NodeId]:
        """Stored nodes that ``from_nodes(size, ...)`` will read."""
        return perfect_subtrees(0, size) if size else []

    @classmethod
    def from_nodes(cls, size: int, node_lookup: Mapping[NodeId, bytes]) -> CompactTree:
        nodes = cls.frontier_nodes(size)
        hashes = _lookup_all(nodes, node_lookup)
        tree = cls()
        tree._size = size
        tree._frontier = [(level, h) for (level, _), h in zip(nodes, hashes, strict=True)]
        return tree

    def append(self, leaf: bytes) -> list[StoredNode]:
        """Add one leaf hash; return the newly completed perfect subtrees, level 0 first."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf)}")
        completed: list[StoredNode] = [(0, self._size, leaf)]
        self._size += 1
        frontier = self._frontier
        level, acc = 0, leaf
        # Two equal-sized neighbours at the right edge merge into a perfect subtree one
        # level up, exactly like a carry in binary addition of 1 to the size.
        while frontier and frontier[-1][0] == level:
            _, left = frontier.pop()
            acc = node_hash(left, acc)
            level += 1
            completed.append((level, (self._size >> level) - 1, acc))
        frontier.append((level, acc))
        return completed

    def extend(self, leaves: Iterable[bytes]) -> list[StoredNode]:
        completed: list[StoredNode] = []
        for leaf in leaves:
            completed.extend(self.append(leaf))
        return completed

    def root(self) -> bytes:
        if not self._frontier:
            return empty_root()
        return range_hash([h for _, h in self._frontier])

    def nodes(self) -> list[StoredNode]:
        """The frontier as (level, index, hash), left to right."""
        result: list[StoredNode] = []
        position = 0
        for level, h in self._frontier:
            result.append((level, position >> level, h))
            position += 1 << level
        return result


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        _check_hash(f"proof[{i}]", h)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root`` (RFC 9162 §2.1.3.2)."""
    if index < 0 or size < 0:
        raise ProofError(f"negative index {index} or size {size}")
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash("leaf hash", leaf)
    _check_hash("root", root)
    _check_proof_hashes(proof)
    expected = len(inclusion_proof_ranges(index, size))
    if len(proof) != expected:
        raise ProofError(
            f"inclusion proof has {len(proof)} hashes, expected {expected} for index {index} in size {size}"
        )
    fn, sn, acc = index, size - 1, leaf
    for p in proof:
        if fn & 1 or fn == sn:
            acc = node_hash(p, acc)
            # Skip levels where this node is an unpaired right-edge node promoted unchanged.
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            acc = node_hash(acc, p)
        fn >>= 1
        sn >>= 1
    if acc != root:
        raise ProofError("inclusion proof does not lead to the given root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of ``new_size`` extends the one of ``old_size`` (RFC 9162 §2.1.4.2)."""
    if old_size < 0 or new_size < 0:
        raise ProofError(f"negative size {old_size} or {new_size}")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == 0:
        # Every tree extends the empty one, so such a "proof" would prove nothing; callers
        # asking for it have almost certainly mixed up their checkpoints.
        raise ProofError("consistency proof from the empty tree is meaningless")
    if old_size == new_size:
        if proof:
            raise ProofError(f"sizes are equal but proof has {len(proof)} hashes instead of none")
        if old_root != new_root:
            raise ProofError(f"roots differ for the same size {old_size}")
        return
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    _check_proof_hashes(proof)
    expected = len(consistency_proof_ranges(old_size, new_size))
    if len(proof) != expected:
        raise ProofError(
            f"consistency proof has {len(proof)} hashes, expected {expected} from size {old_size} to size {new_size}"
        )
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect left subtree, so its root is the implicit first proof node.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_acc = new_acc = path[0]
    for p in path[1:]:
        if fn & 1 or fn == sn:
            old_acc = node_hash(p, old_acc)
            new_acc = node_hash(p, new_acc)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            new_acc = node_hash(new_acc, p)
        fn >>= 1
        sn >>= 1
    if old_acc != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if new_acc != new_root:
        raise ProofError("consistency proof does not lead to the new root")
