"""Domain metrics, in process (broker/ops/metrics.py): each exchange's end counted once, with
exactly the expected labels, only when its transaction commits; the scrape-time gauges read from
a database of their own, so that every value is known."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from adapters.http_push import Breakers
from adapters.protocol import AdapterOutcome, EvidenceQuery, OutcomeKind
from broker.audit.integrator import integrate
from broker.db.migrate import upgrade
from broker.db.models import AdapterTask
from broker.db.session import Database, make_engine
from broker.demo.seed import DEMO_REGISTRY
from broker.exchange.schemas import EvidenceRequestIn
from broker.exchange.service import request_evidence
from broker.keys.store import KeyStore
from broker.ops import metrics
from broker.registry.service import read_toml
from broker.tasks import service as tasks
from tests.specimen import GEBURT, MELDE, request_body
from tests.world import World, build_world

AUTHORITY = "melderegister-13004"
REGISTRY_DOCUMENT = read_toml(DEMO_REGISTRY)
EVIDENCE_TYPES = {t.id for t in REGISTRY_DOCUMENT.evidence_types}
AUTHORITIES = {a.id for a in REGISTRY_DOCUMENT.authorities}
# What each label of the domain metrics may hold: registry ids, and the code's own vocabularies.
ALLOWED: dict[str, Callable[[str], bool]] = {
    "evidence_type": lambda v: v in EVIDENCE_TYPES | {"none"},
    "authority": lambda v: v in AUTHORITIES | {"none"},
    "channel": lambda v: v in {"v1", "oots"},
    "outcome": lambda v: v in {"delivered", "rejected", "failed", "expired"},
    "reason": lambda v: v == "none" or re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", v) is not None,
    "binding": lambda v: v in {"in_process", "http_push", "pull", "unknown"},
    "result": lambda v: v in {"ok", "error", "unavailable"},
    "state": lambda v: v in metrics.BREAKER_STATES,
    "le": lambda v: True,
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
Key = tuple[str, frozenset[tuple[str, str]]]


def samples() -> dict[Key, float]:
    """Every sample of the counters and histograms of broker.ops.metrics, as this process has them."""
    found: dict[Key, float] = {}
    for family in REGISTRY.collect():
        if family.name.startswith(("broker_exchange", "broker_authority_call")):
            for sample in family.samples:
                found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def changes(before: dict[Key, float], suffixes: tuple[str, ...] = ("_total", "_count")) -> dict[Key, float]:
    """What changed since ``before``, counters and histogram counts only (buckets and sums aside)."""
    return {
        key: value - before.get(key, 0.0)
        for key, value in samples().items()
        if key[0].endswith(suffixes) and value != before.get(key, 0.0)
    }


def key(name: str, **labels: str) -> Key:
    return (name, frozenset(labels.items()))


@pytest.fixture
def bound_world(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The world's registry names the bindings (bootstrap does this for a serving process)."""
    monkeypatch.setattr(metrics, "_authorities", lambda: world.deps.registry.get().authorities)
    return world


def test_each_end_of_an_exchange_is_counted_once_with_exactly_its_labels(bound_world: World) -> None:
    world = bound_world
    before = samples()
    assert world.request().exchange.state == "delivered"
    refused = world.request(evidence_type=GEBURT).problem
    assert refused is not None and refused.reason == "policy.not_granted"
    world.answer = lambda query: AdapterOutcome.failure("authority.timeout", "no answer in time", timed_out=True)
    assert world.request().exchange.reason == "authority.timeout"
    world.answer = lambda query: AdapterOutcome(OutcomeKind.NOT_FOUND)
    assert world.request().exchange.reason == "subject.not_found"

    def broken(query: EvidenceQuery) -> AdapterOutcome:
        raise RuntimeError("the register is on fire")

    world.answer = broken
    assert world.request().exchange.reason == "authority.error"

    ended = "broker_exchanges_total"
    melde = {"evidence_type": MELDE, "authority": AUTHORITY, "channel": "v1"}
    refused_labels = {"evidence_type": GEBURT, "authority": "none", "channel": "v1"}
    call = {"authority": AUTHORITY, "binding": "in_process"}
    assert changes(before) == {
        key(ended, **melde, outcome="delivered", reason="none"): 1,
        key(ended, **refused_labels, outcome="rejected", reason="policy.not_granted"): 1,
        key(ended, **melde, outcome="failed", reason="authority.timeout"): 1,
        key(ended, **melde, outcome="failed", reason="subject.not_found"): 1,
        key(ended, **melde, outcome="failed", reason="authority.error"): 1,
        # The refusal never met an authority: four routed exchanges are timed, not five.
        key("broker_exchange_duration_seconds_count", **call): 4,
        key("broker_authority_calls_total", **call, result="ok"): 2,
        key("broker_authority_calls_total", **call, result="unavailable"): 1,
        key("broker_authority_calls_total", **call, result="error"): 1,
        key("broker_authority_call_duration_seconds_count", **call): 4,
    }


def test_an_exchange_rolled_back_is_not_counted(bound_world: World) -> None:
    world = bound_world
    before = samples()
    session = world.database.sessions()
    try:
        request_evidence(session, world.deps, world.requester, EvidenceRequestIn.model_validate(request_body()), None)
        session.rollback()
        session.commit()  # a later commit of the same session must not bring it back
    finally:
        session.close()
    ended = changes(before, ("_total",))
    # The in-process authority was asked (that call happened), but no exchange ended.
    assert not [k for k in ended if k[0] == "broker_exchanges_total"]
    assert world.request().exchange.state == "delivered"
    assert sum(v for k, v in changes(before, ("_total",)).items() if k[0] == "broker_exchanges_total") == 1


