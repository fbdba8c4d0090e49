"""All provenance-log queries."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, cast, overload

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    Select,
    Table,
    Transaction,
    and_,
    bindparam,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, SessionTransaction

from broker.audit.merkle import NodeId, StoredNode
from broker.audit.verify import PackedEntries, StoredLevel
from broker.db.models import Checkpoint, LogEntry, MerkleNode
from broker.db.session import READ_ONLY

# pg_advisory_xact_lock takes a bigint; derive it from a name so it cannot collide by accident
# with another feature's lock number.
INTEGRATOR_LOCK_KEY = int.from_bytes(hashlib.sha256(b"broker.audit.integrator").digest()[:8], "big", signed=True)

# Core tables rather than ORM objects: the integrator and the verifier move rows by the
# thousand, where building ORM instances would cost more than the queries.
_log = cast(Table, LogEntry.__table__)
_nodes = cast(Table, MerkleNode.__table__)
_checkpoints = cast(Table, Checkpoint.__table__)

# Rows per round trip when streaming the whole log: large enough to amortise the round trip,
# small enough that a million-entry log never sits in the driver's buffers at once.
STREAM_CHUNK = 50_000


class QueuedEntry:
    """An entry queued in the caller's transaction: its leaf hash at once, its seq once it is written.

    The entries a transaction queues are written together, in one statement: when the first of
    them is asked for its seq, else just before the transaction commits.
    """

    def __init__(self, connection: Connection, session: Session, leaf_hash: bytes) -> None:
        self._connection: Connection | None = connection
        # Keeps the written entry for the receipt of a fresh delivery (entry_position).
        self._session = session
        self._seq: int | None = None
        self.leaf_hash = leaf_hash

    @property
    def seq(self) -> int:
        if self._seq is None and self._connection is not None and not self._connection.closed:
            write_queued(self._connection)
        if self._seq is None:
            raise RuntimeError("the entry's transaction ended without writing it")
        return self._seq

    def _written(self, seq: int) -> None:
        self._seq, self._connection = seq, None


class EntryRow(NamedTuple):
    """The columns of a queued entry (``seq`` and ``log_index`` are the database's to give)."""

    body: bytes
    leaf_hash: bytes
    recorded_at: datetime
    event: str
    exchange_id: str | None
    requester: str | None
    authority: str | None
    evidence_type: str | None
    subject_pseudonym: str | None


# The entries not yet written, in the order queued, on the transaction's connection (``info``,
# a _Queue), and that connection on the session that queued them; the written ones by seq, on
# the session (a fresh delivery's receipt is answered from them).
_PENDING = "broker_pending_log_entries"
_QUEUED = "broker_queued_log_entries"

# Rows per INSERT: well under SQLite's limit of host parameters per statement (9 columns a row).
WRITE_CHUNK = 500
# PostgreSQL prepares the INSERTs of up to this many rows (an exchange's transaction writes up to
# three): a server-side statement for every other size seen would only pile up.
PREPARED_ROWS = 4


class _Dialect(NamedTuple):
    name: str
    paramstyle: str


# The column types' conversions of the values by dialect (SQLite keeps a timestamp as
# SQLAlchemy's text, PostgreSQL as itself); built once per kind of dialect, not per engine.
_CONVERSIONS: dict[_Dialect, list[Callable[[Any], Any] | None]] = {}


def _conversions(dialect: Dialect) -> list[Callable[[Any], Any] | None]:
    key = _Dialect(dialect.name, dialect.paramstyle)
    found = _CONVERSIONS.get(key)
    if found is None:
        found = [_log.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in EntryRow._fields]
        _CONVERSIONS[key] = found
    return found


@functools.lru_cache(maxsize=64)
def _insert_statement(dialect: _Dialect, rows: int) -> str:
    """The INSERT of ``rows`` entries in the driver's own parameter style, returning their seqs."""
    mark = "%s" if dialect.paramstyle in ("format", "pyformat") else "?"
    values = ", ".join([f"({', '.join([mark] * len(EntryRow._fields))})"] * rows)
    return f"INSERT INTO log_entries ({', '.join(EntryRow._fields)}) VALUES {values} RETURNING seq, leaf_hash"


def queue(session: Session, row: EntryRow) -> QueuedEntry:
    """Queue an entry in the session's transaction; the integrator later gives it its index.

    Nothing is sent yet: the transaction's entries go out together (:func:`write_queued`), so
    the three entries of a synchronous exchange cost one round trip, not three. They are kept
    with the database transaction itself, which writes them before it commits, by whatever code
    commits it, and drops them when it rolls back.
    """
    # Begins the session's transaction if nothing has yet: the entry belongs to it.
    connection = session.connection()
    if connection.get_execution_options().get(READ_ONLY):
        # A read session never commits: the entry would be lost without a word.
        raise RuntimeError("Database.read() sessions do not record log entries; use Database.unit_of_work()")
    if connection.in_nested_transaction():
        # A savepoint's rollback would have to take back entries written inside it, and with them
        # seqs already handed out (a delivery keeps its entry's): steps are recorded outside them.
        raise RuntimeError("log entries are recorded in a top-level transaction, not inside a savepoint")
    entry = QueuedEntry(connection, session, row.leaf_hash)
    _queue_of(connection, create=True).append((row, entry))
    session.info[_PENDING] = connection
    return entry


def _driver(connection: Connection) -> Any:
    """The DBAPI connection under ``connection``: the log's bulk reads and writes go to it directly,
    where SQLAlchemy's per-row work costs more than the statement."""
    driver = connection.connection.driver_connection
    assert driver is not None
    return driver


class _Queue(NamedTuple):
    # The transaction the entries belong to: the pooled connection (and its ``info``) outlives it,
    # and a queue left by one that rolled back must never reach the next.
    transaction: Transaction
    entries: list[tuple[EntryRow, QueuedEntry]]


@overload
def _queue_of(connection: Connection, *, create: Literal[True]) -> list[tuple[EntryRow, QueuedEntry]]: ...
@overload
def _queue_of(connection: Connection, *, create: Literal[False]) -> list[tuple[EntryRow, QueuedEntry]] | None: ...
def _queue_of(connection: Connection, *, create: bool) -> list[tuple[EntryRow, QueuedEntry]] | None:
    """The entries queued in the connection's current transaction (None if none and not ``create``)."""
    transaction = connection.get_transaction()
    found: _Queue | None = connection.info.get(_PENDING)
    if found is not None and found.transaction is transaction:
        return found.entries
    if not create or transaction is None:
        connection.info.pop(_PENDING, None)
        return None
    queued = _Queue(transaction, [])
    connection.info[_PENDING] = queued
    return queued.entries


def write_queued(connection: Connection) -> None:
    """Write the entries queued in the connection's transaction and not written yet, in the order
    they were queued.

    One statement on the driver's connection per ``WRITE_CHUNK`` entries, prepared on
    PostgreSQL for the few rows of an exchange: through the ORM's unit of work (or Core) the rows
    cost several times the statement, on the hot path of every exchange. Runs by itself when the
    transaction commits, on the driver's connection, before the COMMIT. An entry leaves the queue
    only once its row is written.
    """
    pending = _queue_of(connection, create=False)
    if not pending:
        return
    if connection.in_nested_transaction():
        raise RuntimeError("log entries are written in their top-level transaction, not inside a savepoint")
    dialect = connection.dialect
    conversions = _conversions(dialect)
    driver = _driver(connection)
    while pending:
        chunk = pending[:WRITE_CHUNK]
        statement = _insert_statement(_Dialect(dialect.name, dialect.paramstyle), len(chunk))
        values = tuple(
            value if convert is None else convert(value)
            for row, _entry in chunk
            for convert, value in zip(conversions, row, strict=True)
        )
        cursor = driver.cursor()
        try:
            if dialect.name == "postgresql":
                cursor.execute(statement, values, prepare=len(chunk) <= PREPARED_ROWS)
            else:
                cursor.execute(statement, values)
            numbered = sorted((int(seq), bytes(leaf)) for seq, leaf in cursor.fetchall())
        finally:
            cursor.close()
        # The database numbers the rows in the order of the VALUES list; the order they come back
        # in is not promised (SQLite's RETURNING), hence the sort, and this check of the pairing.
        if [leaf for _seq, leaf in numbered] != [row.leaf_hash for row, _entry in chunk]:
            raise RuntimeError("log entries were numbered out of the order they were queued in")
        for (seq, _leaf), (_row, entry) in zip(numbered, chunk, strict=True):
            entry._written(seq)
            entry._session.info.setdefault(_QUEUED, {})[seq] = entry
        del pending[: len(chunk)]


def _write_before_commit(session: Session) -> None:
    # A session writes its queue before the commit begins, where a failed write is an ordinary
    # failed statement that the caller rolls back. A savepoint's commit (RELEASE) is not the
    # transaction's: its entries wait for the real one.
    connection = session.info.get(_PENDING)
    if connection is not None and not session.in_nested_transaction():
        write_queued(connection)


def _write_at_commit(connection: Connection) -> None:
    # Whatever a session did not write already: a commit past the session (the connection's
    # own, or the owner's of a transaction a session joined).
    write_queued(connection)


def _forget_written(session: Session, transaction: SessionTransaction) -> None:
    # What a finished transaction wrote means nothing to the session's next one (whose seqs
    # SQLite may hand out again).
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_QUEUED, None)


