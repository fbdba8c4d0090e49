"""Verifying a provenance log from its parts, and naming what was tampered with. Free of any I/O.

``broker audit verify`` (parts read from the database) and ``broker audit verify-bundle``
(parts read from an export bundle, offline) both end in :func:`verify_log`:

1. Every checkpoint's signature is checked against the broker's checkpoint keys (active and
   retired). Failures are sorted into *forged* (a known key's signature does not verify, the
   origin is wrong, or the stored copy disagrees with the signed note), *re-signed* (signed only
   by keys that are not the broker's) and *malformed*.
2. :class:`EntryScan` hashes every entry body (RFC 9162 leaf = SHA-256(0x00 || body)) in log
   order, checking that indices are dense and that each body still matches the leaf hash
   recorded next to it.
3. The tree is rebuilt from those leaf hashes and compared with every signed checkpoint, with
   the checkpoints the auditor trusts from earlier, with the stored copy of the tree (database)
   and with the consistency proofs between consecutive checkpoints (bundle).

The signed checkpoints are the authority: the tree rebuilt from the entries must reproduce each
signed root. When it does not, an independent copy of the leaf hashes (the stored tree's level 0,
or the bundle's leaf-hash file) is checked against the signed roots as well; if that copy is
authentic, comparing it with the entries says exactly which entry was changed, deleted, inserted
or reordered. If an attacker rewrote that copy too, the report narrows the damage down to the
range between two checkpoints, which is as much as signed roots alone can tell.

What needs a checkpoint saved earlier: a log rewritten *and re-signed* with the broker's own key
is internally consistent; only a checkpoint the auditor kept from before exposes it (a fork),
as it exposes a log restored from an old backup (a rollback).
"""

from __future__ import annotations

