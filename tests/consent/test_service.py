"""Consent in process: the requester asks, the citizen grants, declines or revokes, and only a
granted consent authorises exchanges, for what it names, for as long and as often."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from broker.clock import as_utc
from broker.consent import service
from broker.consent.artefact import verify
from broker.consent.schemas import ConsentIn
from broker.db.models import Consent, LogEntry
from broker.exchange.lifecycle import State
from broker.exchange.schemas import SubjectIn
from broker.problems import Problem
from tests.specimen import ERIKA, ERIKA_IDNR, GEBURT, MELDE
from tests.world import START, World, erika_evidence_stating


def pseudonym_of(world: World, subject: dict[str, str]) -> str:
    return world.deps.pseudonyms.of(SubjectIn.model_validate(subject).to_subject())


def erika(world: World) -> frozenset[str]:
    """The signed-in Erika's pseudonyms: from her IDNr and from her name triple."""
    return frozenset({pseudonym_of(world, ERIKA), pseudonym_of(world, {"idnr": ERIKA_IDNR})})


def ask(world: World, subject: dict[str, str] = ERIKA, **overrides: object) -> str:
    """A consent request of the world's requester; returns its id."""
    fields: dict[str, object] = {
        "subject": subject,
        "evidence_types": [MELDE],
        "purpose": "Wohngeldantrag",
        "legal_basis": "§ 23 WoGG",
        "valid_until": START + timedelta(days=30),
        "max_uses": 2,
    }
    body = ConsentIn.model_validate({**fields, **overrides})
    with world.database.unit_of_work() as session:
        consent = service.request(
            session, world.requester, body, pseudonym_of(world, subject), world.clock.now(), world.deps.registry.get()
        )
        return consent.id


def decide(world: World, consent_id: str, grant: bool = True, pseudonyms: frozenset[str] | None = None) -> Consent:
    with world.database.unit_of_work() as session:
        return service.decide(
            session, consent_id, pseudonyms or erika(world), grant, world.clock.now(), world.consent_signer
        )


def consent(world: World, **overrides: object) -> str:
    """A consent Erika asked for and granted."""
    consent_id = ask(world, **overrides)
    decide(world, consent_id)
    return consent_id


def with_consent(world: World, consent_id: str, **overrides: object) -> tuple[str, str | None]:
    result = world.request(consent_id=consent_id, explicit_request=False, legal_basis=None, **overrides)
    exchange = world.exchange(result.exchange.id)
    return exchange.state, exchange.reason


def detail_of(world: World, consent_id: str) -> str:
    result = world.request(consent_id=consent_id, explicit_request=False, legal_basis=None)
    assert result.problem is not None
    return result.problem.detail


def entries(world: World, consent_id: str) -> list[dict[str, Any]]:
    with world.database.read() as session:
        bodies = session.scalars(select(LogEntry.body).order_by(LogEntry.seq))
        return [entry for entry in map(json.loads, bodies) if entry["consent"] == consent_id and not entry["exchange"]]


def refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(Problem) as refused:
        call()
    return refused.value.status, refused.value.reason


# --- asking, granting, declining ---------------------------------------------------------------


def test_a_request_is_granted_by_the_citizen_and_then_authorises_the_exchange(world: World) -> None:
    consent_id = ask(world)
    granted = decide(world, consent_id)
    assert granted.state == "granted" and granted.decided_at is not None and as_utc(granted.decided_at) == START
    assert granted.artefact is not None
    assert with_consent(world, consent_id) == (State.DELIVERED, None)


def test_a_request_the_citizen_has_not_granted_authorises_nothing(world: World) -> None:
    consent_id = ask(world)
    assert with_consent(world, consent_id) == (State.REJECTED, "consent.invalid")
    assert "not granted by the citizen" in detail_of(world, consent_id)
    assert world.queries == []


def test_a_declined_request_authorises_nothing_and_carries_no_artefact(world: World) -> None:
    consent_id = ask(world)
    declined = decide(world, consent_id, grant=False)
    assert (declined.state, declined.artefact) == ("declined", None)
    assert declined.decided_at is not None and as_utc(declined.decided_at) == START
    assert with_consent(world, consent_id) == (State.REJECTED, "consent.invalid")


def test_the_citizens_revocation_takes_effect_at_once(world: World) -> None:
    consent_id = consent(world)
    assert with_consent(world, consent_id) == (State.DELIVERED, None)
    with world.database.unit_of_work() as session:
        revoked = service.revoke_by_citizen(session, consent_id, erika(world), world.clock.now())
    assert revoked.revoked_at is not None
    assert with_consent(world, consent_id) == (State.REJECTED, "consent.invalid")
    assert "revoked" in detail_of(world, consent_id)
    # Idempotent: a second revocation changes nothing and is not logged again.
    world.clock.advance(timedelta(minutes=1))
    with world.database.unit_of_work() as session:
        again = service.revoke_by_citizen(session, consent_id, erika(world), world.clock.now())
    assert again.revoked_at is not None and as_utc(again.revoked_at) == START
    assert [e["event"] for e in entries(world, consent_id)].count("consent_revoked") == 1


