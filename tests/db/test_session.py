"""SQLite's writers of one process wait in a FIFO queue (broker.db.session.WriterQueue), reads
wait for no writer, and a writer's end, by commit or rollback, lets the next one in."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool

from broker import preflight
from broker.db.session import Database, make_engine
from broker.settings import Settings


def database(tmp_path: Path) -> Database:
    db = Database(make_engine(f"sqlite:///{tmp_path / 'queue.db'}"))
    with db.unit_of_work() as session:
        session.execute(text("CREATE TABLE marks (writer TEXT)"))
    return db


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_writers_take_the_lock_in_the_order_they_asked_and_reads_do_not_wait(tmp_path: Path) -> None:
    db = database(tmp_path)
    order: list[str] = []
    first_may_end = threading.Event()

    def first() -> None:
        with db.unit_of_work() as session:
            session.execute(text("INSERT INTO marks VALUES ('first')"))
            order.append("first")
            first_may_end.wait(10)

    def writer(name: str) -> None:
        with db.unit_of_work() as session:
            session.execute(text("INSERT INTO marks VALUES (:name)"), {"name": name})
            order.append(name)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    wait_until(lambda: order == ["first"])
    for name in ("second", "third", "fourth", "fifth"):
        thread = threading.Thread(target=writer, args=(name,))
        thread.start()
        threads.append(thread)
        time.sleep(0.05)  # each asks after the one before
    # While the first writer holds the lock, a read sees the last committed state at once.
    started = time.monotonic()
    with db.read() as session:
        assert session.execute(text("SELECT count(*) FROM marks")).scalar_one() == 0
    assert time.monotonic() - started < 1
    assert order == ["first"]
    first_may_end.set()
    for thread in threads:
        thread.join(15)
    assert order == ["first", "second", "third", "fourth", "fifth"]
    with db.read() as session:
        assert session.execute(text("SELECT count(*) FROM marks")).scalar_one() == 5
    db.dispose()


def test_a_writer_that_rolls_back_lets_the_next_in(tmp_path: Path) -> None:
    db = database(tmp_path)
    holding = threading.Event()
    fail_now = threading.Event()
    outcome: list[str] = []

    def failing() -> None:
        try:
            with db.unit_of_work() as session:
                session.execute(text("INSERT INTO marks VALUES ('failed')"))
                holding.set()
                fail_now.wait(10)
                raise RuntimeError("the request failed")
        except RuntimeError:
            outcome.append("rolled back")

    def next_writer() -> None:
        with db.unit_of_work() as session:
            session.execute(text("INSERT INTO marks VALUES ('next')"))
        outcome.append("next committed")

    failed = threading.Thread(target=failing)
    failed.start()
    assert holding.wait(10)
    waiting = threading.Thread(target=next_writer)
    waiting.start()
    time.sleep(0.1)
    assert outcome == []  # in line behind the failing writer
    fail_now.set()
    failed.join(10)
    waiting.join(10)
    # (which of the two threads appends first after the rollback is a race of their own)
    assert sorted(outcome) == ["next committed", "rolled back"]
    with db.read() as session:
        assert session.execute(text("SELECT writer FROM marks")).scalars().all() == ["next"]
    db.dispose()


def test_concurrent_requests_up_to_the_pool_size_reuse_its_connections(database_url: str) -> None:
    """With fewer pooled connections than requests at once, the pool opens and closes one for
    most requests (on PostgreSQL a server process each); the default keeps 16 at once pooled."""
    engine = make_engine(database_url)
    opened: list[object] = []
    event.listen(engine, "connect", lambda connection, _record: opened.append(connection))
    start = threading.Barrier(16)

    def requests() -> None:
        start.wait(10)
        for turn in range(30):
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
                time.sleep(0.004)  # the request's work while it holds the connection
            time.sleep(0.002 * (turn % 4))  # and its work without one: fewer at once for a moment

    threads = [threading.Thread(target=requests) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    engine.dispose()
    assert 1 <= len(opened) <= 16, f"{len(opened)} connections opened for 16 requests at a time"


def test_the_settings_size_the_pool(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'broker.db'}", db_pool_size=3)
    engine = preflight.database(settings)  # the engine bootstrap serves with
    try:
        assert isinstance(engine.pool, QueuePool) and engine.pool.size() == 3
    finally:
        engine.dispose()


@pytest.fixture
def silent_database_url() -> Iterator[str]:
    """A PostgreSQL address that takes the TCP connection and never answers (a dead host behind a
    load balancer, a half-open firewall)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"postgresql+psycopg://broker@127.0.0.1:{listener.getsockname()[1]}/broker"


def test_a_database_address_that_never_answers_fails_within_the_connect_timeout(silent_database_url: str) -> None:
    # It must not hold a request: connecting fails within the timeout.
    engine = make_engine(silent_database_url, connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(OperationalError):
        engine.connect()
    assert time.monotonic() - started < 8
    engine.dispose()


def test_preflight_names_a_database_that_never_answers(silent_database_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(preflight.StartupError, match="cannot use the database"):
        preflight.database(Settings(database_url=silent_database_url, db_connect_timeout_seconds=2))
    assert time.monotonic() - started < 8
