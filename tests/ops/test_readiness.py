"""Readiness checks and the storage problems, in process: the decisions, on real errors."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from broker.ops.service import STUCK_MIN_SECONDS, Readiness, disk_state, integrator_state
from broker.problems import storage_problem, unexpected_problem
from broker.seal.sealer import SignerUnavailable


def wrapped(error: Exception) -> OperationalError:
    """As SQLAlchemy raises a driver's error: wrapped, the driver's error as ``orig``."""
    return OperationalError("SELECT 1", {}, error)


def test_a_refused_postgresql_connection_is_storage_unavailable() -> None:
    # What psycopg raises when nothing listens: an OperationalError without SQLSTATE.
    problem = storage_problem(wrapped(psycopg.OperationalError("connection refused")))
    assert problem is not None
    assert (problem.status, problem.reason) == (503, "storage.unavailable")
    assert problem.extensions["retry_after"] > 0


def test_postgresql_disk_full_is_storage_full() -> None:
    problem = storage_problem(wrapped(psycopg.errors.DiskFull("could not extend file")))
    assert problem is not None and problem.reason == "storage.full"


def test_sqlite_errors_map_by_their_result_code(tmp_path: Path) -> None:
    # A real "unable to open": the database's directory does not exist.
    with pytest.raises(sqlite3.OperationalError) as raised:
        sqlite3.connect(tmp_path / "missing" / "broker.db").execute("SELECT 1")
    problem = storage_problem(wrapped(raised.value))
    assert problem is not None and problem.reason == "storage.unavailable"
    full = storage_problem(wrapped(sqlite3.OperationalError("database or disk is full")))
    assert full is not None and full.reason == "storage.full"


def test_enospc_anywhere_in_the_chain_is_storage_full() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise RuntimeError("writing the checkpoint failed") from error
    except RuntimeError as outer:
        problem = storage_problem(outer)
    assert problem is not None and problem.reason == "storage.full"


def test_other_errors_stay_internal_errors() -> None:
    for error in (
        ValueError("bad row"),
        wrapped(sqlite3.OperationalError("no such table: x")),
        OSError(errno.EACCES, ""),
    ):
        assert storage_problem(error) is None
        assert (unexpected_problem(error).status, unexpected_problem(error).reason) == (500, "internal_error")


def test_a_signer_that_failed_is_seal_unavailable() -> None:
    problem = unexpected_problem(SignerUnavailable("the signer process did not answer in time"))
    assert (problem.status, problem.reason) == (503, "seal.unavailable")
    assert problem.extensions["retry_after"] > 0
    assert "did not answer" not in problem.detail  # the cause stays in the log, the answer is the same


def test_the_integrator_is_stuck_only_with_old_entries_and_no_progress() -> None:
    old = STUCK_MIN_SECONDS + 1
    assert integrator_state(True, 0.5, idle_seconds=old, queued_age_seconds=old) == "stuck"
    # A backlog being worked through: entries are old, but rounds complete.
    assert integrator_state(True, 0.5, idle_seconds=1, queued_age_seconds=old) == "ok"
    # Another process integrates: entries stay young even though this one skips its rounds.
    assert integrator_state(True, 0.5, idle_seconds=old, queued_age_seconds=2) == "ok"
    assert integrator_state(True, 0.5, idle_seconds=old, queued_age_seconds=None) == "ok"
    # The bound grows with a long interval: 60 intervals.
    assert integrator_state(True, 10, idle_seconds=old, queued_age_seconds=old) == "ok"
    assert integrator_state(False, 0, idle_seconds=old, queued_age_seconds=old) == "off"


def test_the_disk_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    assert disk_state(tmp_path) == "ok"
    assert list(tmp_path.iterdir()) == []
    assert disk_state(tmp_path / "gone") == "unwritable"


def test_an_unready_answer_names_every_check_and_the_storage_reason() -> None:
    checks = {
        "database": "unavailable",
        "revision": "unknown",
        "keys": "ok",
        "catalogue": "ok",
        "integrator": "unknown",
        "disk": "ok",
    }
    readiness = Readiness(checks)
    assert not readiness.ready
    body = readiness.problem().body("/readyz")
    assert body["reason"] == "storage.unavailable" and body["checks"] == checks
    assert "database unavailable" in body["detail"]
    stuck = Readiness({**checks, "database": "ok", "revision": "ok", "integrator": "stuck"}).problem()
    assert stuck.reason == "not_ready"
    assert Readiness({**checks, "database": "ok", "revision": "ok", "integrator": "off"}).ready
