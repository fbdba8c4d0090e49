"""Remote exchanges' rules, in process: tasks, leases, the authority's answer, expiry."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from adapters.protocol import AdapterOutcome, EvidenceQuery, OutcomeKind, Subject
from broker.db.models import AdapterTask
from broker.exchange.lifecycle import State
from broker.tasks import service
from tests.specimen import ERIKA
from tests.world import World, erika_evidence

AUTHORITY = "melderegister-13004"
LEASE = timedelta(seconds=60)
# Whom the exchanges below ask about (the task's payload names them).
ASKED = Subject(
    family_name=ERIKA["family_name"], given_name=ERIKA["given_name"], birth_date=date.fromisoformat(ERIKA["birth_date"])
)


@pytest.fixture
def pull_world(world: World) -> World:
    world.bind(AUTHORITY, "pull")
    return world


def routed(world: World, **overrides: object) -> str:
    """A new exchange waiting for the pull authority, with its task queued (as the request path does)."""
    result = world.request(callback_url="https://portal.example/hook", **overrides)
    assert result.pending is not None and result.exchange.state == State.ROUTED
    with world.database.unit_of_work() as session:
        service.enqueue(session, result.pending, world.clock.now())
    return result.exchange.id


def tasks_of(world: World, exchange_id: str) -> list[AdapterTask]:
    with world.database.read() as session:
        return list(session.scalars(select(AdapterTask).where(AdapterTask.exchange_id == exchange_id)))


def test_a_lease_hands_a_task_out_once_until_it_runs_out(pull_world: World) -> None:
    exchange_id = routed(pull_world)
    with pull_world.database.unit_of_work() as session:
        first = [
            t
            for t in service.lease(session, AUTHORITY, pull_world.clock.now(), LEASE, 20)
            if t.query["request_id"] == exchange_id
        ]
    assert len(first) == 1 and first[0].attempt == 1 and first[0].query["subject"]["family_name"] == "Mustermann"
    with pull_world.database.unit_of_work() as session:
        taken = service.lease(session, AUTHORITY, pull_world.clock.now(), LEASE, 20)
    assert exchange_id not in [t.query["request_id"] for t in taken]
    pull_world.clock.advance(LEASE + timedelta(seconds=1))
    with pull_world.database.unit_of_work() as session:
        again = [t for t in service.lease(session, AUTHORITY, pull_world.clock.now(), LEASE, 20) if t.id == first[0].id]
    assert len(again) == 1 and again[0].attempt == 2


def test_the_answer_ends_the_exchange_once_and_erases_the_task(pull_world: World) -> None:
    exchange_id = routed(pull_world)
    exchange = pull_world.exchange(exchange_id)
    with pull_world.database.unit_of_work() as session:
        answer = erika_evidence(EvidenceQuery(exchange_id, exchange.evidence_type_id, AUTHORITY, "13004", Subject()))
        finished = service.finish(session, pull_world.deps, exchange_id, answer, ASKED)
    assert finished is not None and finished.problem is None
    assert pull_world.exchange(exchange_id).state == State.DELIVERED
    [task] = tasks_of(pull_world, exchange_id)
    assert (task.state, task.payload, task.completed_at is not None) == ("done", None, True)
    with pull_world.database.unit_of_work() as session:  # a second answer finds it ended
        assert service.finish(session, pull_world.deps, exchange_id, answer, ASKED) is None
    assert [c.state for c in pull_world.callbacks(exchange_id)] == ["pending"]
    assert [e for e, _ in pull_world.events(exchange_id)] == ["received", "routed", "delivered"]


def test_a_failure_answer_ends_the_exchange_failed(pull_world: World) -> None:
    exchange_id = routed(pull_world)
    with pull_world.database.unit_of_work() as session:
        outcome = AdapterOutcome(OutcomeKind.NOT_FOUND, detail="nobody")
        finished = service.finish(session, pull_world.deps, exchange_id, outcome, ASKED)
    assert finished is not None and finished.problem is not None and finished.problem.reason == "subject.not_found"
    [task] = tasks_of(pull_world, exchange_id)
    assert task.state == "done" and task.payload is None  # a 4xx is an answer, not a broken task


def test_exchanges_nobody_answers_expire_once(pull_world: World) -> None:
    exchange_id = routed(pull_world)
    with pull_world.database.unit_of_work() as session:
        assert exchange_id not in [
            f.exchange.id for f in service.expire_overdue(session, pull_world.deps, timedelta(minutes=10))
        ]
    pull_world.clock.advance(timedelta(minutes=11))
    with pull_world.database.unit_of_work() as session:
        ended = service.expire_overdue(session, pull_world.deps, timedelta(minutes=10), limit=1000)
    assert exchange_id in [f.exchange.id for f in ended]
    exchange = pull_world.exchange(exchange_id)
    assert (exchange.state, exchange.status_code, exchange.reason) == (State.EXPIRED, 504, "exchange.expired")
    [task] = tasks_of(pull_world, exchange_id)
    assert (task.state, task.payload) == ("failed", None)
    with pull_world.database.unit_of_work() as session:
        again = service.expire_overdue(session, pull_world.deps, timedelta(minutes=10), limit=1000)
    assert exchange_id not in [f.exchange.id for f in again]
    assert [c.state for c in pull_world.callbacks(exchange_id)] == ["pending"]
