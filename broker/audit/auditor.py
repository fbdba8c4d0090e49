"""The database side of the auditor tools: read the log in one snapshot and hand it to the pure checks."""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from broker.audit import repository
from broker.audit.bundle import ExportSummary, write_bundle
from broker.audit.note import Verifier
from broker.audit.verify import EntryScan, HashedChunk, Report, StoredLevel, hash_chunk, hash_packed, verify_log
from broker.keys.store import KeyStore

T = TypeVar("T")


def checkpoint_verifiers(keys: KeyStore, origin: str, *, serving: bool = False) -> list[Verifier]:
    """Every checkpoint key of the broker, retired ones included: old checkpoints stay verifiable.

    Auditor tools must not create keys (fresh keys would verify nothing); a serving broker owns
    its keys and creates them on first use anyway.
    """
    if not serving and not keys.initialised:
        return []
    return [Verifier(origin, info.public_key) for info in keys.checkpoint_public_keys()]


def _snapshot(session: Session) -> None:
    """Read everything from one snapshot, so an integration committing meanwhile cannot look like tampering.

    SQLite transactions are serialisable already (and this engine opens them with BEGIN IMMEDIATE).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


_DONE = object()


def _prefetched(chunks: Iterator[T]) -> Iterator[T]:
    """Fetch the next chunk in a thread while the caller hashes this one.

    The database works in its own process meanwhile, so reading and hashing a million entries
    overlap instead of taking turns; at most two chunks wait in memory.
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def fetch() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                ready.put(chunk)
        except BaseException as error:  # handed to the consumer, which re-raises it
            ready.put(error)
            return
        ready.put(_DONE)

    thread = threading.Thread(target=fetch, name="audit-prefetch", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        # If the consumer stopped early, keep taking chunks until the fetcher notices.
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.1)


def verify_database(
    session: Session, verifiers: Sequence[Verifier], origin: str, trusted: Sequence[str] = ()
) -> Report:
    _snapshot(session)
    checkpoints = [(c.tree_size, c.root_hash, c.note) for c in repository.all_checkpoints(session)]
    bind = session.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        scan, levels = _read_in_parallel(session, bind)
    else:
        scan = EntryScan()
        for chunk in _prefetched(repository.stream_entries(session)):
            scan.add_chunk(chunk)
        levels = None
    return verify_log(
        checkpoints,
        scan,
        verifiers,
        origin=origin,
        reference=lambda: repository.leaf_level(session),
        stored_nodes=lambda: repository.stream_nodes(session),
        stored_levels=lambda: levels,
        trusted=trusted,
    )


# How many connections read the entries of a PostgreSQL log at once (one more reads the stored tree).
ENTRY_READERS = 2
# Entries a reader asks for at once, packed (repository.packed_entries): about 3 MB of bodies,
# which PostgreSQL sorts within its default work_mem (4 MB; a larger window sorted on disk, and
# verifying 1,000,000 entries took 0.5 s longer with 10,000).
PACKED_WINDOW = 4_000


def _read_in_parallel(session: Session, engine: Engine) -> tuple[EntryScan, list[StoredLevel] | None]:
    """The entries, hashed, and the stored tree's levels, read by connections of their own from the
    session's snapshot: PostgreSQL sends them in several server processes at once, and the threads
    here wait for it without the GIL (a reader hashes its chunk as it comes, keeping no bodies)."""
    snapshot = repository.export_snapshot(session)
    last = repository.max_log_index(session)
    step = ((last or 0) + ENTRY_READERS) // ENTRY_READERS
    # Open at both ends: an entry with an index outside [0, last] (tampering) is still read.
    bounds: list[int | None] = [None, *(step * n for n in range(1, ENTRY_READERS)), None]

    def entries(start: int | None, upto: int | None) -> list[HashedChunk]:
        if last is None:  # no integrated entry at all
            return []
        with repository.snapshot_session(engine, snapshot) as reader:
            return list(_hashed_windows(reader, start, upto, last))

    def levels() -> list[StoredLevel] | None:
        with repository.snapshot_session(engine, snapshot) as reader:
            return repository.node_levels(reader)

    with ThreadPoolExecutor(max_workers=ENTRY_READERS + 1, thread_name_prefix="audit-read") as pool:
        stored = pool.submit(levels)
        parts = [pool.submit(entries, start, upto) for start, upto in itertools.pairwise(bounds)]
        scan = EntryScan()
        for part in parts:
            for chunk in part.result():
                scan.add_hashed(chunk)
        return scan, stored.result()


def _hashed_windows(reader: Session, start: int | None, upto: int | None, last: int) -> Iterator[HashedChunk]:
    """The entries from ``start`` to ``upto`` (open where None; ``last`` is the log's highest index),
    hashed a window at a time: packed where the window is clean, else row by row, which names
    what is wrong. An open start expects the log to begin at index 0."""
    low = start
    while True:
        first = 0 if low is None else low
        final = first + PACKED_WINDOW >= upto if upto is not None else first + PACKED_WINDOW > last
        high = upto if final else first + PACKED_WINDOW
        packed = repository.packed_entries(reader, low, high)
        if packed.count:
            chunk = hash_packed(first, None if high is None else high - first, packed)
            if chunk is None:
                yield from (hash_chunk(rows) for rows in repository.stream_entries(reader, high, start=low))
            else:
                yield chunk
        if final:
            return
        low = high


def export_database(
    session: Session, verifiers: Sequence[Verifier], origin: str, out: Path, now: datetime
) -> ExportSummary:
    """Write the log up to its latest checkpoint as an audit bundle."""
    _snapshot(session)
    checkpoints = repository.all_checkpoints(session)
    size = checkpoints[-1].tree_size if checkpoints else 0
    return write_bundle(
        out,
        origin=origin,
        entries=(body for chunk in repository.stream_entries(session, upto=size) for _index, body, _leaf in chunk),
        leaves=repository.leaf_level(session, upto=size),
        checkpoints=[(c.tree_size, c.note) for c in checkpoints],
        vkeys=[v.vkey() for v in verifiers],
        exported_at=now,
    )
