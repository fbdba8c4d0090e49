"""SQLite's writers of one process wait in a FIFO queue (broker.db.session.WriterQueue), reads
wait for no writer, and a writer's end, by commit or rollback, lets the next one in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from broker.db.session import Database, make_engine


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
