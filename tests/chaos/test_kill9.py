"""kill -9 of a broker process under load, on PostgreSQL (and SQLite): nothing the broker
acknowledged is lost.

Eight clients send exchanges; the process is killed (SIGKILL: no shutdown, no flush, open
transactions cut) while they do, twice, and started again on the same database and keys. Every
exchange answered 2xx before a kill is then in the database and in the log under the leaf hash
of its receipt; the log's indices are dense; `broker audit verify` finds it intact; a request
sent again under its Idempotency-Key gets the same exchange, and one that got no answer gets
exactly one exchange.
"""

from __future__ import annotations

import signal
from pathlib import Path

from tests.chaos.load import (
    Load,
    acknowledged,
    assert_audit_verifies,
    assert_dense,
    changed,
    describe,
    exchanges_per_key,
    missing_from_log,
    resend,
    states,
    wait_integrated,
)
from tests.conftest import start_broker, stop_process
from tests.faults import seed_database
from tests.specimen import MELDE

# Short integrator rounds: the kill often finds entries queued, and the check after waits less.
ENV = {"BROKER_INTEGRATE_INTERVAL_SECONDS": "0.2"}
ROUNDS = 2
CLIENTS = 8
# Acknowledged exchanges before each kill: enough that requests are in flight at every stage.
BEFORE_KILL = 25


def test_kill9_under_load(database_url: str, tmp_path: Path) -> None:
    url = database_url  # a fresh database per test: PostgreSQL (required in CI) and SQLite
    seed_database(url)
    runs = [tmp_path / f"run-{n}" for n in range(ROUNDS + 1)]  # each process's own log file
    for directory in runs:
        directory.mkdir()
    process, broker = start_broker(url, runs[0], ENV)
    try:
        token = broker.add_client("requester", MELDE)
        outcomes = []
        for round_ in range(ROUNDS):
            with Load(broker.base_url, token, CLIENTS) as load:
                load.wait(90, f"round {round_}", acknowledged=BEFORE_KILL)
                process.send_signal(signal.SIGKILL)
                assert process.wait(10) == -signal.SIGKILL
            round_outcomes = load.snapshot()
            outcomes += round_outcomes
            # Before the kill every request was answered, and answered 200.
            answered = [o for o in round_outcomes if o.status is not None]
            assert all(o.status == 200 for o in answered), describe(round_outcomes)
            assert "Exception in ASGI application" not in broker.logs()
            process, broker = start_broker(url, runs[round_ + 1], ENV)

        answers = acknowledged(outcomes)
        unanswered = {o.key for o in outcomes if o.status is None}
        assert len(answers) >= ROUNDS * BEFORE_KILL
        assert unanswered, "the kills cut no request in flight"
        # The requests cut by a kill, sent again: each makes its exchange now or finds the one
        # committed before the kill.
        retried = resend(broker.base_url, token, unanswered)
        assert all(o.status == 200 for o in retried.values()), describe(list(retried.values()))
        # The acknowledged ones, sent again: the same exchange, the same evidence.
        assert changed(answers, resend(broker.base_url, token, answers)) == []
        state = wait_integrated(url)
    finally:
        stop_process(process)

    assert missing_from_log(url, answers) == [], describe(outcomes)
    assert_dense(state)
    assert max(exchanges_per_key(url).values()) == 1
    # One transaction per synchronous exchange: a kill leaves none half-done.
    assert states(url) == {"delivered": len(answers) + len(unanswered)}
    assert_audit_verifies(broker.env)
