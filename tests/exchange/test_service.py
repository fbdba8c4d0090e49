"""The exchange service's rules, in process: scripted authorities, a fixed clock, a fake seal."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from adapters.protocol import AdapterOutcome, EvidenceQuery, OutcomeKind
from broker.db.models import Exchange
from broker.exchange.lifecycle import State
from broker.problems import Problem, storage_problem
from broker.seal.sealer import FakeSealer
from tests.world import START, World

RECEIVED, ROUTED = ("received", None), ("routed", None)


def test_a_delivered_exchange_is_checked_sealed_and_logged(world: World) -> None:
    result = world.request()
    exchange = world.exchange(result.exchange.id)
    assert result.problem is None and exchange.state == State.DELIVERED
    assert world.events(exchange.id) == [RECEIVED, ROUTED, ("delivered", "delivered")]
    assert exchange.evidence is not None and exchange.evidence.endswith(FakeSealer.MARK)
    assert len(world.sealer.sealed) == 1 and b"Mustermann" in world.sealer.sealed[0]
    assert exchange.delivery_log_seq is not None
    assert exchange.expires_at is not None and exchange.expires_at.replace(tzinfo=START.tzinfo) == START + timedelta(
        hours=24
    )
    [query] = world.queries
    assert (query.authority_id, query.jurisdiction) == ("melderegister-13004", "13004")
    assert world.callbacks(exchange.id) == []  # none asked for


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        (AdapterOutcome(OutcomeKind.NOT_FOUND, detail="nobody"), 404, "subject.not_found"),
        (AdapterOutcome(OutcomeKind.AMBIGUOUS, detail="twins"), 409, "subject.ambiguous"),
        (AdapterOutcome.failure("authority.timeout", "slow", timed_out=True), 504, "authority.timeout"),
        (
            AdapterOutcome.found(b"<Meldebescheinigung xmlns='urn:de:nachweis:meldebescheinigung:1'/>"),
            502,
            "evidence.invalid",
        ),
        (AdapterOutcome.found(b"<not-even-the-type/>"), 502, "evidence.invalid"),
    ],
)
def test_what_the_authority_answers_ends_the_exchange(
    world: World, answer: AdapterOutcome, status: int, reason: str
) -> None:
    world.answer = lambda _query: answer
    result = world.request()
    assert result.problem is not None and (result.problem.status, result.problem.reason) == (status, reason)
    exchange = world.exchange(result.exchange.id)
    assert (exchange.state, exchange.status_code, exchange.reason) == (State.FAILED, status, reason)
    assert world.events(exchange.id) == [RECEIVED, ROUTED, ("failed", "failed")]
    assert world.sealer.sealed == [] and exchange.evidence is None


def test_a_faulty_adapter_fails_the_exchange_not_the_request(world: World) -> None:
    def broken(_query: EvidenceQuery) -> AdapterOutcome:
        raise RuntimeError("register on fire")

    world.answer = broken
    errors_before = authority_calls("melderegister-13004").get("error", 0)
    result = world.request()
    assert result.problem is not None and result.problem.reason == "authority.error"
    assert world.exchange(result.exchange.id).state == State.FAILED
    assert authority_calls("melderegister-13004").get("error", 0) == errors_before + 1


def test_a_database_error_in_an_in_process_register_fails_the_request_and_keeps_nothing(world: World) -> None:
    """An in-process register reads the broker's database in the exchange's own transaction: when
    that fails (the connection lost mid-exchange), the transaction can record nothing more. The
    error goes up (the request answers 503 storage.unavailable), and no exchange or entry remains;
    taken for a faulty authority, the failed-state commit on the broken transaction was a 500."""

    def connection_lost(_query: EvidenceQuery) -> AdapterOutcome:
        # As SQLAlchemy raises psycopg's error for a connection the server closed.
        lost = psycopg.OperationalError("server closed the connection unexpectedly")
        raise OperationalError("SELECT residents", {}, lost)

    world.answer = connection_lost
    with world.database.read() as session:
        before = session.scalar(select(func.count()).select_from(Exchange))
    calls_before = authority_calls("melderegister-13004")
    with pytest.raises(OperationalError) as raised:
        world.request()
    problem = storage_problem(raised.value)
    assert problem is not None and (problem.status, problem.reason) == (503, "storage.unavailable")
    with world.database.read() as session:
        assert session.scalar(select(func.count()).select_from(Exchange)) == before
    # The broker's storage failed, not the authority: its calls are not counted as errors.
    assert authority_calls("melderegister-13004") == calls_before


def authority_calls(authority: str) -> dict[str, float]:
    """This process's count of the authority's calls by result (broker_authority_calls_total)."""
    found: dict[str, float] = {}
    for metric in REGISTRY.collect():
        if metric.name == "broker_authority_calls":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels["authority"] == authority:
                    found[sample.labels["result"]] = found.get(sample.labels["result"], 0) + sample.value
    return found


@pytest.mark.parametrize(
    ("overrides", "status", "reason"),
    [
        ({"purpose": "Einbürgerung"}, 403, "policy.not_granted"),
        ({"explicit_request": False}, 422, "policy.basis_missing"),
        ({"legal_basis": None}, 422, "policy.legal_basis_missing"),
        ({"evidence_type": "urn:de:nachweis:unbekannt"}, 422, "evidence_type.unknown"),
        ({"jurisdiction": "13"}, 422, "jurisdiction.too_coarse"),
        ({"jurisdiction": "02"}, 404, "route.not_found"),
    ],
)
def test_refusals_end_the_exchange_before_any_authority_is_asked(
    world: World, overrides: dict[str, object], status: int, reason: str
) -> None:
    result = world.request(callback_url="https://portal.example/hook", **overrides)
    assert result.problem is not None and (result.problem.status, result.problem.reason) == (status, reason)
    exchange = world.exchange(result.exchange.id)
    assert exchange.state == State.REJECTED
    assert world.events(exchange.id) == [RECEIVED, ("refused", "rejected")]
    assert world.queries == []
    assert [c.state for c in world.callbacks(exchange.id)] == ["pending"]  # the end, told once


def test_the_same_idempotency_key_replays_the_exchange_and_asks_once(world: World) -> None:
    first = world.request(idempotency_key="k-1")
    again = world.request(idempotency_key="k-1")
    assert again.replayed and again.exchange.id == first.exchange.id
    assert len(world.queries) == 1
    with pytest.raises(Problem) as refused:
        world.request(idempotency_key="k-1", purpose="Kindergeld")
    assert refused.value.reason == "idempotency.key_reused"


def test_a_delivery_with_a_callback_url_queues_exactly_one_callback(world: World) -> None:
    result = world.request(callback_url="https://portal.example/hook")
    [callback] = world.callbacks(result.exchange.id)
    assert (callback.state, callback.attempts) == ("pending", 0)


def test_a_preview_holds_the_unsealed_evidence_and_tells_nobody_yet(world: World) -> None:
    result = world.request(preview=True, callback_url="https://portal.example/hook")
    exchange = world.exchange(result.exchange.id)
    assert exchange.state == State.AWAITING_PREVIEW and exchange.status_code == 202
    assert world.sealer.sealed == [] and exchange.evidence is not None and b"Mustermann" in exchange.evidence
    assert world.events(exchange.id)[-1] == ("preview_requested", "awaiting_preview")
    assert world.callbacks(exchange.id) == []


def test_pseudonyms_are_keyed_and_stable(world: World) -> None:
    first = world.exchange(world.request().exchange.id)
    second = world.exchange(
        world.request(
            subject={"family_name": "MUSTERMANN", "given_name": "erika", "birth_date": "1964-08-12"}
        ).exchange.id
    )
    assert first.subject_pseudonym == second.subject_pseudonym and first.subject_pseudonym.startswith("ps1:")
