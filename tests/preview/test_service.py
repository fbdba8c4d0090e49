"""The citizen's preview decision, in process: approve, decline, a second decision, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from broker.exchange.lifecycle import State
from broker.preview import service
from broker.problems import Problem
from tests.world import World

HOOK = "https://portal.example/hook"


def held(world: World) -> tuple[str, str]:
    """An exchange awaiting the citizen, and its preview token."""
    result = world.request(preview=True, callback_url=HOOK)
    assert result.exchange.state == State.AWAITING_PREVIEW
    return result.exchange.id, world.previews.token(result.exchange.id)


def decide(world: World, token: str, approve: bool) -> str:
    with world.database.unit_of_work() as session:
        return service.decide(session, world.deps, token, approve).preview.state


def test_approval_seals_and_delivers_and_calls_back_once(world: World) -> None:
    exchange_id, token = held(world)
    assert decide(world, token, approve=True) == "approved"
    exchange = world.exchange(exchange_id)
    assert exchange.state == State.DELIVERED and len(world.sealer.sealed) == 1
    assert [e for e in world.events(exchange_id)][-3:] == [
        ("preview_requested", "awaiting_preview"),
        ("preview_decided", "approved"),
        ("delivered", "delivered"),
    ]
    assert [c.state for c in world.callbacks(exchange_id)] == ["pending"]
    with pytest.raises(Problem) as again:
        decide(world, token, approve=False)
    assert (again.value.status, again.value.reason) == (409, "preview.decided")
    assert len(world.callbacks(exchange_id)) == 1


def test_declining_drops_the_evidence_unsealed(world: World) -> None:
    exchange_id, token = held(world)
    assert decide(world, token, approve=False) == "declined"
    exchange = world.exchange(exchange_id)
    assert (exchange.state, exchange.reason, exchange.evidence) == (State.REJECTED, "preview.declined", None)
    assert world.sealer.sealed == []
    assert world.events(exchange_id)[-2:] == [("preview_decided", "declined"), ("refused", "rejected")]
    assert [c.state for c in world.callbacks(exchange_id)] == ["pending"]


def test_an_undecided_preview_expires_when_looked_at_after_its_time(world: World) -> None:
    exchange_id, token = held(world)
    world.clock.advance(timedelta(minutes=29))
    with world.database.unit_of_work() as session:
        found = service.find(session, world.deps, token)
    assert found is not None and found.preview.state == "pending"
    world.clock.advance(timedelta(minutes=2))
    assert decide(world, token, approve=True) == "expired"
    exchange = world.exchange(exchange_id)
    assert (exchange.state, exchange.reason, exchange.evidence) == (State.EXPIRED, "preview.expired", None)
    assert world.sealer.sealed == []
    assert [c.state for c in world.callbacks(exchange_id)] == ["pending"]


def test_unknown_and_malformed_tokens_open_nothing(world: World) -> None:
    with world.database.unit_of_work() as session:
        assert service.find(session, world.deps, "A" * 43) is None
        assert service.find(session, world.deps, "../../etc/passwd") is None
    with pytest.raises(Problem) as refused:
        decide(world, "B" * 43, approve=True)
    assert refused.value.reason == "preview.not_found"