# The queued entries of a transaction go out when it commits, whatever code commits it (a
# session, the connection itself, the owner of a transaction a session joined); a transaction
# that ends otherwise (rolled back, closed, its connection returned) leaves them behind, never to
# be written (see _Queue).
event.listen(Session, "before_commit", _write_before_commit)
event.listen(Engine, "commit", _write_at_commit)
event.listen(Session, "after_transaction_end", _forget_written)


# --- integrator ---------------------------------------------------------------------------


def lock_integrator(session: Session, *, wait: bool) -> bool:
    """Become the only integrator until the transaction ends; False if ``wait`` is off and it is taken.

    On PostgreSQL a transaction-scoped advisory lock (released by commit, rollback or a dead
    connection, so a crashed integrator never leaves it behind). On SQLite the engine already
    opened the transaction with BEGIN IMMEDIATE, which admits one writer at a time; the query
    below only makes sure that transaction has begun.
    """
    if session.get_bind().dialect.name == "postgresql":
        if wait:
            session.execute(select(func.pg_advisory_xact_lock(INTEGRATOR_LOCK_KEY)))
            return True
        return bool(session.execute(select(func.pg_try_advisory_xact_lock(INTEGRATOR_LOCK_KEY))).scalar_one())
    session.execute(text("SELECT 1"))
    return True