import hashlib
import struct
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from broker.audit.merkle import (
    NodeId,
    ProofError,
    StoredNode,
    assemble_proof,
    consistency_proof_ranges,
    inclusion_proof_ranges,
    leaf_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from broker.audit.note import CheckpointError, NoteError, Verifier, note_signers, open_checkpoint

# Kinds of finding. The report prints them upper-cased in front of each message.
ENTRY_CHANGED = "entry changed"
ENTRY_DELETED = "entry deleted"
ENTRY_INSERTED = "entry inserted"
ENTRIES_REORDERED = "entries reordered"
ENTRIES_ALTERED = "entries altered"
TREE_NODE_ALTERED = "tree node altered"
CHECKPOINT_FORGED = "checkpoint forged"
CHECKPOINT_RESIGNED = "checkpoint re-signed"
CHECKPOINT_MALFORMED = "checkpoint malformed"
ROLLBACK = "rollback"
FORK = "fork"
PROOF_INVALID = "proof invalid"

ENTRY_KINDS = frozenset({ENTRY_CHANGED, ENTRY_DELETED, ENTRY_INSERTED, ENTRIES_REORDERED, ENTRIES_ALTERED})

# Past this many findings of one kind the rest are counted, not listed: deleting one entry and
# renumbering the rest would otherwise produce a line for every later entry.
MAX_LISTED = 10

StoredLevel = tuple[int, int, bytes, bytes]
"""(level, node count, the nodes' indices (8 bytes each, big-endian) and their hashes, each
concatenated in one order)."""

CheckpointCandidate = tuple[int | None, bytes | None, str]
"""(tree size as recorded, root as recorded, signed note); a bundle records no root (None)."""


@dataclass(frozen=True)
class Finding:
    kind: str
    message: str
    # The log index concerned, where there is one; the same (kind, index) is reported once.
    index: int | None = None

    def __str__(self) -> str:
        return f"{self.kind.upper()}: {self.message}"


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose signature verified."""

    size: int
    root: bytes
    note: str
    signers: tuple[str, ...] = ()


class LeafTree(Mapping[NodeId, bytes]):
    """Every perfect subtree of the tree over ``leaves``, addressable like the stored node table.

    Level L holds node (L, i) for each complete group of 2**L leaves, which are exactly the rows
    the integrator stores, so the proof functions of :mod:`broker.audit.merkle` work on it as
    they work on the database.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        level = list(leaves)
        self.levels: list[list[bytes]] = [level]
        sha256 = hashlib.sha256
        while len(level) > 1:
            pairs = iter(level)
            # Inline hashing (RFC 9162 node = SHA-256(0x01 || left || right)): a million leaves
            # make two million nodes, and a function call per node would double the time.
            level = [sha256(b"\x01" + left + right).digest() for left, right in zip(pairs, pairs, strict=False)]
            self.levels.append(level)
        self._count = sum(len(hashes) for hashes in self.levels)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def __getitem__(self, node: NodeId) -> bytes:
        level, index = node
        if not (0 <= level < len(self.levels) and 0 <= index < len(self.levels[level])):
            raise KeyError(node)
        return self.levels[level][index]

    def __iter__(self) -> Iterator[NodeId]:
        for level, hashes in enumerate(self.levels):
            for index in range(len(hashes)):
                yield level, index

    def __len__(self) -> int:
        return self._count

    def root(self, size: int | None = None) -> bytes:
        return tree_root(self.size if size is None else size, self)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return assemble_proof(inclusion_proof_ranges(index, size), self)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return assemble_proof(consistency_proof_ranges(old_size, new_size), self)


@dataclass
class Report:
    entries: int = 0
    checkpoints: list[SignedCheckpoint] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # Facts established along the way, for the auditor ("consistent with your checkpoint …").
    facts: list[str] = field(default_factory=list)
    tree: LeafTree | None = None
    _seen: set[tuple[str, int]] = field(default_factory=set, repr=False)
    _counts: Counter[str] = field(default_factory=Counter, repr=False)

    @property
    def intact(self) -> bool:
        return not self.findings

    @property
    def latest(self) -> SignedCheckpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None

    def has(self, kinds: Iterable[str]) -> bool:
        wanted = set(kinds)
        return any(self._counts[kind] for kind in wanted)

    def add(self, kind: str, message: str, index: int | None = None) -> None:
        if index is not None:
            if (kind, index) in self._seen:
                return
            self._seen.add((kind, index))
        self._counts[kind] += 1
        if self._counts[kind] <= MAX_LISTED:
            self.findings.append(Finding(kind, message, index))

    def summarise(self) -> None:
        for kind, count in self._counts.items():
            if count > MAX_LISTED:
                self.findings.append(Finding(kind, f"… and {count - MAX_LISTED} more findings of this kind"))


# --- checkpoints ---------------------------------------------------------------------------------


def open_checkpoints(
    candidates: Iterable[CheckpointCandidate], verifiers: Sequence[Verifier], origin: str | None, report: Report
) -> list[SignedCheckpoint]:
    """The checkpoints whose signatures verify, by size; every other one becomes a finding."""
    known = {(v.name, v.key_id) for v in verifiers}
    by_size: dict[int, SignedCheckpoint] = {}
    for stored_size, stored_root, note in candidates:
        checkpoint = open_one(note, verifiers, known, origin, report, stored_size)
        if checkpoint is None:
            continue
        where = f"checkpoint at tree size {checkpoint.size}"
        if stored_size is not None and stored_size != checkpoint.size:
            report.add(
                CHECKPOINT_FORGED,
                f"the checkpoint recorded for tree size {stored_size} carries a note signed for size "
                f"{checkpoint.size}: the checkpoint record was altered",
            )
            continue
        if stored_root is not None and stored_root != checkpoint.root:
            report.add(
                CHECKPOINT_FORGED,
                f"{where}: the stored root hash differs from the signed note: the checkpoint record was altered",
            )
            continue
        other = by_size.get(checkpoint.size)
        if other is not None and other.root != checkpoint.root:
            report.add(
                FORK,
                f"two checkpoints for tree size {checkpoint.size} are both validly signed but name "
                f"different roots: the log was forked",
            )
            continue
        by_size[checkpoint.size] = checkpoint
    return [by_size[size] for size in sorted(by_size)]


def open_one(
    note: str,
    verifiers: Sequence[Verifier],
    known: set[tuple[str, bytes]],
    origin: str | None,
    report: Report,
    stored_size: int | None = None,
    what: str | None = None,
) -> SignedCheckpoint | None:
    """Verify one signed checkpoint note, or record why it is not one and return None."""
    where = what or (f"checkpoint at tree size {stored_size}" if stored_size is not None else "a checkpoint")
    try:
        checkpoint, signers = open_checkpoint(note, verifiers)
    except CheckpointError as error:
        report.add(CHECKPOINT_MALFORMED, f"{where}: {error}")
        return None
    except NoteError as error:
        try:
            claimed = note_signers(note)
        except NoteError:
            report.add(CHECKPOINT_MALFORMED, f"{where} is not a signed note: {error}")
            return None
        if any(signer in known for signer in claimed):
            report.add(
                CHECKPOINT_FORGED,
                f"{where}: {error}: the note was altered after signing, or forged",
            )
        else:
            names = ", ".join(f"{name}+{kid.hex()}" for name, kid in claimed)
            report.add(
                CHECKPOINT_RESIGNED,
                f"{where} is signed only by {names}, which is none of the broker's checkpoint keys "
                f"it was verified with: re-signed with another key",
            )
        return None
    if origin is not None and checkpoint.origin != origin:
        report.add(
            CHECKPOINT_FORGED,
            f"{where} names the log {checkpoint.origin!r}, not {origin!r}: it belongs to another log",
        )
        return None
    return SignedCheckpoint(checkpoint.size, checkpoint.root, note, tuple(signers))


# --- entries ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HashedChunk:
    """Entries (index, body, recorded leaf hash) read together, hashed where they were read (a
    reader thread may do it while another chunk is checked): the bodies are not kept."""

    # The first entry's log index; the others follow it densely unless ``indices`` lists them.
    first: int
    leaves: list[bytes]
    indices: tuple[int, ...] | None
    # The recorded leaf hashes that differ from the body's, by position in the chunk.
    differing: dict[int, bytes]


def hash_chunk(rows: Sequence[tuple[int, bytes, bytes]]) -> HashedChunk:
    indices, bodies, recorded = zip(*rows, strict=True)
    sha256 = hashlib.sha256
    # Inline leaf_hash: a call per entry would cost a fifth of the hashing.
    leaves = [sha256(b"\x00" + body).digest() for body in bodies]
    differing = {} if leaves == list(recorded) else {i: r for i, r in enumerate(recorded) if r != leaves[i]}
    dense = indices == tuple(range(indices[0], indices[0] + len(indices)))
    return HashedChunk(indices[0], leaves, None if dense else indices, differing)


@dataclass(frozen=True)
class PackedEntries:
    """A window of entries as a few database values instead of a row each: ``count`` bodies joined
    by newlines (None if the database could not pack every one), the recorded leaf hashes that
    have the length of one, concatenated, and the log indices (8 bytes each, big-endian),
    concatenated; all in one order."""

    count: int
    bodies: bytes | None
    leaf_hashes: bytes
    indices: bytes


def hash_packed(first: int, expected: int | None, packed: PackedEntries) -> HashedChunk | None:
    """The chunk of a clean window, else None: the caller reads that window row by row instead,
    and :func:`hash_chunk` names what is wrong (this never judges damage, it only vouches).

    Clean: ``expected`` entries (any number if None) with exactly the log indices ``first``,
    ``first + 1``, … in this order, every body packed, as many newline-separated pieces as
    entries (an entry is canonical JSON, which has no newline of its own; one with a newline
    yields a piece more, so the pieces are the bodies exactly when the numbers agree), and every
    recorded leaf hash the hash of its body.
    """
    count = packed.count
    if packed.bodies is None or (expected is not None and count != expected):
        return None
    pieces = packed.bodies.split(b"\n") if count else []
    if len(pieces) != count or packed.indices != _index_run(first, count):
        return None
    sha256 = hashlib.sha256
    leaves = [sha256(b"\x00" + body).digest() for body in pieces]
    if b"".join(leaves) != packed.leaf_hashes:
        return None
    return HashedChunk(first, leaves, None, {})


class EntryScan:
    """Takes the entries in log order, one or a chunk at a time, so a million bodies never sit in memory."""

    def __init__(self) -> None:
        self.leaves: list[bytes] = []
        self.findings: list[Finding] = []
        self._next = 0

    def add(self, body: bytes, *, index: int | None = None, recorded_leaf: bytes | None = None) -> bytes:
        """Hash one entry; ``index`` is the log index it claims, ``recorded_leaf`` the hash stored with it."""
        leaf = leaf_hash(body)
        self._add_leaf(leaf, index, recorded_leaf)
        return leaf

    def _add_leaf(self, leaf: bytes, index: int | None, recorded_leaf: bytes | None) -> None:
        if index is None:
            index = self._next
        elif index > self._next:
            missing = f"{self._next}" if index == self._next + 1 else f"{self._next} to {index - 1}"
            self.findings.append(Finding(ENTRY_DELETED, f"no entry has log index {missing}: deleted", self._next))
        elif index < self._next:
            self.findings.append(Finding(ENTRY_INSERTED, f"a second entry claims log index {index}: inserted", index))
        self._next = max(self._next, index + 1)
        if recorded_leaf is not None and recorded_leaf != leaf:
            self.findings.append(
                Finding(
                    ENTRY_CHANGED,
                    f"entry {index} was changed: its body no longer hashes to the leaf hash recorded with it",
                    index,
                )
            )
        self.leaves.append(leaf)

    def add_chunk(self, rows: Sequence[tuple[int, bytes, bytes]]) -> None:
        """Many (index, body, recorded leaf hash) rows at once."""
        if rows:
            self.add_hashed(hash_chunk(rows))

    def add_hashed(self, chunk: HashedChunk) -> None:
        """The next chunk in log order: list operations while all is well, one entry at a time (to
        name what is wrong) only when something is not."""
        if chunk.first == self._next and chunk.indices is None and not chunk.differing:
            self.leaves.extend(chunk.leaves)
            self._next += len(chunk.leaves)
            return
        indices = chunk.indices or range(chunk.first, chunk.first + len(chunk.leaves))
        for position, (index, leaf) in enumerate(zip(indices, chunk.leaves, strict=True)):
            self._add_leaf(leaf, index, chunk.differing.get(position, leaf))


def classify(actual: Sequence[bytes], reference: Sequence[bytes], report: Report) -> None:
    """Name the difference between the entries' leaf hashes and an authentic copy of them."""
    n_actual, n_reference = len(actual), len(reference)
    common = min(n_actual, n_reference)
    first = next((i for i in range(common) if actual[i] != reference[i]), common)
    if n_actual == n_reference:
        if first == n_actual:
            return
        differing = [i for i in range(first, n_actual) if actual[i] != reference[i]]
        if Counter(actual[i] for i in differing) == Counter(reference[i] for i in differing):
            shown = ", ".join(str(i) for i in differing[:MAX_LISTED])
            more = f" and {len(differing) - MAX_LISTED} more" if len(differing) > MAX_LISTED else ""
            report.add(
                ENTRIES_REORDERED,
                f"entries were reordered: log indices {shown}{more} hold entries that were signed at other indices",
                differing[0],
            )
            return
        for i in differing:
            report.add(ENTRY_CHANGED, f"entry {i} was changed: it differs from the entry the log signed", i)
        return
    if n_actual < n_reference:
        gap = n_reference - n_actual
        if actual[first:] == reference[first + gap :]:
            what = f"entry {first} was" if gap == 1 else f"{gap} entries ({first} to {first + gap - 1}) were"
            where = "from the end of the log" if first == n_actual else "and the later entries renumbered"
            report.add(ENTRY_DELETED, f"{what} deleted {where}", first)
            return
    else:
        extra = n_actual - n_reference
        if actual[first + extra :] == reference[first:]:
            if first == n_reference:
                report.add(
                    ENTRY_INSERTED,
                    f"entries {n_reference} to {n_actual - 1} are in the log but in no signed checkpoint: inserted",
                    first,
                )
            else:
                what = "an entry was" if extra == 1 else f"{extra} entries were"
                report.add(ENTRY_INSERTED, f"{what} inserted at log index {first}", first)
            return
    report.add(
        ENTRIES_ALTERED,
        f"the entries differ from the signed log from index {first} on: entries were changed, deleted, "
        f"inserted or reordered",
        first,
    )


# --- the whole log ---------------------------------------------------------------------------------


def verify_log(
    checkpoints: Iterable[CheckpointCandidate],
    scan: EntryScan,
    verifiers: Sequence[Verifier],
    *,
    origin: str | None = None,
    reference: Callable[[], Sequence[bytes]] | None = None,
    stored_nodes: Callable[[], Iterable[Sequence[StoredNode]]] | None = None,
    stored_levels: Callable[[], Sequence[StoredLevel] | None] | None = None,
    proofs: Mapping[tuple[int, int], Sequence[bytes]] | None = None,
    trusted: Sequence[str] = (),
) -> Report:
    """Check a log from its parts (see the module docstring); the report lists what is wrong.

    ``reference`` loads an independent copy of the leaf hashes (only when there is tampering to
    name), ``stored_nodes`` the database's node table in chunks (checked against the rebuilt tree;
    ``stored_levels``, where the database can summarise it, checks an intact table faster), ``proofs``
    the consistency proofs a bundle carries, keyed by (old size, new size) — without them the
    proofs are derived from the rebuilt tree — and ``trusted`` signed checkpoints saved earlier.
    """
    report = Report()
    report.checkpoints = open_checkpoints(checkpoints, verifiers, origin, report)
    for finding in scan.findings:
        report.add(finding.kind, finding.message, finding.index)
    tree = LeafTree(scan.leaves)
    report.tree = tree
    report.entries = tree.size

    matches = _compare_roots(tree, report)
    _diagnose_entries(tree, matches, reference, report)
    if stored_nodes is not None and not report.has(ENTRY_KINDS):
        # With the entries intact, a differing node is damage to the stored tree itself (it would
        # make the broker serve proofs that fail); with damaged entries it proves nothing more.
        levels = stored_levels() if stored_levels is not None else None
        if levels is None or not _levels_match(tree, levels):
            _compare_nodes(tree, stored_nodes(), report)
    _check_chain(tree, matches, proofs, report)
    known = {(v.name, v.key_id) for v in verifiers}
    for number, note in enumerate(trusted, 1):
        what = "your trusted checkpoint" if len(trusted) == 1 else f"your trusted checkpoint #{number}"
        checkpoint = open_one(note, verifiers, known, origin, report, what=what)
        if checkpoint is not None:
            _check_trusted(tree, checkpoint, what, report)
    report.summarise()
    return report


def _compare_roots(tree: LeafTree, report: Report) -> dict[int, bool]:
    """For each signed size the entries cover: does the rebuilt tree reproduce the signed root?"""
    return {c.size: tree.root(c.size) == c.root for c in report.checkpoints if c.size <= tree.size}


def _diagnose_entries(
    tree: LeafTree,
    matches: dict[int, bool],
    reference: Callable[[], Sequence[bytes]] | None,
    report: Report,
) -> None:
    signed = report.checkpoints
    latest_size = signed[-1].size if signed else 0
    bad = [c for c in signed if c.size > tree.size or not matches[c.size]]
    # A bad checkpoint followed by one the entries do reproduce cannot be explained by damaged
    # entries: two signed trees exist and the later one does not extend the earlier one.
    good = [c for c in signed if matches.get(c.size)]
    good_sizes = [c.size for c in good]
    forked: list[tuple[SignedCheckpoint, SignedCheckpoint]] = []
    for c in bad:
        position = bisect_right(good_sizes, c.size)
        if position < len(good):
            forked.append((c, good[position]))
    for old, new in forked:
        report.add(
            FORK,
            f"the signed checkpoints for tree sizes {old.size} and {new.size} are not consistent: the log "
            f"was rewritten and re-signed after size {old.size} was published (a fork)",
        )
    damaged = [c for c in bad if all(c is not old for old, _new in forked)]
    if not damaged and tree.size <= latest_size:
        return
    copy = reference() if reference is not None else None
    if copy is not None and len(copy) >= latest_size and _authentic(copy[:latest_size], signed):
        # Leaf hashes the copy holds beyond the latest signed size are not vouched for by anything.
        classify(tree.levels[0], copy[:latest_size], report)
        return
    if damaged:
        first = damaged[0]
        position = bisect_right(good_sizes, first.size)
        last_good = good_sizes[position - 1] if position else 0
        if first.size > tree.size:
            unsure = "" if last_good == tree.size else f"; the entries from index {last_good} on are unverified"
            report.add(
                ENTRY_DELETED,
                f"the checkpoint for tree size {first.size} signs {first.size} entries but the log holds only "
                f"{tree.size}: entries were deleted (or the log was cut back){unsure}",
                tree.size,
            )
            return
        report.add(
            ENTRIES_ALTERED,
            f"the entries no longer reproduce the root signed for tree size {first.size} (they still "
            f"reproduce size {last_good}): an entry with log index from {last_good} to "
            f"{min(first.size, tree.size) - 1} was changed, deleted, inserted or reordered",
            last_good,
        )
        return
    if report.has({CHECKPOINT_FORGED, CHECKPOINT_RESIGNED, CHECKPOINT_MALFORMED}):
        report.add(
            ENTRIES_ALTERED,
            f"entries {latest_size} to {tree.size - 1} are covered by no validly signed checkpoint (see the "
            f"checkpoint findings): nothing vouches for them",
            latest_size,
        )
        return
    report.add(
        ENTRY_INSERTED,
        f"entries {latest_size} to {tree.size - 1} are in the log but in no signed checkpoint: inserted",
        latest_size,
    )


def _authentic(reference: Sequence[bytes], signed: Sequence[SignedCheckpoint]) -> bool:
    """Whether a copy of the leaf hashes reproduces every signed root (so it can be believed)."""
    if not signed:
        return False
    reference_tree = LeafTree(reference)
    return all(reference_tree.root(c.size) == c.root for c in signed)


def _levels_match(tree: LeafTree, levels: Sequence[StoredLevel]) -> bool:
    """Whether the stored tree, summarised per level, is exactly the rebuilt one: on every level
    the nodes 0, 1, … in this order, each with its rebuilt hash."""
    expected = [(level, hashes) for level, hashes in enumerate(tree.levels) if hashes]
    if [level for level, *_rest in levels] != [level for level, _hashes in expected]:
        return False
    return all(
        count == len(hashes) and indices == _index_run(0, count) and joined == b"".join(hashes)
        for (_level, count, indices, joined), (_same, hashes) in zip(levels, expected, strict=True)
    )


def _index_run(first: int, count: int) -> bytes:
    """The indices first … first + count - 1 as a database concatenates them (8 bytes, big-endian)."""
    return struct.pack(f">{count}q", *range(first, first + count))


def _compare_nodes(tree: LeafTree, chunks: Iterable[Sequence[StoredNode]], report: Report) -> None:
    """Every stored node must equal the rebuilt one, and none may be missing or extra.

    Rows come ordered by (level, index); each run of one level is compared as a whole list, and
    only a run that differs is gone through node by node.
    """
    seen = 0
    for chunk in chunks:
        if not chunk:
            continue
        levels, indices, hashes = zip(*chunk, strict=True)
        start = 0
        while start < len(chunk):
            level = levels[start]
            end = bisect_right(levels, level, start)
            first, count = indices[start], end - start
            if (
                0 <= level < len(tree.levels)
                and first >= 0
                and indices[start:end] == tuple(range(first, first + count))
                and list(hashes[start:end]) == tree.levels[level][first : first + count]
            ):
                seen += count
            else:
                seen += _compare_each(tree, chunk[start:end], report)
            start = end
    if seen < len(tree):
        report.add(
            TREE_NODE_ALTERED,
            f"the stored tree lacks {len(tree) - seen} of the {len(tree)} nodes the entries make: "
            f"proofs served from it would fail",
        )


def _compare_each(tree: LeafTree, nodes: Sequence[StoredNode], report: Report) -> int:
    matched = 0
    for level, index, stored_hash in nodes:
        try:
            expected = tree[(level, index)]
        except KeyError:
            report.add(
                TREE_NODE_ALTERED,
                f"the stored tree has node (level {level}, index {index}), which covers entries the log does not hold",
            )
            continue
        matched += 1
        if stored_hash != expected:
            what = f"the leaf hash of entry {index}" if level == 0 else f"node (level {level}, index {index})"
            report.add(
                TREE_NODE_ALTERED,
                f"the stored tree's {what} differs from the one rebuilt from the entries: proofs served "
                f"from it would fail",
            )
    return matched


def _check_chain(
    tree: LeafTree,
    matches: dict[int, bool],
    proofs: Mapping[tuple[int, int], Sequence[bytes]] | None,
    report: Report,
) -> None:
    """Each signed checkpoint must be consistent with the next (RFC 9162 consistency proofs)."""
    signed = [c for c in report.checkpoints if c.size > 0]
    checked = 0
    for old, new in zip(signed, signed[1:], strict=False):
        if proofs is not None:
            proof = proofs.get((old.size, new.size))
            if proof is None:
                report.add(PROOF_INVALID, f"the consistency proof from tree size {old.size} to {new.size} is missing")
                continue
        elif new.size <= tree.size:
            proof = tree.consistency_proof(old.size, new.size)
        else:
            continue
        try:
            verify_consistency(old.size, new.size, old.root, new.root, proof)
        except ProofError as error:
            # Where the roots disagree with the entries the finding above already says why.
            if matches.get(old.size) and matches.get(new.size):
                report.add(
                    PROOF_INVALID,
                    f"the consistency proof from tree size {old.size} to {new.size} does not verify "
                    f"({error}): the proof was altered",
                )
            continue
        checked += 1
    if signed and checked == len(signed) - 1:
        report.facts.append(f"{len(signed)} signed checkpoints, each consistent with the next (append-only growth)")


def _check_trusted(tree: LeafTree, trusted: SignedCheckpoint, what: str, report: Report) -> None:
    signed = report.checkpoints
    latest = signed[-1] if signed else None
    latest_size = latest.size if latest else 0
    same = next((c for c in signed if c.size == trusted.size), None)
    if same is not None and same.root != trusted.root:
        report.add(
            FORK,
            f"the log's checkpoint for tree size {trusted.size} names a different root than {what}: the log was forked",
        )
        return
    if trusted.size > latest_size or trusted.size > tree.size:
        report.add(
            ROLLBACK,
            f"{what} is for tree size {trusted.size}, but the log's latest signed checkpoint is for size "
            f"{latest_size} and it holds {tree.size} entries: the log was rolled back",
        )
        return
    if tree.root(trusted.size) != trusted.root:
        if not report.has(ENTRY_KINDS | {FORK}):
            report.add(
                FORK,
                f"the log's history up to tree size {trusted.size} differs from {what}, although the log's "
                f"own checkpoints agree with its entries: the log was rewritten and re-signed (a fork)",
            )
        return
    if latest is None or not trusted.size or tree.root(latest.size) != latest.root:
        return
    proof = tree.consistency_proof(trusted.size, latest.size) if trusted.size < latest.size else []
    try:
        verify_consistency(trusted.size, latest.size, trusted.root, latest.root, proof)
    except ProofError as error:
        report.add(PROOF_INVALID, f"{what} is not consistent with the latest checkpoint: {error}")
        return
    report.facts.append(
        f"{what} (tree size {trusted.size}) is consistent with the latest checkpoint (tree size "
        f"{latest.size}): the log only grew since"
    )


def prove_inclusion(tree: LeafTree, checkpoint: SignedCheckpoint, index: int) -> list[bytes]:
    """An inclusion proof of entry ``index`` in the signed tree, verified against its signed root."""
    proof = tree.inclusion_proof(index, checkpoint.size)
    verify_inclusion(tree[(0, index)], index, checkpoint.size, proof, checkpoint.root)
    return proof
