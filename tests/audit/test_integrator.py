"""The integrator: dense indices in queue order, the stored tree, one signed checkpoint per run."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import repository
from broker.audit.commands import audit
from broker.audit.integrator import BackgroundIntegrator, integrate, integrate_all
from broker.audit.merkle import leaf_hash, root_from_leaf_hashes, verify_consistency
from broker.audit.note import Verifier, open_checkpoint
from broker.audit.service import record
from broker.db.models import LogEntry
from broker.db.session import unit_of_work
from broker.keys.store import KeyStore

from .conftest import ORIGIN, START, Log, facts


def verifier(keys: KeyStore) -> Verifier:
    return Verifier(ORIGIN, keys.checkpoint_key()[0].public_key)


def entries(sessions: sessionmaker[Session]) -> list[tuple[int, int | None, bytes]]:
    with sessions() as session:
        rows = session.execute(select(LogEntry.seq, LogEntry.log_index, LogEntry.body).order_by(LogEntry.seq))
        return [(seq, index, bytes(body)) for seq, index, body in rows]


def test_indices_are_dense_in_queue_order_and_each_run_signs_a_checkpoint(log: Log, keys: KeyStore) -> None:
    runs = log.grow(3, 1, 4)
    assert [(r.integrated, r.tree_size) for r in runs] == [(3, 3), (1, 4), (4, 8)]
    rows = entries(log.sessions)
    assert [index for _seq, index, _body in rows] == list(range(8))
    with log.sessions() as session:
        stored = repository.all_checkpoints(session)
    assert [c.tree_size for c in stored] == [3, 4, 8]
    leaves = [leaf_hash(body) for _seq, _index, body in rows]
    previous = None
    for run, row in zip(runs, stored, strict=True):
        assert run.checkpoint == row.note
        checkpoint, signers = open_checkpoint(row.note, [verifier(keys)])
        assert signers == [ORIGIN]
        assert (checkpoint.origin, checkpoint.size) == (ORIGIN, row.tree_size)
        assert checkpoint.root == row.root_hash == root_from_leaf_hashes(leaves[: row.tree_size])
        if previous is not None:
            with log.sessions() as session:
                from broker.audit.proofs import consistency_proof

                proof = consistency_proof(session, previous.size, checkpoint.size)
            verify_consistency(previous.size, checkpoint.size, previous.root, checkpoint.root, proof.hashes)
        previous = checkpoint


def test_nothing_queued_changes_nothing(log: Log) -> None:
    assert log.integrate().integrated == 0
    log.grow(2)
    again = log.integrate()
    assert (again.integrated, again.tree_size, again.checkpoint) == (0, 2, None)
    with log.sessions() as session:
        assert [c.tree_size for c in repository.all_checkpoints(session)] == [2]


def test_aborted_transactions_leave_seq_gaps_but_no_index_gaps(log: Log, engine: Engine) -> None:
    log.record(2)
    with pytest.raises(RuntimeError), unit_of_work(log.sessions) as session:
        # Asking for its seq writes the entry now (as a delivery does), so the rollback undoes a row.
        assert record(session, facts(100)).seq > 0
        raise RuntimeError("the exchange step failed after writing its entry")
    log.record(2)
    log.integrate()
    rows = entries(log.sessions)
    assert len(rows) == 4
    if engine.dialect.name == "postgresql":
        # A SEQUENCE value is never handed back, so the rolled-back entry left a hole in seq.
        seqs = [seq for seq, _index, _body in rows]
        assert seqs != list(range(seqs[0], seqs[0] + 4))
    assert [index for _seq, index, _body in rows] == [0, 1, 2, 3]


def test_batch_size_bounds_a_run_and_integrate_all_drains_the_queue(log: Log, keys: KeyStore) -> None:
    log.record(25)
    first = log.integrate(batch_size=10)
    assert (first.integrated, first.tree_size) == (10, 10)
    total = integrate_all(log.sessions, keys, ORIGIN, lambda: START, batch_size=10)
    assert (total.integrated, total.tree_size) == (15, 25)
    with log.sessions() as session:
        assert [c.tree_size for c in repository.all_checkpoints(session)] == [10, 20, 25]
        assert repository.queued_count(session) == 0


def test_a_failure_mid_run_leaves_the_old_state(log: Log, keys: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    log.grow(3)
    log.record(4)

    def crash(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full while writing the checkpoint")

    monkeypatch.setattr(repository, "add_checkpoint", crash)
    with pytest.raises(OSError), unit_of_work(log.sessions) as session:
        integrate(session, keys, ORIGIN, START)
    monkeypatch.undo()
    with log.sessions() as session:
        assert repository.tree_size(session) == 3
        assert repository.queued_count(session) == 4
        assert len(repository.leaf_level(session)) == 3
    assert log.integrate().tree_size == 7


def test_nodes_stored_are_exactly_the_perfect_subtrees(log: Log) -> None:
    log.grow(5, 6)
    with log.sessions() as session:
        stored = {(level, index) for chunk in repository.stream_nodes(session) for level, index, _h in chunk}
    expected = {(level, index) for level in range(5) for index in range(11 >> level)}
    assert stored == expected


def test_integrators_exclude_each_other(log: Log, keys: KeyStore, engine: Engine) -> None:
    """The second integrator waits (or, with wait=False, skips) until the first commits."""
    log.record(3)
    holder = log.sessions()
    try:
        assert integrate(holder, keys, ORIGIN, START).integrated == 3
        if engine.dialect.name == "postgresql":
            with log.sessions() as other:
                assert integrate(other, keys, ORIGIN, START, wait=False).ran is False
        done: list[int] = []

        def second() -> None:
            with unit_of_work(log.sessions) as session:
                done.append(integrate(session, keys, ORIGIN, START).tree_size)

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert done == []  # still waiting for the lock (advisory lock / SQLite write lock)
        holder.commit()
        thread.join(10)
        assert done == [3]  # it saw the first run's commit, not the pre-lock state
    finally:
        holder.close()


def test_background_integrator_integrates_while_running(log: Log, keys: KeyStore) -> None:
    runner = BackgroundIntegrator(log.sessions, keys, ORIGIN, lambda: START, interval=0.05)
    runner.start()
    try:
        log.record(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with log.sessions() as session:
                if repository.tree_size(session) == 5:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("background integrator did not integrate")
    finally:
        runner.stop()
    with log.sessions() as session:
        session.execute(text("SELECT 1"))
        assert repository.queued_count(session) == 0


def test_background_integrator_is_off_with_a_zero_interval(log: Log, keys: KeyStore) -> None:
    runner = BackgroundIntegrator(log.sessions, keys, ORIGIN, lambda: START, interval=0)
    runner.start()
    runner.stop()
    log.record(1)
    time.sleep(0.1)
    with log.sessions() as session:
        assert repository.queued_count(session) == 1


def test_a_killed_integrator_leaves_the_old_state(
    log: Log, keys: KeyStore, database_url: str, tmp_path: Path, cli_env: None
) -> None:
    """SIGKILL between storing nodes and signing: the database rolls the whole run back."""
    log.grow(5)
    log.record(40)
    ready = tmp_path / "ready"
    worker = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("crash_worker.py")), database_url, str(keys.keys_dir), ORIGIN]
        + [str(ready)],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert worker.poll() is None, "the crash worker exited early"
            assert time.monotonic() < deadline, "the crash worker never reached the checkpoint"
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    with log.sessions() as session:
        assert repository.tree_size(session) == 5
        assert repository.queued_count(session) == 40
        assert len(repository.leaf_level(session)) == 5
    # The lock died with the connection: the next integrator runs at once, and the log verifies.
    assert log.integrate().tree_size == 45
    result = CliRunner().invoke(audit, ["verify"])
    assert result.exit_code == 0, result.output