def tree_size(session: Session) -> int:
    """Size of the tree as of the latest signed checkpoint (the integrator signs every size it makes)."""
    return int(session.execute(select(func.coalesce(func.max(_checkpoints.c.tree_size), 0))).scalar_one())


def queued(session: Session, limit: int) -> list[tuple[int, bytes]]:
    """(seq, leaf hash) of the oldest queued entries."""
    rows = session.execute(
        select(_log.c.seq, _log.c.leaf_hash).where(_log.c.log_index.is_(None)).order_by(_log.c.seq).limit(limit)
    )
    return [(seq, bytes(leaf)) for seq, leaf in rows]


def queued_count(session: Session) -> int:
    return int(session.execute(select(func.count()).where(_log.c.log_index.is_(None))).scalar_one())


def oldest_queued_at(session: Session) -> datetime | None:
    """When the oldest entry still queued was recorded, or None when the queue is empty."""
    # Ordered by seq, so the partial index of the queue answers it (min(recorded_at) would scan).
    return session.execute(
        select(_log.c.recorded_at).where(_log.c.log_index.is_(None)).order_by(_log.c.seq).limit(1)
    ).scalar_one_or_none()


def latest_checkpoint_at(session: Session) -> datetime | None:
    """When the newest checkpoint was signed (the largest tree size, by primary key), or None."""
    return session.execute(
        select(_checkpoints.c.created_at).order_by(_checkpoints.c.tree_size.desc()).limit(1)
    ).scalar_one_or_none()


def assign_indices(session: Session, assignments: Sequence[tuple[int, int]]) -> None:
    """Give each queued entry (seq, log index) its index."""
    if not assignments:
        return
    if session.get_bind().dialect.name == "postgresql":
        # One statement for the whole batch instead of one round trip per row.
        session.execute(
            text(
                "UPDATE log_entries SET log_index = batch.log_index "
                "FROM unnest(CAST(:seqs AS bigint[]), CAST(:indices AS bigint[])) AS batch(seq, log_index) "
                "WHERE log_entries.seq = batch.seq"
            ),
            {"seqs": [s for s, _ in assignments], "indices": [i for _, i in assignments]},
        )
        return
    session.execute(
        update(_log).where(_log.c.seq == bindparam("b_seq")).values(log_index=bindparam("b_index")),
        [{"b_seq": seq, "b_index": index} for seq, index in assignments],
    )


