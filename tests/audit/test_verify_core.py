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
    TREE_NODE_ALTERED,
    EntryScan,
    LeafTree,
    PackedEntries,
    Report,
    classify,
    hash_chunk,
    hash_packed,
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


def packed(rows: list[tuple[int, bytes, bytes]], *, every_body: bool = True) -> PackedEntries:
    """The window of ``rows`` as PostgreSQL packs it (repository.packed_entries)."""
    return PackedEntries(
        len(rows),
        b"\n".join(body for _, body, _ in rows) if every_body else None,
        b"".join(recorded for _, _, recorded in rows if len(recorded) == 32),
        b"".join(index.to_bytes(8, "big", signed=True) for index, _, _ in rows),
    )


# What can be wrong with a window read from a database an attacker could write to.
DAMAGE = ("none", "gap", "repeated index", "swapped", "newline", "other hash", "short hash", "unpacked", "miscounted")


@given(
    st.integers(-1, 3),
    st.lists(st.binary(max_size=6).filter(lambda b: b"\n" not in b) | st.sampled_from([b"{}", b""]), max_size=8),
    st.sampled_from(DAMAGE),
    st.integers(0, 7),
    st.booleans(),
)
def test_a_packed_window_is_vouched_for_only_when_it_is_exactly_the_rows(
    first: int, bodies: list[bytes], damage: str, where: int, open_ended: bool
) -> None:
    """hash_packed vouches for a window only when its pieces are the rows' bodies at the indices
    first, first + 1, … with their own leaf hashes, and then says what hashing the rows says; a
    body with a newline of its own, a gap, a repeated or swapped index, a wrong or short hash, a
    body left unpacked or a window short of entries never passes."""
    rows = [(first + n, body, leaf_hash(body)) for n, body in enumerate(bodies)]
    expected: int | None = None if open_ended else len(rows)
    every_body = True
    at = where % len(rows) if rows else 0
    if rows and damage == "gap":
        rows[at:] = [(index + 1, body, leaf) for index, body, leaf in rows[at:]]
    elif rows and damage == "repeated index":
        rows[at] = (rows[at - 1][0] if at else rows[at][0] - 1, *rows[at][1:])
    elif len(rows) > 1 and damage == "swapped":
        other = (at + 1) % len(rows)
        rows[at], rows[other] = (rows[other][0], *rows[at][1:]), (rows[at][0], *rows[other][1:])
    elif rows and damage == "newline":
        body = rows[at][1] + b"\n{}"
        rows[at] = (rows[at][0], body, leaf_hash(body))
    elif rows and damage == "other hash":
        rows[at] = (*rows[at][:2], hashlib.sha256(rows[at][1]).digest())
    elif rows and damage == "short hash":
        rows[at] = (*rows[at][:2], rows[at][2][:31])
    elif rows and damage == "unpacked":
        every_body = False
    elif damage == "miscounted":
        expected = len(rows) + 1
    else:
        damage = "none"
    chunk = hash_packed(first, expected, packed(rows, every_body=every_body))
    if damage != "none":
        assert chunk is None
    elif rows:
        assert chunk == hash_chunk(rows)
    else:
        assert chunk is not None
        assert (chunk.first, chunk.leaves, chunk.indices, chunk.differing) == (first, [], None, {})


def test_a_clean_window_is_vouched_for_as_its_rows_hash() -> None:
    rows = [(7 + n, b'{"n":%d}' % n, leaf_hash(b'{"n":%d}' % n)) for n in range(5)]
    assert hash_packed(7, 5, packed(rows)) == hash_chunk(rows)
    assert hash_packed(7, None, packed(rows)) == hash_chunk(rows)
    # The same rows, but a body the database could not pack, or a window that should hold more.
    assert hash_packed(7, 5, packed(rows, every_body=False)) is None
    assert hash_packed(7, 6, packed(rows)) is None


def levels_of(nodes: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes, bytes]]:
    """The stored tree summarised per level as PostgreSQL does it (repository.node_levels)."""
    by_level: dict[int, list[tuple[int, bytes]]] = {}
    for level, index, digest in nodes:
        by_level.setdefault(level, []).append((index, digest))
    return [
        (level, len(run), b"".join(i.to_bytes(8, "big") for i, _ in run), b"".join(d for _, d in run))
        for level, run in sorted(by_level.items())
    ]


def test_a_relabelled_stored_node_is_found_although_its_level_sums_up_alike() -> None:
    """Leaf node 2 stored under index 1, right after the real node 1: the level has as many
    nodes, from 0 to 4, and the same hashes in the same order, but node 2 is gone."""
    tree = LeafTree(leaves(5))
    nodes = [(level, index, digest) for level, row in enumerate(tree.levels) for index, digest in enumerate(row)]
    relabelled = [(level, 1 if (level, index) == (0, 2) else index, digest) for level, index, digest in nodes]

    def verified(stored: list[tuple[int, int, bytes]]) -> Report:
        return verify_log(
            [signed(tree, 5)],
            scan_of(leaves(5)),
            [VERIFIER],
            stored_nodes=lambda: [stored],
            stored_levels=lambda: levels_of(stored),
        )

    intact = verified(nodes)
    assert intact.intact, intact.findings
    assert kinds(verified(relabelled)) == [TREE_NODE_ALTERED]
