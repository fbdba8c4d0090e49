"""Push calls in a serving process (broker.tasks.remote), in process: what becomes of a pushed
answer whose seal fails."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from adapters.protocol import AdapterOutcome, EvidenceQuery
from broker.exchange.lifecycle import State
from broker.seal.sealer import FakeSealer, SignerUnavailable
from broker.tasks.remote import SEAL_ATTEMPTS, RemoteExchanges
from tests.world import World

AUTHORITY = "melderegister-13004"


class FailingSealer(FakeSealer):
    """Fails its first ``failures`` seals as a signer process that died would, then seals."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def seal(self, evidence: Any) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise SignerUnavailable("the signer process did not answer in time")
        return super().seal(evidence)


class PushAuthority:
    """The push adapters of every authority: each answers as the world's scripted authority does."""

    def __init__(self, world: World) -> None:
        self.world = world

    def push(self, _authority: object) -> PushAuthority:
        return self

    def fetch(self, query: EvidenceQuery) -> AdapterOutcome:
        return self.world.answer(query)


def pushed(world: World, sealer: FailingSealer) -> tuple[str, State, str | None]:
    """A synchronous exchange with a push authority, whose answer is sealed by ``sealer``:
    its id, and its state and problem's reason as the waiting request answers them."""
    world.bind(AUTHORITY, "http_push")
    world.deps = replace(world.deps, sealer=sealer)
    result = world.request()
    assert result.pending is not None
    remote = RemoteExchanges(
        world.database,
        world.deps,
        PushAuthority(world),  # type: ignore[arg-type]
        sync_timeout_seconds=10,
        push_workers=1,
        on_ended=lambda: None,
    )
    try:
        answered = remote.settle(result)
    finally:
        remote.close()
    problem = answered.problem
    return answered.exchange.id, answered.exchange.state, problem.reason if problem else None


def test_a_seal_that_meets_a_failed_signer_is_tried_again(world: World) -> None:
    sealer = FailingSealer(failures=SEAL_ATTEMPTS - 1)
    exchange_id, state, reason = pushed(world, sealer)
    assert (state, reason) == (State.DELIVERED, None)
    assert sealer.calls == SEAL_ATTEMPTS
    assert world.events(exchange_id)[-1][0] == "delivered"


@pytest.mark.parametrize("failures", [SEAL_ATTEMPTS, 100])
def test_a_pushed_answer_that_cannot_be_sealed_ends_the_exchange_failed(world: World, failures: int) -> None:
    sealer = FailingSealer(failures)
    exchange_id, state, reason = pushed(world, sealer)
    # At once, and the waiting request is told: not left routed until the expiry sweep.
    assert (state, reason) == (State.FAILED, "seal.unavailable")
    assert sealer.calls == SEAL_ATTEMPTS
    exchange = world.exchange(exchange_id)
    assert exchange.evidence is None
    assert world.events(exchange_id)[-1][0] == "failed"