def add_nodes(session: Session, nodes: Sequence[StoredNode]) -> None:
    if not nodes:
        return
    if session.get_bind().dialect.name == "postgresql":
        # COPY in the same transaction: a batch completes about two nodes per entry, and
        # multi-row INSERTs of them took most of an integration run.
        driver = _driver(session.connection())
        with driver.cursor() as cursor, cursor.copy("COPY merkle_nodes (level, index, hash) FROM STDIN") as copy:
            for node in nodes:
                copy.write_row(node)
        return
    session.execute(insert(_nodes), [{"level": lv, "index": ix, "hash": h} for lv, ix, h in nodes])


def add_checkpoint(session: Session, size: int, root: bytes, note: str, created_at: datetime) -> None:
    session.execute(insert(_checkpoints).values(tree_size=size, root_hash=root, note=note, created_at=created_at))


# --- proofs, checkpoints and receipts -------------------------------------------------------


_NODES_BY_ID_PG = text(
    "SELECT n.level, n.index, n.hash FROM merkle_nodes AS n "
    "JOIN unnest(CAST(:levels AS integer[]), CAST(:indices AS bigint[])) AS wanted(level, index) "
    "ON n.level = wanted.level AND n.index = wanted.index"
)


def nodes(session: Session, ids: Collection[NodeId]) -> dict[NodeId, bytes]:
    """The stored hashes of the given perfect subtrees, in one query; missing ones are absent."""
    if not ids:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        # One fixed statement joined against two arrays: a fifth of the time of an OR per level,
        # whose plan PostgreSQL has to build anew for every proof shape.
        rows = session.execute(
            _NODES_BY_ID_PG, {"levels": [level for level, _ in ids], "indices": [index for _, index in ids]}
        )
        return {(level, index): bytes(h) for level, index, h in rows}
    by_level: dict[int, list[int]] = {}
    for level, index in ids:
        by_level.setdefault(level, []).append(index)
    # SQLite cannot use the primary key for a row-value IN; "level = L AND index IN (…)" per level it can.
    rows = session.execute(
        select(_nodes.c.level, _nodes.c.index, _nodes.c.hash).where(
            or_(*(and_(_nodes.c.level == level, _nodes.c.index.in_(indices)) for level, indices in by_level.items()))
        )
    )
    return {(level, index): bytes(h) for level, index, h in rows}


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root_hash: bytes
    note: str


def latest_checkpoint(session: Session) -> StoredCheckpoint | None:
    row = session.execute(
        select(_checkpoints.c.tree_size, _checkpoints.c.root_hash, _checkpoints.c.note)
        .order_by(_checkpoints.c.tree_size.desc())
        .limit(1)
    ).first()
    return StoredCheckpoint(row[0], bytes(row[1]), row[2]) if row else None


def checkpoint_at(session: Session, size: int) -> StoredCheckpoint | None:
    row = session.execute(
        select(_checkpoints.c.tree_size, _checkpoints.c.root_hash, _checkpoints.c.note).where(
            _checkpoints.c.tree_size == size
        )
    ).first()
    return StoredCheckpoint(row[0], bytes(row[1]), row[2]) if row else None


def entry_position(session: Session, seq: int) -> tuple[int | None, bytes] | None:
    """(log index or None while queued, leaf hash) of the entry with this seq."""
    # An entry this very session queued (an exchange that was just delivered) is known without a query.
    queued_here = session.info.get(_QUEUED, {}).get(seq)
    if queued_here is not None:
        return None, queued_here.leaf_hash
    row = session.execute(select(_log.c.log_index, _log.c.leaf_hash).where(_log.c.seq == seq)).first()
    return (row[0], bytes(row[1])) if row is not None else None


# --- the auditors' listing ------------------------------------------------------------------


@dataclass(frozen=True)
class EntryFilter:
    since: datetime | None = None
    until: datetime | None = None
    requester: str | None = None
    authority: str | None = None
    evidence_type: str | None = None
    subject: str | None = None
    event: str | None = None
    exchange: str | None = None