def test_without_a_registry_the_binding_is_unknown_not_guessed(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_authorities", dict)
    before = samples()
    world.request()
    assert changes(before)[key("broker_exchange_duration_seconds_count", authority=AUTHORITY, binding="unknown")] == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("authority.timeout", "authority.timeout"),
        ("none", "none"),
        (None, "none"),
        ("Erika Mustermann", "other"),
        ("authority.timeout; DROP", "other"),
        ("5f1c7e2a-0b3d-4e8f-9a6b-2c4d6e8f0a1b", "other"),  # an exchange id
        ("a." + "b" * 80, "other"),
    ],
)
def test_reason_labels_are_codes_or_other(value: str | None, expected: str) -> None:
    assert metrics._code(value) == expected


def test_every_label_value_is_from_its_bounded_set() -> None:
    """Whatever the tests of this process have driven so far: no id, no name, no free text."""
    for (name, labels), _value in samples().items():
        for label, value in labels:
            assert ALLOWED[label](value), f"{name}: {label}={value!r}"
            assert not UUID.search(value)


# --- gauges read at scrape time -------------------------------------------------------------


@pytest.fixture
def own_world(database_url: str) -> Iterator[World]:
    """A world on a database of its own: the gauges count everything in it."""
    engine = make_engine(database_url)
    upgrade(engine)
    database = Database(engine)
    try:
        yield build_world(database)
    finally:
        database.dispose()


def scrape(gauges: metrics.DomainGauges) -> dict[Key, float]:
    text = gauges.exposition().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_gauges_report_queue_outbox_log_and_breakers(own_world: World, tmp_path: Path) -> None:
    world = own_world
    world.bind(AUTHORITY, "pull")
    breakers = Breakers(failure_threshold=2, reset_seconds=30)
    registry = world.deps.registry
    authorities = registry.get().authorities
    # Two push authorities: one whose breaker opened, one this process never called.
    push = {"gewerberegister-13004": "http_push", "standesamt-13004": "http_push"}
    lookup = {**authorities, **{a: authorities[a].model_copy(update={"binding": b}) for a, b in push.items()}}
    gauges = metrics.DomainGauges(world.database, lambda: lookup, breakers, world.clock.now)
    for _ in range(2):
        breakers.for_authority("gewerberegister-13004").failed()

    # Two exchanges wait for the pull authority (queued now), each with a callback to send.
    for _ in range(2):
        result = world.request(callback_url="https://portal.example/hook")
        assert result.pending is not None
        with world.database.unit_of_work() as session:
            tasks.enqueue(session, result.pending, world.clock.now())
    # One of them is taken by the adapter (leased: still open), and one exchange is refused
    # (its callback queued too). Then 90 s pass.
    with world.database.unit_of_work() as session:
        tasks.lease(session, AUTHORITY, world.clock.now(), timedelta(seconds=60), 1)
    world.request(evidence_type=GEBURT, callback_url="https://portal.example/hook")
    world.clock.advance(timedelta(seconds=90))

    found = scrape(gauges)
    with world.database.read() as session:
        assert len(session.scalars(select(AdapterTask)).all()) == 2
    pull = {"authority": AUTHORITY}
    breaker = "broker_authority_breaker_state"
    assert found == {
        key(breaker, authority="gewerberegister-13004", state="closed"): 0,
        key(breaker, authority="gewerberegister-13004", state="half_open"): 0,
        key(breaker, authority="gewerberegister-13004", state="open"): 1,
        key(breaker, authority="standesamt-13004", state="closed"): 1,
        key(breaker, authority="standesamt-13004", state="half_open"): 0,
        key(breaker, authority="standesamt-13004", state="open"): 0,
        key("broker_pull_queue_depth", **pull): 2,
        key("broker_pull_queue_oldest_seconds", **pull): 90,
        key("broker_callback_outbox_depth"): 1,
        key("broker_callback_outbox_oldest_seconds"): 90,
        # The registry's loading, received + routed of the two, received + refused of the third.
        key("broker_log_queue_depth"): 7,
        key("broker_log_queue_oldest_seconds"): 90,
        key("broker_log_tree_size"): 0,
        key("broker_metrics_database_up"): 1,
    }, "no checkpoint yet, so no checkpoint age"

    keys = KeyStore(tmp_path / "keys", origin="broker.example/test")
    with world.database.unit_of_work() as session:
        integrate(session, keys, "broker.example/test", world.clock.now())
    world.clock.advance(timedelta(seconds=30))
    found = scrape(gauges)
    assert found[key("broker_log_queue_depth")] == 0 and found[key("broker_log_queue_oldest_seconds")] == 0
    assert found[key("broker_log_tree_size")] == 7
    assert found[key("broker_log_checkpoint_age_seconds")] == 30


def test_a_database_out_of_reach_leaves_the_breakers_and_says_so(own_world: World) -> None:
    world = own_world
    # Nothing listens on port 1: the connection is refused at once.
    broken = Database(make_engine("postgresql+psycopg://broker@127.0.0.1:1/broker"))
    push = world.deps.registry.get().authorities[AUTHORITY].model_copy(update={"binding": "http_push"})
    gauges = metrics.DomainGauges(broken, lambda: {AUTHORITY: push}, Breakers(), world.clock.now)
    try:
        found = scrape(gauges)
    finally:
        broken.dispose()
    assert found == {
        key("broker_authority_breaker_state", authority=AUTHORITY, state="closed"): 1,
        key("broker_authority_breaker_state", authority=AUTHORITY, state="half_open"): 0,
        key("broker_authority_breaker_state", authority=AUTHORITY, state="open"): 0,
        key("broker_metrics_database_up"): 0,
    }
