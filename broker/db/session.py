"""Engines and sessions. Services never commit; the request or command boundary does.

SQLite (the embedded default) runs in WAL mode: readers never block the writer nor each other.
A unit of work begins ``BEGIN IMMEDIATE`` (it takes the write lock at once, so two writers queue
instead of deadlocking on a read-to-write upgrade), after the process's earlier writers, in a
FIFO queue (:class:`WriterQueue`; other processes' writers wait in SQLite's busy handler); a read
(``Database.read()``, ``Database.reader``) begins a plain deferred ``BEGIN``: it takes no write
lock, so reads never queue behind writers, and still sees one snapshot from its first query to
its end.

Durability: ``synchronous=NORMAL`` in WAL mode syncs the WAL at checkpoints, not at every
commit: a power loss (not a process crash) may lose the last commits, never corrupt the file.
That is the embedded default's trade-off; PostgreSQL is the deployment for durability.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from broker.fifo import FifoSemaphore
from broker.settings import Settings

# The execution option that marks a read-only engine (Database.reader): its transactions begin
# deferred on SQLite instead of taking the write lock.
READ_ONLY = "broker_read_only"
# How long a SQLite writer waits for the write lock before the transaction fails.
SQLITE_BUSY_SECONDS = 30
# A PostgreSQL connection older than this is replaced at its next checkout (see make_engine).
POOL_RECYCLE_SECONDS = 600
# Connections a process keeps open (BROKER_DB_POOL_SIZE) and how long opening one may take
# (BROKER_DB_CONNECT_TIMEOUT_SECONDS): the defaults of commands that read no settings.
POOL_SIZE = 20
CONNECT_TIMEOUT_SECONDS = 10
_IN_LINE = "broker_writer_ticket"


def make_engine(
    database_url: str, *, pool_size: int = POOL_SIZE, connect_timeout: int = CONNECT_TIMEOUT_SECONDS
) -> Engine:
    """The engine of ``database_url``. It keeps ``pool_size`` connections open: the pool closes a
    connection it opened beyond them as soon as it comes back, so a pool smaller than the requests
    a process serves at once opens and closes a connection (on PostgreSQL a new server process) for
    most of them. ``connect_timeout`` bounds opening one: an address that takes the connection and
    never answers fails the request (503) instead of holding it."""
    if database_url.startswith("sqlite"):
        db_path = database_url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            database_url,
            connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False},
            pool_size=pool_size,
        )
        writers = WriterQueue()
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", writers.begin)
        event.listen(engine, "commit", writers.end)
        event.listen(engine, "rollback", writers.end)
        return engine
    # No ping per checkout: it was a round trip on every transaction. A connection the server
    # dropped (a restart, a failover) fails its next statement instead; SQLAlchemy recognises the
    # disconnect and invalidates the whole pool, the request answers 503 storage.unavailable
    # (broker.problems) and the next ones connect afresh. Recycling bounds a connection's age, so
    # one a firewall or pooler silently dropped while idle is replaced before it is used again.
    return create_engine(
        database_url,
        connect_args={"connect_timeout": connect_timeout},
        pool_size=pool_size,
        max_overflow=20,
        pool_pre_ping=False,
        pool_recycle=POOL_RECYCLE_SECONDS,
    )


def configured_engine(settings: Settings) -> Engine:
    """The engine of ``BROKER_DATABASE_URL`` with the pool and connect timeout the settings give."""
    return make_engine(
        settings.database_url, pool_size=settings.db_pool_size, connect_timeout=settings.db_connect_timeout_seconds
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (see _sqlite_begin) instead of pysqlite's implicit handling.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    cursor.close()


class WriterQueue:
    """The writers of one SQLite database in this process, in line for its write lock.

    SQLite's busy handler makes a waiting writer sleep and retry (for longer and longer, up to
    100 ms a try), so under load a writer that has waited long loses to one that just came: the
    tail grows to seconds. Here the process's writers wait in a FIFO queue instead, and take the
    lock when the writer before them ends; SQLite's busy handler remains for other processes.
    A writer that waited ``SQLITE_BUSY_SECONDS`` goes ahead anyway (a write transaction nested in
    another of the same thread, which the code does not do, then fails as it did before).

    The next writer is let in at the ``commit`` event, which SQLAlchemy sends just before the
    COMMIT: should it reach BEGIN IMMEDIATE first, SQLite's busy handler waits out the commit.
    """

    def __init__(self) -> None:
        self._turns = FifoSemaphore(1)

    def begin(self, connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            # A read takes no write lock: in WAL mode it reads its snapshot while a writer commits.
            connection.exec_driver_sql("BEGIN")
            return
        connection.info[_IN_LINE] = self._turns.acquire(timeout=SQLITE_BUSY_SECONDS)
        try:
            # The lock is taken at BEGIN, so two writers queue instead of deadlocking on a
            # read-to-write upgrade.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.end(connection)
            raise

    def end(self, connection: Any) -> None:
        # Only a writer that got its turn hands it on (one that went ahead after the timeout did not).
        if connection.info.pop(_IN_LINE, False):
            self._turns.release()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _refuse_writes(session: Session, _flush_context: Any, _instances: Any) -> None:
    # A change in a read session would be lost at its end anyway; on SQLite it would also try to
    # upgrade a deferred transaction to a write, which fails at once when another writer holds
    # the lock (busy_timeout does not apply to an upgrade whose snapshot is stale).
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("Database.read() sessions do not write; use Database.unit_of_work()")


class Database:
    """One database as the services use it: short reads, or one unit of work that commits."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = make_session_factory(engine)
        # The same pool, marked read-only: on SQLite its transactions take no write lock.
        self.reader = engine.execution_options(**{READ_ONLY: True})
        # One read statement on its own: on PostgreSQL outside any transaction, so it costs one
        # round trip instead of BEGIN, the statement and ROLLBACK. SQLite keeps its deferred read
        # transaction (no round trips there; its driver would BEGIN by itself after an
        # AUTOCOMMIT connection is reset).
        self.single_reads = (
            self.reader.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else self.reader
        )
        self._read_sessions = make_session_factory(self.reader)
        event.listen(self._read_sessions, "before_flush", _refuse_writes)

    def read(self) -> Session:
        """A session for reads (use as a context manager); it never commits, and refuses to
        flush a change (on SQLite it holds no write lock to make one with)."""
        return self._read_sessions()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        with unit_of_work(self.sessions) as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