def integrated_entries(
    session: Session, where: EntryFilter, *, after: int | None, limit: int, upto: int
) -> list[tuple[int, bytes, bytes]]:
    """(log index, leaf hash, body) of integrated entries below ``upto``, by index, after ``after``."""
    query = select(_log.c.log_index, _log.c.leaf_hash, _log.c.body).where(
        _log.c.log_index.is_not(None), _log.c.log_index < upto
    )
    if after is not None:
        query = query.where(_log.c.log_index > after)
    if where.since is not None:
        query = query.where(_log.c.recorded_at >= where.since)
    if where.until is not None:
        query = query.where(_log.c.recorded_at < where.until)
    for column, value in (
        (_log.c.requester, where.requester),
        (_log.c.authority, where.authority),
        (_log.c.evidence_type, where.evidence_type),
        (_log.c.subject_pseudonym, where.subject),
        (_log.c.event, where.event),
        (_log.c.exchange_id, where.exchange),
    ):
        if value is not None:
            query = query.where(column == value)
    rows = session.execute(query.order_by(_log.c.log_index).limit(limit))
    return [(index, bytes(leaf), bytes(body)) for index, leaf, body in rows]


def step_reasons(session: Session, exchange_id: str, event: str) -> set[str]:
    """The reason codes of an exchange's entries of one event (integrated or still queued, this
    transaction's own included: they are written first)."""
    write_queued(session.connection())
    bodies = session.scalars(select(LogEntry.body).where(LogEntry.exchange_id == exchange_id, LogEntry.event == event))
    return {str(reason) for body in bodies if (reason := json.loads(body).get("reason")) is not None}


def subjects_entries(
    session: Session, pseudonyms: Collection[str], *, upto: int, limit: int
) -> list[tuple[int, str | None, bytes]]:
    """(log index, exchange id, body) of the integrated entries below ``upto`` about any of these
    subject pseudonyms, newest first (a citizen's cockpit and their copy of the entries)."""
    if not pseudonyms:
        return []
    rows = session.execute(
        select(_log.c.log_index, _log.c.exchange_id, _log.c.body)
        .where(
            _log.c.subject_pseudonym.in_(sorted(pseudonyms)),
            _log.c.log_index.is_not(None),
            _log.c.log_index < upto,
        )
        .order_by(_log.c.log_index.desc())
        .limit(limit)
    )
    return [(index, exchange, bytes(body)) for index, exchange, body in rows]


# --- whole-log reads for verification and export ----------------------------------------------

# What pg_export_snapshot() returns (e.g. 00000003-0000001B-1); it is spliced into SET TRANSACTION
# SNAPSHOT, which takes no bind parameter.
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(?:-[0-9]+)?")


def export_snapshot(session: Session) -> str:
    """PostgreSQL: the id of the session's (repeatable read) snapshot, for other connections to
    read exactly what it sees while its transaction lasts."""
    return str(session.execute(text("SELECT pg_export_snapshot()")).scalar_one())


@contextmanager
def snapshot_session(engine: Engine, snapshot: str) -> Iterator[Session]:
    """PostgreSQL: a read session on a connection of its own that sees the exported ``snapshot``.

    Several of them read one log in parallel, each in a server process of its own, and still
    together see one state of it (as ``pg_dump --jobs`` does)."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    with engine.connect() as connection:
        connection.execution_options(isolation_level="REPEATABLE READ")
        connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        with Session(bind=connection) as session:
            yield session


def max_log_index(session: Session) -> int | None:
    return session.execute(select(func.max(_log.c.log_index))).scalar_one_or_none()


def _chunks(session: Session, query: Select[Any]) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``query`` in chunks of STREAM_CHUNK, without holding the whole result.

    PostgreSQL: a server-side cursor in binary format straight from the driver. Verifying a
    million entries moves about a gigabyte; hex-encoded bytea and a Row object per row would
    double the time the verifier spends waiting for it.
    """
    if session.get_bind().dialect.name == "postgresql":
        compiled = query.compile(bind=session.get_bind())
        driver = _driver(session.connection())
        with driver.cursor(name=f"audit_{uuid.uuid4().hex}", binary=True) as cursor:
            cursor.itersize = STREAM_CHUNK
            cursor.execute(str(compiled), compiled.params)
            while rows := cursor.fetchmany(STREAM_CHUNK):
                yield rows
        return
    result = session.execute(query, execution_options={"yield_per": STREAM_CHUNK})
    for part in result.partitions():
        yield [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in part]


def stream_entries(
    session: Session, upto: int | None = None, *, start: int | None = None
) -> Iterator[list[tuple[int, bytes, bytes]]]:
    """(log index, body, leaf hash) of every integrated entry (from ``start``, below ``upto``), in
    index order, in chunks."""
    query = select(_log.c.log_index, _log.c.body, _log.c.leaf_hash).where(_log.c.log_index.is_not(None))
    if start is not None:
        query = query.where(_log.c.log_index >= start)
    if upto is not None:
        query = query.where(_log.c.log_index < upto)
    yield from _chunks(session, query.order_by(_log.c.log_index))