def test_a_decision_is_made_once(world: World) -> None:
    consent_id = ask(world)
    decide(world, consent_id, grant=False)
    with pytest.raises(Problem) as refused:
        decide(world, consent_id, grant=True)
    assert (refused.value.status, refused.value.reason) == (409, "consent.decided")
    assert "declined" in refused.value.detail and refused.value.extensions["state"] == "declined"


def test_of_decisions_made_at_once_one_wins(world: World) -> None:
    consent_id = ask(world)

    def attempt(grant: bool) -> str:
        try:
            return decide(world, consent_id, grant=grant).state
        except Problem as refused:
            return refused.reason

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, [True, False] * 4))
    assert sorted(outcomes).count("consent.decided") == 7, outcomes
    decisions = [e["event"] for e in entries(world, consent_id) if e["event"] != "consent_requested"]
    assert len(decisions) == 1 and decisions[0] in ("consent_granted", "consent_declined")


def test_a_request_whose_period_is_over_cannot_be_granted_but_can_be_declined(world: World) -> None:
    consent_id = ask(world)
    world.clock.advance(timedelta(days=31))
    assert refusal(lambda: decide(world, consent_id)) == (409, "consent.expired")
    assert decide(world, consent_id, grant=False).state == "declined"


def test_a_request_the_requester_withdrew_cannot_be_decided(world: World) -> None:
    consent_id = ask(world)
    with world.database.unit_of_work() as session:
        service.revoke(session, world.requester, consent_id, world.clock.now())
    assert refusal(lambda: decide(world, consent_id)) == (409, "consent.revoked")


# --- only the subject ----------------------------------------------------------------------------


def test_another_citizen_can_neither_see_nor_decide_nor_revoke(world: World) -> None:
    consent_id = ask(world)
    someone_else = frozenset({pseudonym_of(world, {"idnr": "86095742719"})})
    now = world.clock.now()
    with world.database.unit_of_work() as session:
        assert refusal(lambda: service.for_citizen(session, consent_id, someone_else)) == (403, "citizen.not_subject")
        assert refusal(lambda: service.revoke_by_citizen(session, consent_id, someone_else, now)) == (
            403,
            "citizen.not_subject",
        )
    assert refusal(lambda: decide(world, consent_id, pseudonyms=someone_else)) == (403, "citizen.not_subject")
    with world.database.read() as session:
        stored = session.get(Consent, consent_id)
        assert stored is not None and (stored.state, stored.revoked_at) == ("requested", None)
    # Nothing was recorded for the refusals (the citizen routes log them).
    assert [e["event"] for e in entries(world, consent_id)] == ["consent_requested"]


# Fixed ids: the parametrisation must be the same in every pytest-xdist worker.
@pytest.mark.parametrize(
    "consent_id",
    ["4b0c2a46-93c1-4f0e-9d3a-6a1f2e7c5b10", "not-a-consent", "", "x" * 400, "9E6D1C2B-7A4F-4C38-B5E1-0D2F3A4B5C6D"],
)
def test_an_unknown_or_malformed_id_is_not_found(world: World, consent_id: str) -> None:
    with world.database.read() as session:
        assert refusal(lambda: service.for_citizen(session, consent_id, erika(world))) == (404, "consent.not_found")


def test_the_cockpit_lists_the_citizens_consents_under_both_pseudonyms_newest_first(world: World) -> None:
    # A citizen of their own, so that other tests' consents about Erika do not count.
    name = {"family_name": f"Probe{uuid.uuid4().hex[:8]}", "given_name": "Jan", "birth_date": "1990-01-01"}
    idnr = {"idnr": "86095742719", **name}
    by_name = ask(world, subject=name)
    world.clock.advance(timedelta(minutes=1))
    by_idnr = ask(world, subject=idnr)
    world.clock.advance(timedelta(minutes=1))
    declined = ask(world, subject=name)
    pseudonyms = frozenset({pseudonym_of(world, name), pseudonym_of(world, idnr)})
    decide(world, declined, grant=False, pseudonyms=pseudonyms)
    with world.database.read() as session:
        listed = service.of_citizen(session, pseudonyms)
        assert service.of_citizen(session, frozenset()) == []
    assert [c.id for c in listed] == [declined, by_idnr, by_name]
    assert [c.state for c in listed] == ["declined", "requested", "requested"]


# --- what a request may name -----------------------------------------------------------------------


