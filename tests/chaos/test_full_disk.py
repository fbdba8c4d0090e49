"""A full disk under load: SQLite on a small tmpfs that a filler file fills while clients send
exchanges. While it is full every answer is a 503 storage.full problem (never a 500, never a
dropped connection); nothing acknowledged is lost; once the filler is deleted the broker serves
again by itself, and the database and its log are intact."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.chaos.load import (
    Load,
    acknowledged,
    assert_audit_verifies,
    assert_dense,
    assert_storage_answer,
    changed,
    describe,
    exchanges_per_key,
    missing_from_log,
    resend,
    wait_integrated,
)
from tests.conftest import start_broker, stop_process
from tests.faults import assert_storage_problem, fill, mounted_tmpfs, ready, seed_database, wait_for
from tests.specimen import MELDE

ENV = {"BROKER_INTEGRATE_INTERVAL_SECONDS": "0.2"}
CLIENTS = 4
# The disk stays full until this many 503 answers were seen and this many seconds have passed
# (some rounds of the background integrator fail on it too).
WHILE_FULL = 10
FULL_SECONDS = 2.0


def test_full_disk_under_load(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    (tmp_path / "broker").mkdir()
    with mounted_tmpfs(small, "16m"):
        database = small / "broker.db"
        url = f"sqlite:///{database}"
        seed_database(url)
        # The keys and the broker's own log stay on the large disk: only the database's fills up.
        process, broker = start_broker(url, tmp_path / "broker", ENV)
        try:
            token = broker.add_client("requester", MELDE)
            with Load(broker.base_url, token, CLIENTS) as load, broker.client() as client:
                load.wait(60, "before the disk filled", acknowledged=10)
                full = time.monotonic()  # the disk fills from now on
                filler = fill(small)

                def refused_while_full() -> int:
                    return sum(1 for o in load.snapshot() if o.started >= full and o.status == 503)

                wait_for(
                    lambda: refused_while_full() >= WHILE_FULL and time.monotonic() - full >= FULL_SECONDS,
                    60,
                    "503 answers on the full disk",
                )
                checks = assert_storage_problem(client.get("/readyz"), "storage.full")["checks"]
                assert isinstance(checks, dict) and checks["disk"] == "full"

                filler.unlink()
                freed = time.monotonic()
                wait_for(lambda: ready(client), 60, "ready after the space was freed")
                load.wait(60, "after the space was freed", since=freed, acknowledged=10)
            outcomes = load.snapshot()

            # Every request was answered: 200, or 503 storage.full while the disk was full.
            assert all(o.status in (200, 503) for o in outcomes), describe(outcomes)
            refused = [o for o in outcomes if o.status == 503]
            for outcome in refused:
                # Answered after the filling began, asked before the space was freed.
                assert outcome.started + outcome.seconds >= full and outcome.started < freed, outcome
                assert_storage_answer(outcome, "storage.full")
            answers = acknowledged(outcomes)
            # The refused requests, sent again: each makes its exchange now.
            retried = resend(broker.base_url, token, [o.key for o in refused])
            assert all(o.status == 200 for o in retried.values()), describe(list(retried.values()))
            assert changed(answers, resend(broker.base_url, token, answers)) == []
            state = wait_integrated(url)
        finally:
            stop_process(process)

        assert missing_from_log(url, answers) == []
        assert_dense(state)
        assert max(exchanges_per_key(url).values()) == 1
        with sqlite3.connect(database) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert_audit_verifies(broker.env)
    logs = broker.logs()
    assert "Exception in ASGI application" not in logs and "unhandled_error" not in logs