# A window packs no body longer than this (the window is then read row by row): it stays within a
# few tens of megabytes however the rows were tampered with. The broker's entries are ids, codes
# and digests, about a kilobyte.
PACKED_BODY_LIMIT = 8 * 1024
# A window as one row: its entries, those of them whose body was packed, then the bodies, the leaf
# hashes (32 bytes each; any other is left out) and the indices, aggregated in the order of the
# sorted subquery, as PostgreSQL does (not a guarantee of SQL's): the indices come out in the same
# order as the bodies and must be the exact run the window expects, so a window in any other order
# is not vouched for (verify.hash_packed).
_PACKED_WINDOW = (
    "SELECT count(*), count(*) FILTER (WHERE length(body) <= %(body_limit)s),"
    " string_agg(body, '\\x0a'::bytea) FILTER (WHERE length(body) <= %(body_limit)s),"
    " string_agg(leaf_hash, ''::bytea) FILTER (WHERE length(leaf_hash) = 32),"
    " string_agg(int8send(log_index), ''::bytea)"
    " FROM (SELECT body, leaf_hash, log_index FROM log_entries"
    " WHERE log_index IS NOT NULL{bounds} ORDER BY log_index) AS window_entries"
)


def packed_entries(session: Session, start: int | None, stop: int | None) -> PackedEntries:
    """PostgreSQL: the integrated entries with ``start <= log index < stop`` (either end open) as
    one row of a few values instead of a row each: decoding a million rows cost the verifier more
    than hashing their bodies."""
    bounds = ("" if start is None else " AND log_index >= %(start)s") + (
        "" if stop is None else " AND log_index < %(stop)s"
    )
    driver = _driver(session.connection())
    with driver.cursor(binary=True) as cursor:
        cursor.execute(
            _PACKED_WINDOW.format(bounds=bounds), {"start": start, "stop": stop, "body_limit": PACKED_BODY_LIMIT}
        )
        row = cursor.fetchone()
    assert row is not None
    count, packed, bodies, leaf_hashes, indices = row
    return PackedEntries(
        int(count),
        bytes(bodies or b"") if packed == count else None,
        bytes(leaf_hashes or b""),
        bytes(indices or b""),
    )


def stream_nodes(session: Session) -> Iterator[list[StoredNode]]:
    """Every stored perfect-subtree node, ordered by (level, index), in chunks."""
    yield from _chunks(
        session, select(_nodes.c.level, _nodes.c.index, _nodes.c.hash).order_by(_nodes.c.level, _nodes.c.index)
    )


def node_levels(session: Session) -> list[StoredLevel] | None:
    """Per level: (level, node count, the indices and the hashes, each concatenated in index order).

    PostgreSQL concatenates in C, so checking an intact stored tree costs one round trip instead
    of two million rows; None elsewhere, where the caller streams the nodes instead. The
    aggregates take the rows in the order of the sorted subquery (the primary key's, no sort of
    their own); the indices show the order they took, which the check requires to be 0, 1, ….
    """
    if session.get_bind().dialect.name != "postgresql":
        return None
    driver = _driver(session.connection())
    with driver.cursor(binary=True) as cursor:
        cursor.execute(
            "SELECT level, count(*), string_agg(int8send(index), ''::bytea), string_agg(hash, ''::bytea)"
            " FROM (SELECT level, index, hash FROM merkle_nodes ORDER BY level, index) AS nodes"
            " GROUP BY level ORDER BY level"
        )
        return [(int(lv), int(n), bytes(ix), bytes(h)) for lv, n, ix, h in cursor.fetchall()]


def leaf_level(session: Session, upto: int | None = None) -> list[bytes]:
    """The stored level-0 nodes (leaf hashes), for indices below ``upto``, in index order."""
    query = select(_nodes.c.hash).where(_nodes.c.level == 0)
    if upto is not None:
        query = query.where(_nodes.c.index < upto)
    return [h for chunk in _chunks(session, query.order_by(_nodes.c.index)) for (h,) in chunk]


def all_checkpoints(session: Session) -> list[StoredCheckpoint]:
    rows = session.execute(
        select(_checkpoints.c.tree_size, _checkpoints.c.root_hash, _checkpoints.c.note).order_by(
            _checkpoints.c.tree_size
        )
    )
    return [StoredCheckpoint(size, bytes(root), note) for size, root, note in rows]
