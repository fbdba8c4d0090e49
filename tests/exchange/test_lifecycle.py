"""The exchange lifecycle's table, held to every pair of states (in process, real database session)."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy.orm import Session

from broker.db.models import CallbackDelivery, Exchange, LogEntry
from broker.exchange import lifecycle
from broker.exchange.lifecycle import TERMINAL, TRANSITIONS, State, TransitionRefused
from broker.problems import Problem
from tests.world import START, World

FAILURES = {State.REJECTED, State.FAILED, State.EXPIRED}
# A way to reach each state from received.
PATHS: dict[State, list[State]] = {
    State.RECEIVED: [],
    State.AUTHORISED: [State.AUTHORISED],
    State.ROUTED: [State.AUTHORISED, State.ROUTED],
    State.AWAITING_PREVIEW: [State.AUTHORISED, State.ROUTED, State.AWAITING_PREVIEW],
    State.DELIVERED: [State.AUTHORISED, State.ROUTED, State.DELIVERED],
    State.REJECTED: [State.REJECTED],
    State.FAILED: [State.AUTHORISED, State.ROUTED, State.FAILED],
    State.EXPIRED: [State.AUTHORISED, State.ROUTED, State.EXPIRED],
}
PROBLEM = Problem(502, "authority.failed", "it failed")


def new_exchange(world: World, callback_url: str | None = "https://portal.example/hook") -> Exchange:
    return Exchange(
        id=f"x-{id(object())}",
        requester_id=world.requester.id,
        request_digest="0" * 64,
        evidence_type_id="urn:de:nachweis:meldebescheinigung",
        purpose="Wohngeldantrag",
        subject_pseudonym="ps1:test",
        callback_url=callback_url,
    )


def move(session: Session, exchange: Exchange, to: State) -> LogEntry | None:
    problem = PROBLEM if to in FAILURES else None
    return lifecycle.transition(session, exchange, to, at=START, requester="portal", problem=problem)


@pytest.mark.parametrize(("start", "to"), list(itertools.product(State, State)))
def test_a_move_is_made_exactly_when_the_table_allows_it(world: World, start: State, to: State) -> None:
    with world.database.sessions() as session:  # a session that is never committed
        exchange = new_exchange(world)
        lifecycle.receive(session, exchange, at=START, requester="portal")
        for step in PATHS[start]:
            move(session, exchange, step)
        assert exchange.state == start
        if to in TRANSITIONS[start]:
            move(session, exchange, to)
            assert exchange.state == to
        else:
            with pytest.raises(TransitionRefused):
                move(session, exchange, to)
            assert exchange.state == start


def test_terminal_states_allow_no_move() -> None:
    assert all(TRANSITIONS[state] == frozenset() for state in TERMINAL)
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize("end", sorted(TERMINAL))
def test_each_move_is_logged_and_the_end_queues_one_callback(world: World, end: State) -> None:
    with world.database.sessions() as session:  # never committed
        exchange = new_exchange(world)
        lifecycle.receive(session, exchange, at=START, requester="portal")
        entries = [move(session, exchange, step) for step in PATHS[end]]
        queued = [o for o in session.new if isinstance(o, CallbackDelivery)]
        # Each step's entry is in the queue already, in the exchange's transaction.
        events = [session.get_one(LogEntry, entry.seq).event if entry else None for entry in entries]
    expected = {State.AUTHORISED: None, State.ROUTED: "routed", State.DELIVERED: "delivered"}
    expected |= {State.REJECTED: "refused", State.FAILED: "failed", State.EXPIRED: "expired"}
    assert events == [expected[step] for step in PATHS[end]]
    assert [(c.exchange_id, c.state) for c in queued] == [(exchange.id, "pending")]
    if end in FAILURES:
        assert (exchange.status_code, exchange.reason) == (502, "authority.failed")


def test_no_callback_without_a_callback_url_and_none_before_the_end(world: World) -> None:
    with world.database.sessions() as session:  # never committed
        quiet = new_exchange(world, callback_url=None)
        lifecycle.receive(session, quiet, at=START, requester="portal")
        for step in PATHS[State.DELIVERED]:
            move(session, quiet, step)
        waiting = new_exchange(world)
        lifecycle.receive(session, waiting, at=START, requester="portal")
        for step in PATHS[State.AWAITING_PREVIEW]:
            move(session, waiting, step)
        assert not [o for o in session.new if isinstance(o, CallbackDelivery)]


def test_a_failure_needs_its_problem_and_a_success_has_none(world: World) -> None:
    with world.database.sessions() as session:  # never committed
        exchange = new_exchange(world)
        lifecycle.receive(session, exchange, at=START, requester="portal")
        with pytest.raises(TransitionRefused):
            lifecycle.transition(session, exchange, State.REJECTED, at=START, requester="portal")
        with pytest.raises(TransitionRefused):
            lifecycle.transition(session, exchange, State.AUTHORISED, at=START, requester="portal", problem=PROBLEM)
        with pytest.raises(TransitionRefused):  # a life starts once
            lifecycle.receive(session, exchange, at=START, requester="portal")
        assert exchange.state == State.RECEIVED