def test_no_consent_is_requested_for_what_the_requester_may_not_ask(world: World) -> None:
    assert refusal(lambda: ask(world, purpose="Kindergeld")) == (403, "policy.not_granted")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"legal_basis": "§ 999 Erfunden"}, "legal_basis.unknown"),
        ({"legal_basis": "stpo-161", "evidence_types": [MELDE, GEBURT]}, "legal_basis.not_applicable"),
        ({"valid_until": START - timedelta(days=1), "valid_from": START - timedelta(days=2)}, "consent.invalid_period"),
        ({"valid_until": START + timedelta(days=1), "valid_from": START + timedelta(days=2)}, "consent.invalid_period"),
    ],
)
def test_a_request_names_a_registered_legal_basis_that_covers_it_and_a_future_period(
    world: World, overrides: dict[str, object], reason: str
) -> None:
    assert refusal(lambda: ask(world, **overrides)) == (422, reason)


def test_the_legal_basis_is_kept_as_its_registry_id(world: World) -> None:
    by_citation_id, without_id = ask(world, legal_basis="§ 23 WoGG"), ask(world, legal_basis=None)
    with world.database.read() as session:
        by_citation = session.get(Consent, by_citation_id)
        without = session.get(Consent, without_id)
    assert by_citation is not None and by_citation.legal_basis == "wogg-23"
    assert without is not None and without.legal_basis is None


# --- what a granted consent covers ----------------------------------------------------------------


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


def test_a_consent_the_requester_gave_up_authorises_nothing(world: World) -> None:
    given = consent(world)
    with world.database.unit_of_work() as session:
        service.revoke(session, world.requester, given, world.clock.now())
    assert with_consent(world, given) == (State.REJECTED, "consent.invalid")


def test_an_expired_consent_authorises_nothing(world: World) -> None:
    given = consent(world)
    world.clock.advance(timedelta(days=31))
    assert with_consent(world, given) == (State.REJECTED, "consent.invalid")


# --- the artefact and the log ---------------------------------------------------------------------


def test_the_grant_is_a_signed_artefact_of_what_was_granted(world: World) -> None:
    consent_id = ask(world, legal_basis="wogg-23")
    granted = decide(world, consent_id)
    assert granted.artefact is not None
    claims = verify(granted.artefact, world.consent_signer.jwks())
    assert claims == {
        "iss": world.consent_signer.issuer,
        "jti": consent_id,
        "sub": pseudonym_of(world, ERIKA),
        "requester": world.requester.name,
        "evidence_types": [MELDE],
        "purpose": "wohngeld",
        "legal_basis": "wogg-23",
        "nbf": int(START.timestamp()),
        "exp": int((START + timedelta(days=30)).timestamp()),
        "valid_from": "2026-11-26T09:00:00Z",
        "valid_until": "2026-12-26T09:00:00Z",
        "max_uses": 2,
        "iat": int(START.timestamp()),
    }


def test_requests_decisions_and_revocations_are_logged_without_personal_data(world: World) -> None:
    granted = ask(world)
    decide(world, granted)
    with world.database.unit_of_work() as session:
        service.revoke_by_citizen(session, granted, erika(world), world.clock.now())
    declined = ask(world)
    decide(world, declined, grant=False)
    withdrawn = ask(world)
    with world.database.unit_of_work() as session:
        service.revoke(session, world.requester, withdrawn, world.clock.now())

    requester = world.requester.name
    expected = {
        granted: [("consent_requested", requester), ("consent_granted", "citizen"), ("consent_revoked", "citizen")],
        declined: [("consent_requested", requester), ("consent_declined", "citizen")],
        withdrawn: [("consent_requested", requester), ("consent_revoked", requester)],
    }
    for consent_id, events in expected.items():
        logged = entries(world, consent_id)
        assert [(e["event"], e["actor"]) for e in logged] == events
        for entry in logged:
            assert entry["requester"] == requester
            assert (entry["purpose"], entry["legal_basis"], entry["evidence_type"]) == ("wohngeld", "wogg-23", MELDE)
            assert entry["subject"] == pseudonym_of(world, ERIKA)
            text = json.dumps(entry)
            assert not any(value in text for value in (*ERIKA.values(), ERIKA_IDNR, "WoGG"))


def test_a_grant_is_bound_to_the_idnr_of_the_citizen_who_gave_it(world: World) -> None:
    """A consent asked by name, granted by a namesake (same names, another IDNr), authorises
    nothing about Erika: evidence stating another IDNr than the grantor's is never delivered."""
    namesakes_idnr = "70403624094"
    consent_id = ask(world)  # by name
    namesake = frozenset({pseudonym_of(world, ERIKA), pseudonym_of(world, {"idnr": namesakes_idnr})})
    with world.database.unit_of_work() as session:
        service.decide(
            session,
            consent_id,
            namesake,
            True,
            world.clock.now(),
            world.consent_signer,
            pseudonym_of(world, {"idnr": namesakes_idnr}),
        )
    world.answer = erika_evidence_stating(ERIKA_IDNR)
    assert with_consent(world, consent_id) == (State.FAILED, "consent.subject_mismatch")
    world.answer = erika_evidence_stating(namesakes_idnr)
    assert with_consent(world, consent_id) == (State.DELIVERED, None)
