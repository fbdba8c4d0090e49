"""Merkle tree math against the transparency-dev vectors and a naive RFC 9162 implementation."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.audit.merkle import (
    CompactTree,
    NodeId,
    ProofError,
    assemble_proof,
    consistency_proof_ranges,
    empty_root,
    inclusion_proof_ranges,
    leaf_hash,
    node_hash,
    nodes_needed,
    perfect_subtrees,
    range_hash,
    root_from_leaf_hashes,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

# Parametrisation happens at collection time, before fixtures exist, so the file names are
# listed from the same location the ``shared_dir`` fixture resolves; the contents are read
# through the fixture, and ``test_every_vector_file_is_collected`` proves both agree.
_VECTOR_ROOT_AT_COLLECTION = (Path(__file__).resolve().parents[2] / ".." / "shared").resolve()
_TESTDATA = Path("tlog-vectors") / "testdata"


def _vector_files(kind: str) -> list[str]:
    base = _VECTOR_ROOT_AT_COLLECTION / _TESTDATA / kind
    return sorted(str(p.relative_to(base)) for p in base.rglob("*.json"))


INCLUSION_FILES = _vector_files("inclusion")
CONSISTENCY_FILES = _vector_files("consistency")


def _load(shared_dir: Path, kind: str, rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_dir / _TESTDATA / kind / rel).read_text())
    return data


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _b64_list(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


def test_every_vector_file_is_collected(shared_dir: Path) -> None:
    for kind, collected in (("inclusion", INCLUSION_FILES), ("consistency", CONSISTENCY_FILES)):
        on_disk = sorted(
            str(p.relative_to(shared_dir / _TESTDATA / kind)) for p in (shared_dir / _TESTDATA / kind).rglob("*.json")
        )
        assert on_disk, f"no {kind} vectors under {shared_dir}"
        assert collected == on_disk


@pytest.mark.parametrize("rel", INCLUSION_FILES)
def test_inclusion_vector(shared_dir: Path, rel: str) -> None:
    case = _load(shared_dir, "inclusion", rel)
    args = (
        _b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        _b64_list(case["proof"]),
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("rel", CONSISTENCY_FILES)
def test_consistency_vector(shared_dir: Path, rel: str) -> None:
    case = _load(shared_dir, "consistency", rel)
    args = (
        case["size1"],
        case["size2"],
        _b64(case["root1"]),
        _b64(case["root2"]),
        _b64_list(case["proof"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


# --- naive recursive RFC 9162 §2.1 definitions, straight from the text ----------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return node_hash(naive_mth(d[:k]), naive_mth(d[k:]))


def naive_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return naive_path(m, d[:k]) + [naive_mth(d[k:])]
    return naive_path(m - k, d[k:]) + [naive_mth(d[:k])]


def naive_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [naive_mth(d)]
    k = _k(len(d))
    if m <= k:
        return naive_subproof(m, d[:k], b) + [naive_mth(d[k:])]
    return naive_subproof(m - k, d[k:], False) + [naive_mth(d[:k])]


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _all_nodes(leaves: list[bytes]) -> dict[NodeId, bytes]:
    tree = CompactTree()
    return {(level, index): h for level, index, h in tree.extend(leaves)}


sizes = st.integers(min_value=1, max_value=70)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    return n, draw(st.integers(min_value=0, max_value=n - 1))


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(sizes)
    return draw(st.integers(min_value=1, max_value=n)), n


@given(st.integers(min_value=0, max_value=70))
def test_root_matches_naive_mth(n: int) -> None:
    leaves = _leaves(n)
    expected = naive_mth(leaves)
    assert root_from_leaf_hashes(leaves) == expected
    assert tree_root(n, _all_nodes(leaves)) == expected
    assert tree_root(n, _all_nodes(_leaves(n + 37))) == expected


@given(size_and_index())
def test_inclusion_proof_matches_naive_path_and_verifies(case: tuple[int, int]) -> None:
    n, m = case
    leaves = _leaves(n)
    ranges = inclusion_proof_ranges(m, n)
    # Perfect subtrees never change, so a table filled by a later, larger tree serves too.
    nodes = _all_nodes(_leaves(n + 37))
    proof = assemble_proof(ranges, nodes)
    assert proof == naive_path(m, leaves)
    assert proof == [naive_mth(leaves[a:b]) for a, b in ranges]
    assert set(nodes_needed(ranges)) <= set(nodes)
    verify_inclusion(leaves[m], m, n, proof, naive_mth(leaves))


@given(two_sizes())
def test_consistency_proof_matches_naive_subproof_and_verifies(case: tuple[int, int]) -> None:
    m, n = case
    leaves = _leaves(n)
    ranges = consistency_proof_ranges(m, n)
    proof = assemble_proof(ranges, _all_nodes(leaves))
    assert proof == naive_subproof(m, leaves, True)
    verify_consistency(m, n, naive_mth(leaves[:m]), naive_mth(leaves), proof)


@given(size_and_index(), st.data())
def test_tampered_inclusion_proof_is_rejected(case: tuple[int, int], data: st.DataObject) -> None:
    n, m = case
    leaves = _leaves(n)
    proof = naive_path(m, leaves)
    root = naive_mth(leaves)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[(m + 1) % n] if n > 1 else leaf_hash(b"x"), m, n, proof, root)
    if proof:
        i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        with pytest.raises(ProofError):
            verify_inclusion(leaves[m], m, n, bad, root)


@given(two_sizes(), st.data())
def test_tampered_consistency_proof_is_rejected(case: tuple[int, int], data: st.DataObject) -> None:
    m, n = case
    leaves = _leaves(n)
    proof = naive_subproof(m, leaves, True)
    old_root, new_root = naive_mth(leaves[:m]), naive_mth(leaves)
    if m == n:
        with pytest.raises(ProofError):
            verify_consistency(m, n, old_root, leaf_hash(b"x"), proof)
        return
    i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    bad = list(proof)
    bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
    with pytest.raises(ProofError):
        verify_consistency(m, n, old_root, new_root, bad)
    with pytest.raises(ProofError):
        verify_consistency(m, n, old_root, leaf_hash(b"x"), proof)


@given(st.integers(min_value=0, max_value=70))
def test_compact_tree_appends_match_recomputation(n: int) -> None:
    leaves = _leaves(n)
    tree = CompactTree()
    stored: dict[NodeId, bytes] = {}
    for i, leaf in enumerate(leaves):
        for level, index, h in tree.append(leaf):
            assert (level, index) not in stored, "a perfect subtree was reported twice"
            stored[(level, index)] = h
        assert tree.size == i + 1
        assert tree.root() == naive_mth(leaves[: i + 1])
    # Exactly the perfect subtrees exist, each with its MTH.
    expected = {
        (level, index): naive_mth(leaves[index << level : (index + 1) << level])
        for level in range(n.bit_length())
        for index in range(n >> level)
    }
    assert stored == expected
    assert tree.root() == naive_mth(leaves)


@given(st.integers(min_value=0, max_value=70), st.integers(min_value=0, max_value=20))
def test_compact_tree_from_nodes_round_trip(n: int, more: int) -> None:
    leaves = _leaves(n + more)
    stored = _all_nodes(leaves[:n])
    resumed = CompactTree.from_nodes(n, stored)
    assert resumed.size == n
    assert resumed.root() == naive_mth(leaves[:n])
    assert [(lvl, idx) for lvl, idx, _ in resumed.nodes()] == CompactTree.frontier_nodes(n)
    assert set(CompactTree.frontier_nodes(n)) <= set(stored)
    stored.update({(lvl, idx): h for lvl, idx, h in resumed.extend(leaves[n:])})
    assert resumed.root() == naive_mth(leaves)
    assert stored == _all_nodes(leaves)


@given(st.integers(min_value=0, max_value=8), st.integers(min_value=1, max_value=300))
def test_perfect_subtrees_fold_to_mth_of_aligned_range(level: int, width: int) -> None:
    top = 1 << (width.bit_length() - 1)
    start = top * level
    leaves = _leaves(start + width)
    nodes = _all_nodes(leaves)
    parts = perfect_subtrees(start, start + width)
    sizes_of_parts = [1 << lvl for lvl, _ in parts]
    assert sizes_of_parts == sorted(sizes_of_parts, reverse=True)
    assert sum(sizes_of_parts) == width
    assert range_hash([nodes[p] for p in parts]) == naive_mth(leaves[start:])


def test_perfect_subtrees_examples() -> None:
    assert perfect_subtrees(0, 1) == [(0, 0)]
    assert perfect_subtrees(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert perfect_subtrees(8, 13) == [(2, 2), (0, 12)]
    assert perfect_subtrees(0, 8) == [(3, 0)]


@pytest.mark.parametrize(("start", "end"), [(0, 0), (3, 2), (-1, 1), (1, 3), (2, 6), (4, 12)])
def test_perfect_subtrees_rejects_ranges_that_are_not_tree_nodes(start: int, end: int) -> None:
    with pytest.raises(ValueError):
        perfect_subtrees(start, end)


def test_proof_range_argument_errors() -> None:
    for index, size in [(0, 0), (5, 5), (-1, 3)]:
        with pytest.raises(ValueError):
            inclusion_proof_ranges(index, size)
    for old, new in [(0, 0), (0, 5), (6, 5)]:
        with pytest.raises(ValueError):
            consistency_proof_ranges(old, new)
    assert consistency_proof_ranges(5, 5) == []


def test_missing_stored_node_is_reported() -> None:
    with pytest.raises(KeyError, match=r"\(1, 0\)"):
        assemble_proof(inclusion_proof_ranges(3, 4), {(1, 1): b"\x00" * 32, (0, 2): b"\x00" * 32})


def test_basic_hashes_and_empty_tree() -> None:
    assert empty_root() == hashlib.sha256(b"").digest()
    assert root_from_leaf_hashes([]) == empty_root()
    assert CompactTree().root() == empty_root()
    assert tree_root(0, {}) == empty_root()
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    with pytest.raises(ValueError):
        CompactTree().append(b"short")


def test_rfc6962_reference_tree_root(shared_dir: Path) -> None:
    # The vectors' happy paths are proofs in the RFC 6962 reference tree of 8 leaves built
    # from these entries; recomputing that tree must reproduce the root they were checked against.
    entries = [
        bytes.fromhex(h)
        for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
    ]
    case = _load(shared_dir, "inclusion", "1/happy-path.json")
    assert case["treeSize"] == 8
    leaves = [leaf_hash(e) for e in entries]
    assert leaves[case["leafIdx"]] == _b64(case["leafHash"])
    assert root_from_leaf_hashes(leaves) == _b64(case["root"])
