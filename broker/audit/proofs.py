"""Inclusion and consistency proofs from the stored tree, and the receipt of a delivered exchange.

Every proof reads all the stored nodes it needs in one query (``merkle.nodes_needed``), which
keeps a proof at well under a millisecond of database time at any tree size. Proofs are only
given for sizes the tree has reached, i.e. that have a signed checkpoint: the stored nodes of a
size exist exactly when the transaction that signed its checkpoint has committed, so a missing
node means the size is not (yet) part of the log.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from sqlalchemy.orm import Session

from broker.audit import repository
from broker.audit.merkle import (
    NodeId,
    assemble_proof,
    consistency_proof_ranges,
    inclusion_proof_ranges,
    nodes_needed,
)


class ProofUnavailable(Exception):
    """The proof asked for cannot be given; ``status`` and ``reason`` become the problem details."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


@dataclass(frozen=True)
class InclusionProof:
    index: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]

    def as_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": b64(self.leaf_hash),
            "hashes": [b64(h) for h in self.hashes],
        }


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    tree_size: int
    hashes: list[bytes]

    def as_json(self) -> dict[str, object]:
        return {"old_size": self.old_size, "tree_size": self.tree_size, "hashes": [b64(h) for h in self.hashes]}


def _current_size(session: Session, tree_size: int | None) -> int:
    current = repository.tree_size(session)
    if current == 0:
        raise ProofUnavailable(404, "audit.log_empty", "The log has no signed checkpoint yet.")
    if tree_size is None:
        return current
    if tree_size > current:
        raise ProofUnavailable(
            404,
            "audit.tree_size_unknown",
            f"The log has no tree of size {tree_size}; its latest signed checkpoint is for size {current}.",
        )
    return tree_size


def _fetch(session: Session, wanted: list[NodeId], tree_size: int) -> dict[NodeId, bytes]:
    found = repository.nodes(session, wanted)
    if len(found) < len(wanted):
        # Nodes of a size appear when its checkpoint commits: absent means not (yet) integrated.
        _current_size(session, tree_size)
        raise RuntimeError(f"stored tree lacks nodes for tree size {tree_size}")
    return found


def inclusion_proof(session: Session, index: int, tree_size: int | None = None) -> InclusionProof:
    """PATH(index, D[tree_size]); ``tree_size`` defaults to the latest signed size."""
    if tree_size is None:
        tree_size = _current_size(session, None)
    if tree_size < 1 or not 0 <= index < tree_size:
        raise ProofUnavailable(
            400, "audit.index_out_of_range", f"Leaf index {index} is not in a tree of size {tree_size}."
        )
    ranges = inclusion_proof_ranges(index, tree_size)
    leaf: NodeId = (0, index)
    wanted = nodes_needed(ranges)
    found = _fetch(session, [leaf, *wanted], tree_size)
    return InclusionProof(index, tree_size, found[leaf], assemble_proof(ranges, found))


def consistency_proof(session: Session, old_size: int, tree_size: int | None = None) -> ConsistencyProof:
    """PROOF(old_size, D[tree_size]); ``tree_size`` defaults to the latest signed size."""
    if tree_size is None:
        tree_size = _current_size(session, None)
    if old_size < 1:
        raise ProofUnavailable(400, "audit.old_size_invalid", "A consistency proof needs an old size of at least 1.")
    if old_size > tree_size:
        raise ProofUnavailable(
            400,
            "audit.sizes_out_of_order",
            f"The old size {old_size} is larger than the tree size {tree_size}.",
        )
    if old_size == tree_size:
        _current_size(session, tree_size)
        return ConsistencyProof(old_size, tree_size, [])
    ranges = consistency_proof_ranges(old_size, tree_size)
    found = _fetch(session, nodes_needed(ranges), tree_size)
    return ConsistencyProof(old_size, tree_size, assemble_proof(ranges, found))


@dataclass(frozen=True)
class Receipt:
    """Where a delivery entry sits in the log; the proof fields stay None until it is integrated."""

    leaf_hash: str
    log_index: int | None = None
    tree_size: int | None = None
    inclusion_proof: list[str] | None = None
    checkpoint: str | None = None


def receipt(session: Session, log_seq: int | None) -> Receipt | None:
    """The receipt of the log entry queued as ``log_seq`` (an exchange's delivery entry)."""
    if log_seq is None:
        return None
    position = repository.entry_position(session, log_seq)
    if position is None:
        return None
    index, leaf = position
    if index is None:
        return Receipt(leaf_hash=b64(leaf))
    latest = repository.latest_checkpoint(session)
    if latest is None or latest.tree_size <= index:
        # Cannot happen while the integrator signs every size it creates; say what is known.
        return Receipt(leaf_hash=b64(leaf), log_index=index)
    proof = inclusion_proof(session, index, latest.tree_size)
    return Receipt(
        leaf_hash=b64(leaf),
        log_index=index,
        tree_size=latest.tree_size,
        inclusion_proof=[b64(h) for h in proof.hashes],
        checkpoint=latest.note,
    )
