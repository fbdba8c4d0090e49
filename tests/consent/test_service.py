"""Consent as the exchange uses it, in process: it covers what it names, for as long and as often."""

from __future__ import annotations

from datetime import timedelta

import pytest

from broker.consent import service
from broker.consent.schemas import ConsentIn
from broker.exchange.lifecycle import State
from broker.exchange.schemas import SubjectIn
from broker.problems import Problem
from tests.specimen import ERIKA, MELDE
from tests.world import START, World


def consent(world: World, **overrides: object) -> str:
    fields: dict[str, object] = {
        "subject": ERIKA,
        "evidence_types": [MELDE],
        "purpose": "Wohngeldantrag",
        "valid_until": START + timedelta(days=30),
        "max_uses": 2,
    }
    body = ConsentIn.model_validate({**fields, **overrides})
    pseudonym = world.deps.pseudonyms.of(SubjectIn.model_validate(ERIKA).to_subject())
    with world.database.unit_of_work() as session:
        return service.grant(session, world.requester, body, pseudonym, world.clock.now(), world.deps.registry.get()).id


def with_consent(world: World, consent_id: str, **overrides: object) -> tuple[str, str | None]:
    result = world.request(consent_id=consent_id, explicit_request=False, legal_basis=None, **overrides)
    exchange = world.exchange(result.exchange.id)
    return exchange.state, exchange.reason


def test_a_consent_is_used_up_after_max_uses(world: World) -> None:
    given = consent(world)
    assert with_consent(world, given) == (State.DELIVERED, None)
    assert with_consent(world, given) == (State.DELIVERED, None)
    assert with_consent(world, given) == (State.REJECTED, "consent.invalid")


@pytest.mark.parametrize(
    ("consent_overrides", "request_overrides"),
    [
        ({}, {"subject": {"family_name": "Schulz", "given_name": "Jan", "birth_date": "1990-01-01"}}),
        ({"valid_from": START + timedelta(days=1)}, {}),
    ],
)
def test_a_consent_covers_only_its_subject_and_time(
    world: World, consent_overrides: dict[str, object], request_overrides: dict[str, object]
) -> None:
    given = consent(world, **consent_overrides)
    assert with_consent(world, given, **request_overrides) == (State.REJECTED, "consent.invalid")
    assert world.queries == []


def test_no_consent_is_recorded_for_what_the_requester_may_not_ask(world: World) -> None:
    with pytest.raises(Problem) as refused:
        consent(world, purpose="Kindergeld")
    assert refused.value.reason == "policy.not_granted"


def test_a_revoked_consent_authorises_nothing(world: World) -> None:
    given = consent(world)
    with world.database.unit_of_work() as session:
        service.revoke(session, world.requester, given, world.clock.now())
    assert with_consent(world, given) == (State.REJECTED, "consent.invalid")


def test_an_expired_consent_authorises_nothing(world: World) -> None:
    given = consent(world)
    world.clock.advance(timedelta(days=31))
    assert with_consent(world, given) == (State.REJECTED, "consent.invalid")
