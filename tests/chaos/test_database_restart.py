"""The database goes away under load and comes back (PostgreSQL behind a TCP forwarder that the test
stops and starts: every connection cut, new ones refused, as a database server restarting; the
shared server itself is never touched).

While it is away every request is answered at once, 200 or 503 storage.unavailable with
Retry-After, never a 500 and never a hang; once it is back the broker serves again within a
bounded time without a restart; nothing acknowledged is lost, a request refused meanwhile can be
sent again under its Idempotency-Key and makes exactly one exchange, and the log verifies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.load import (
    CLIENT_TIMEOUT,
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
from tests.faults import Forwarder, forwarded_database
from tests.specimen import MELDE

ENV = {"BROKER_INTEGRATE_INTERVAL_SECONDS": "0.2"}
CLIENTS = 8
OUTAGE_SECONDS = 3.0
# After the database is back, the first exchange must be acknowledged within this long.
RECOVERY_SECONDS = 30.0


@pytest.fixture
def database(postgres_server_url: str) -> Iterator[tuple[str, Forwarder, str]]:
    with forwarded_database(postgres_server_url) as found:
        yield found


def test_database_restart_under_load(database: tuple[str, Forwarder, str], tmp_path: Path) -> None:
    direct, forwarder, through = database
    process, broker = start_broker(through, tmp_path, ENV)
    try:
        token = broker.add_client("requester", MELDE)
        with Load(broker.base_url, token, CLIENTS) as load:
            load.wait(60, "before the outage", acknowledged=20)
            down = time.monotonic()
            forwarder.stop()
            time.sleep(OUTAGE_SECONDS)
            forwarder.start()
            up = time.monotonic()
            load.wait(RECOVERY_SECONDS, "after the database came back", since=up)
            load.wait(60, "after the database came back", since=up, acknowledged=20)
        outcomes = load.snapshot()

        # Every request got an answer in time: the broker never stopped answering.
        assert all(o.status in (200, 503) for o in outcomes), describe(outcomes)
        assert max(o.seconds for o in outcomes) < CLIENT_TIMEOUT
        refused = [o for o in outcomes if o.status == 503]
        assert refused, f"the outage was not noticed: {describe(outcomes)}"
        for outcome in refused:
            assert_storage_answer(outcome, "storage.unavailable")
            # Asked before the database came back (a pooled connection cut mid-request included).
            assert outcome.started + outcome.seconds >= down and outcome.started < up, outcome
        answers = acknowledged(outcomes)
        # A refusal may come after the commit (the answer to COMMIT lost with the connection):
        # sent again, each refused request makes its exchange or finds the one it made.
        retried = resend(broker.base_url, token, [o.key for o in refused])
        assert all(o.status == 200 for o in retried.values()), describe(list(retried.values()))
        assert changed(answers, resend(broker.base_url, token, answers)) == []
        state = wait_integrated(direct)
    finally:
        stop_process(process)

    assert missing_from_log(direct, answers) == []
    assert_dense(state)
    assert max(exchanges_per_key(direct).values()) == 1
    assert_audit_verifies({**broker.env, "BROKER_DATABASE_URL": direct})
    logs = broker.logs()
    assert "storage_unavailable" in logs
    assert "Exception in ASGI application" not in logs and "unhandled_error" not in logs
