"""The pure verification core: tree, diagnosis of differences, checkpoint sorting. No database."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from broker.audit.merkle import leaf_hash, root_from_leaf_hashes
from broker.audit.note import Checkpoint, Verifier, sign_note
from broker.audit.verify import (
    CHECKPOINT_FORGED,
    CHECKPOINT_MALFORMED,
    ENTRIES_ALTERED,
    ENTRY_CHANGED,
    ENTRY_DELETED,
    FORK,
    MAX_LISTED,
    EntryScan,
    LeafTree,
    Report,
    classify,
    hash_chunk,
    verify_log,
)

KEY = Ed25519PrivateKey.generate()
VERIFIER = Verifier("log.example", KEY.public_key())


def leaves(count: int) -> list[bytes]:
    return [hashlib.sha256(b"leaf %d" % n).digest() for n in range(count)]


def signed(tree: LeafTree, size: int, origin: str = "log.example") -> tuple[int, None, str]:
    return size, None, sign_note(Checkpoint(origin, size, tree.root(size)).body(), "log.example", KEY)


def kinds(report: Report) -> list[str]:
    return [finding.kind for finding in report.findings]


@given(st.integers(min_value=0, max_value=70))
def test_leaf_tree_matches_the_reference_root(count: int) -> None:
    hashes = leaves(count)
    tree = LeafTree(hashes)
    assert tree.root() == root_from_leaf_hashes(hashes)
    assert len(tree) == sum(count >> level for level in range(count.bit_length() or 1))
    assert set(tree) == {(lv, ix) for lv in range(len(tree.levels)) for ix in range(count >> lv)}


def test_classify_names_several_deleted_entries() -> None:
    reference = leaves(10)
    report = Report()
    classify(reference[:3] + reference[6:], reference, report)
    assert [str(f) for f in report.findings] == [
        "ENTRY DELETED: 3 entries (3 to 5) were deleted and the later entries renumbered"
    ]


def test_classify_summarises_long_lists() -> None:
    reference = leaves(30)
    actual = [hashlib.sha256(h).digest() for h in reference]
    report = Report()
    classify(actual, reference, report)
    report.summarise()
    assert kinds(report).count(ENTRY_CHANGED) == MAX_LISTED + 1
    assert report.findings[-1].message == f"… and {30 - MAX_LISTED} more findings of this kind"


def test_classify_falls_back_to_a_range_for_mixed_damage() -> None:
    reference = leaves(10)
    actual = reference[:4] + [hashlib.sha256(b"x").digest()] + reference[6:] + [hashlib.sha256(b"y").digest()]
    actual = actual[:-2]
    report = Report()
    classify(actual, reference, report)
    assert kinds(report) == [ENTRIES_ALTERED]
    assert "from index 4 on" in report.findings[0].message


def scan_of(hashes: list[bytes]) -> EntryScan:
    scan = EntryScan()
    scan.leaves = list(hashes)
    return scan


def test_two_signed_roots_for_one_size_are_a_fork() -> None:
    tree = LeafTree(leaves(4))
    other = LeafTree(leaves(5)[1:])
    report = verify_log([signed(tree, 4), signed(other, 4)], scan_of(leaves(4)), [VERIFIER])
    assert FORK in kinds(report)


def test_checkpoint_for_another_log_is_rejected() -> None:
    tree = LeafTree(leaves(4))
    report = verify_log([signed(tree, 4, origin="other.example")], scan_of(leaves(4)), [VERIFIER], origin="log.example")
    assert kinds(report)[0] == CHECKPOINT_FORGED
    assert "belongs to another log" in report.findings[0].message


@pytest.mark.parametrize("note", ["", "no signatures\n", "log.example\n4\nnot base64\n\n— log.example AAAA\n"])
def test_malformed_checkpoints_are_named(note: str) -> None:
    report = verify_log([(4, None, note)], scan_of(leaves(4)), [VERIFIER])
    assert kinds(report)[0] in (CHECKPOINT_MALFORMED, CHECKPOINT_FORGED)


def test_entries_short_of_a_checkpoint_without_a_reference() -> None:
    tree = LeafTree(leaves(8))
    report = verify_log([signed(tree, 4), signed(tree, 8)], scan_of(leaves(6)), [VERIFIER])
    assert kinds(report) == [ENTRY_DELETED]
    assert "signs 8 entries but the log holds only 6" in report.findings[0].message


def test_an_intact_log_states_what_was_established() -> None:
    tree = LeafTree(leaves(9))
    trusted = signed(tree, 4)[2]
    report = verify_log([signed(tree, 4), signed(tree, 9)], scan_of(leaves(9)), [VERIFIER], trusted=[trusted])
    assert report.intact
    assert any("consistent with the latest checkpoint (tree size 9)" in fact for fact in report.facts)


def scanned_one_by_one(rows: list[tuple[int, bytes, bytes]]) -> EntryScan:
    scan = EntryScan()
    for index, body, recorded in rows:
        scan.add(body, index=index, recorded_leaf=recorded)
    return scan


@given(
    st.lists(
        st.tuples(st.integers(-2, 30), st.binary(max_size=8), st.booleans()),
        max_size=40,
    ),
    st.integers(1, 9),
)
def test_entries_hashed_in_chunks_are_judged_as_one_at_a_time(
    entries: list[tuple[int, bytes, bool]], chunk_size: int
) -> None:
    """Reader threads hash chunks (hash_chunk) that the scan takes in log order (add_hashed): gaps,
    repeated or out-of-order indices and changed bodies are named exactly as entry by entry."""
    rows = sorted(
        (index, body, leaf_hash(body) if intact else hashlib.sha256(body).digest()) for index, body, intact in entries
    )
    expected = scanned_one_by_one(rows)
    chunked = EntryScan()
    for start in range(0, len(rows), chunk_size):
        chunked.add_hashed(hash_chunk(rows[start : start + chunk_size]))
    assert chunked.leaves == expected.leaves
    assert chunked.findings == expected.findings
