"""Merkle tree throughput figures: ``python -m bench.merkle [--size N] [--proofs K]``.

Prints timings only; it asserts nothing, so it can run on any machine.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from broker.audit.merkle import (
    CompactTree,
    NodeId,
    assemble_proof,
    consistency_proof_ranges,
    inclusion_proof_ranges,
    leaf_hash,
    root_from_leaf_hashes,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

ENTRY_SIZE = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000, help="number of log entries")
    parser.add_argument("--proofs", type=int, default=10_000, help="proofs to generate and verify")
    args = parser.parse_args()
    size, proofs = args.size, args.proofs
    rng = random.Random(1)

    # Entries share a random prefix and end in their index, so each is distinct and ~300 bytes
    # without holding 300 MB of entries in memory; building them is part of the timed hashing.
    prefix = os.urandom(ENTRY_SIZE - 8)
    start = time.perf_counter()
    leaves = [leaf_hash(prefix + i.to_bytes(8, "big")) for i in range(size)]
    hashed = time.perf_counter()
    root = root_from_leaf_hashes(leaves)
    done = time.perf_counter()
    print(f"full recomputation of {size:,} entries of {ENTRY_SIZE} bytes:")
    print(f"  leaf hashing       {hashed - start:8.3f} s")
    print(f"  root from leaves   {done - hashed:8.3f} s")
    print(f"  total              {done - start:8.3f} s")

    tree = CompactTree()
    start = time.perf_counter()
    stored = tree.extend(leaves)
    elapsed = time.perf_counter() - start
    print(
        f"CompactTree: {size:,} appends in {elapsed:.3f} s = {size / elapsed:,.0f} appends/s "
        f"({len(stored):,} perfect nodes completed; root agrees: {tree.root() == root})"
    )

    nodes: dict[NodeId, bytes] = {(level, index): h for level, index, h in stored}
    print(f"root from stored nodes agrees: {tree_root(size, nodes) == root}")

    indices = [rng.randrange(size) for _ in range(proofs)]
    start = time.perf_counter()
    for index in indices:
        proof = assemble_proof(inclusion_proof_ranges(index, size), nodes)
        verify_inclusion(leaves[index], index, size, proof, root)
    elapsed = time.perf_counter() - start
    print(
        f"inclusion proof generation + verification (size {size:,}, {proofs:,} random leaves): "
        f"{elapsed / proofs * 1e6:.1f} µs per proof"
    )

    old_sizes = [rng.randrange(1, size + 1) for _ in range(proofs)]
    old_roots = {old: tree_root(old, nodes) for old in old_sizes}
    start = time.perf_counter()
    for old in old_sizes:
        proof = assemble_proof(consistency_proof_ranges(old, size), nodes)
        verify_consistency(old, size, old_roots[old], root, proof)
    elapsed = time.perf_counter() - start
    print(
        f"consistency proof generation + verification (to size {size:,}, {proofs:,} random old sizes): "
        f"{elapsed / proofs * 1e6:.1f} µs per proof"
    )


if __name__ == "__main__":
    main()
