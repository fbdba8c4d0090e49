"""Queued entries: a transaction's entries are written together, in the order queued, or not at all."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import repository
from broker.audit.merkle import leaf_hash
from broker.audit.service import record
from broker.audit.verify import hash_packed
from broker.db.models import LogEntry
from broker.db.session import SQLITE_BUSY_SECONDS, Database, unit_of_work
from broker.keys.store import KeyStore

from .conftest import Log, facts


def stored(sessions: sessionmaker[Session]) -> list[tuple[int, bytes]]:
    with sessions() as session:
        return [
            (seq, bytes(body))
            for seq, body in session.execute(select(LogEntry.seq, LogEntry.body).order_by(LogEntry.seq))
        ]


def rows_in(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(LogEntry)) or 0)


def test_entries_wait_until_a_seq_is_asked_for_then_go_out_together_in_queued_order(
    sessions: sessionmaker[Session],
) -> None:
    with unit_of_work(sessions) as session:
        queued = [record(session, facts(number)) for number in (3, 1, 2)]
        assert rows_in(session) == 0  # nothing sent yet
        last = queued[-1].seq  # the delivery asks for its entry's seq: all three are written
        assert rows_in(session) == 3
        seqs = [entry.seq for entry in queued]
    assert seqs == sorted(seqs) and seqs[-1] == last
    assert [body for _seq, body in stored(sessions)] == [facts(n).canonical() for n in (3, 1, 2)]


def test_commit_writes_what_nobody_asked_for(sessions: sessionmaker[Session]) -> None:
    with unit_of_work(sessions) as session:
        first = record(session, facts(1))
        record(session, facts(2))
    assert [body for _seq, body in stored(sessions)] == [facts(1).canonical(), facts(2).canonical()]
    assert first.seq == stored(sessions)[0][0]


def test_many_entries_go_out_in_chunks_in_queued_order(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repository, "WRITE_CHUNK", 2)
    with unit_of_work(sessions) as session:
        for number in (5, 4, 3, 2, 1):
            record(session, facts(number))
    assert [body for _seq, body in stored(sessions)] == [facts(n).canonical() for n in (5, 4, 3, 2, 1)]


def test_a_rolled_back_or_abandoned_transaction_takes_its_queued_entries_with_it(
    sessions: sessionmaker[Session],
) -> None:
    with pytest.raises(RuntimeError), unit_of_work(sessions) as session:
        record(session, facts(1))
        raise RuntimeError("the step failed")
    session = sessions()
    record(session, facts(2))
    session.close()  # neither committed nor rolled back by the caller
    # The same session object used again: only what its new transaction queued is written.
    record(session, facts(3))
    session.commit()
    session.close()
    assert [body for _seq, body in stored(sessions)] == [facts(3).canonical()]
    with sessions() as session:
        entry = record(session, facts(4))
        session.rollback()
        with pytest.raises(RuntimeError, match="ended without writing"):
            _ = entry.seq
    assert [body for _seq, body in stored(sessions)] == [facts(3).canonical()]


def test_a_read_session_refuses_to_record(engine: Engine, sessions: sessionmaker[Session]) -> None:
    database = Database(engine)
    with database.read() as session, pytest.raises(RuntimeError, match="do not record"):
        record(session, facts(1))
    assert stored(sessions) == []


def test_steps_are_not_recorded_inside_a_savepoint(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        outer = record(session, facts(1))
        savepoint = session.begin_nested()
        with pytest.raises(RuntimeError, match="not inside a savepoint"):
            record(session, facts(2))
        with pytest.raises(RuntimeError, match="not inside a savepoint"):
            _ = outer.seq  # written inside the savepoint, its rollback would take the row back
        savepoint.rollback()
        session.commit()
    assert [body for _seq, body in stored(sessions)] == [facts(1).canonical()]
    assert outer.seq == stored(sessions)[0][0]


def test_a_savepoints_commit_leaves_the_entries_to_the_transactions(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        record(session, facts(1))
        with session.begin_nested():
            assert rows_in(session) == 0
        assert rows_in(session) == 0
        session.commit()
    assert [body for _seq, body in stored(sessions)] == [facts(1).canonical()]


def test_a_commit_past_the_session_takes_the_entries_with_it(engine: Engine, sessions: sessionmaker[Session]) -> None:
    session = sessions()
    record(session, facts(1))
    session.connection().commit()  # the connection's own commit, not the session's
    session.close()
    with engine.connect() as connection:
        connection.begin()
        joined = Session(bind=connection)  # a session joined to a transaction its owner commits
        record(joined, facts(2))
        connection.commit()
        joined.close()
    assert [body for _seq, body in stored(sessions)] == [facts(1).canonical(), facts(2).canonical()]


def test_entries_whose_write_failed_stay_queued(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = sessions()
    record(session, facts(1))
    real = repository._insert_statement
    monkeypatch.setattr(
        repository,
        "_insert_statement",
        lambda dialect, rows: real(dialect, rows).replace("log_entries", "no_such_table"),
    )
    with pytest.raises(Exception, match="no_such_table"):
        session.commit()
    monkeypatch.undo()
    try:
        session.commit()  # SQLite goes on with the transaction; PostgreSQL has aborted it
    except Exception:
        session.rollback()
        expected = []
    else:
        expected = [facts(1).canonical()]
    finally:
        session.close()
    # The failed write was an ordinary failed statement: the next writer does not wait for a turn
    # the failure kept (SQLite's writers queue for the write lock, SQLITE_BUSY_SECONDS at most).
    started = time.monotonic()
    assert [body for _seq, body in stored(sessions)] == expected
    assert time.monotonic() - started < SQLITE_BUSY_SECONDS / 2


def test_a_reused_session_forgets_what_its_earlier_transaction_wrote(sessions: sessionmaker[Session]) -> None:
    session = sessions()
    gone = record(session, facts(1)).seq
    session.rollback()
    kept = record(session, facts(2)).seq
    session.commit()
    position = repository.entry_position(session, gone)
    if gone == kept:  # SQLite hands the rolled-back seq out again
        assert position == (None, leaf_hash(facts(2).canonical()))
    else:
        assert position is None
    session.close()


def test_a_connection_rolled_back_by_its_owner_drops_the_entries(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with engine.connect() as connection:
        connection.begin()
        joined = Session(bind=connection)
        record(joined, facts(1))
        connection.rollback()
        joined.close()
        connection.begin()  # the same connection's next transaction
        connection.commit()
    assert stored(sessions) == []


def test_a_read_of_the_log_sees_the_entries_its_own_transaction_queued(sessions: sessionmaker[Session]) -> None:
    refused = facts(1, event="preview_refused", reason="citizen.not_subject")
    with unit_of_work(sessions) as session:
        record(session, refused)
        # Recorded once per exchange and reason: the second attempt in a transaction must see the first.
        assert repository.step_reasons(session, str(refused.exchange), "preview_refused") == {"citizen.not_subject"}


def test_an_intact_log_reads_as_packed_windows_the_verifier_vouches_for(
    backend: str, sessions: sessionmaker[Session], keys: KeyStore
) -> None:
    """PostgreSQL: the verifier's fast read (one row per window) of an intact log is vouched for as
    it is, window by window, with the leaves of the entries; no row by row read is needed."""
    if backend != "postgresql":
        pytest.skip("packed windows are PostgreSQL's")
    log = Log(sessions, keys)
    log.record(7)
    log.integrate()
    with sessions() as session:
        bodies = [bytes(b) for b in session.scalars(select(LogEntry.body).order_by(LogEntry.log_index))]
        windows = [(None, 3), (3, 6), (6, None)]
        chunks = [
            hash_packed(
                start or 0,
                None if stop is None else stop - (start or 0),
                repository.packed_entries(session, start, stop),
            )
            for start, stop in windows
        ]
    assert all(chunk is not None for chunk in chunks)
    assert [leaf for chunk in chunks if chunk for leaf in chunk.leaves] == [leaf_hash(b) for b in bodies]
    assert [chunk.first for chunk in chunks if chunk] == [0, 3, 6]
