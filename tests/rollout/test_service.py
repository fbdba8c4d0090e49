"""The rollout matrix and onboarding, in process over a real database (both backends), with a
scripted conformance kit and a fixed clock."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from broker.clock import FixedClock
from broker.db.models import ConformanceRun, LogEntry, Route
from broker.db.session import Database
from broker.problems import Problem
from broker.registry import repository as registry_repository
from broker.registry import service as registry_service
from broker.registry.schemas import AuthoritySpec, RouteSpec
from broker.registry.service import RegistrySnapshot
from broker.rollout import service
from broker.rollout.onboarding import Onboarding
from broker.rollout.repository import percentile
from broker.rollout.schemas import CellOut, RolloutOut
from broker.tasks.conformance import CASES, CaseResult
from tests.registry.support import NOW, demo_database
from tests.rollout.support import add_exchanges, matrix_of
from tests.specimen import GEBURT, MELDE

PENDING = ["melderegister-130755017", "melderegister-130755018", "melderegister-130755019"]
AUTHORITY = PENDING[0]


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    yield from demo_database(database_url)


def cell(matrix: RolloutOut, office: str, evidence_type: str) -> CellOut:
    found = next(o for o in matrix.offices if o.ars == office)
    return next(c for c in found.cells if c.evidence_type == evidence_type)


class ScriptedKit:
    """The conformance kit's verdicts, as scripted: every case passes unless named in ``fail``."""

    def __init__(self, fail: Sequence[str] = ()) -> None:
        self.fail = fail
        self.checked: list[AuthoritySpec] = []

    def __call__(self, authority: AuthoritySpec) -> list[CaseResult]:
        self.checked.append(authority)
        return [
            CaseResult(case, "FAIL" if case in self.fail else "PASS", "scripted" if case in self.fail else "ok")
            for case in CASES
        ]


def log_entries(database: Database, event: str) -> list[dict[str, Any]]:
    with database.read() as session:
        bodies = session.scalars(select(LogEntry.body).where(LogEntry.event == event).order_by(LogEntry.seq))
        return [json.loads(body) for body in bodies]


def route_states(database: Database, authority: str) -> list[str]:
    with database.read() as session:
        return list(session.scalars(select(Route.state).where(Route.authority_id == authority)))


def etag(database: Database) -> str:
    with database.read() as session:
        return registry_service.digest(registry_repository.read_document(session))


def snapshot(database: Database) -> RegistrySnapshot:
    with database.read() as session:
        return RegistrySnapshot.from_document(registry_repository.read_document(session))


# --- the matrix ---------------------------------------------------------------------------------


def test_the_demo_matrix_is_114_aemter_and_2_cities_by_3_types_with_the_gaps_named(database: Database) -> None:
    matrix = matrix_of(database)

    assert matrix.summary.model_dump() == {
        "offices": 116,
        "kinds": {"amt": 114, "kreisfreie_stadt": 2},
        "evidence_types": 3,
        "cells": 348,
        "routed": 345,
        "pending": 3,
        "unrouted": 0,
    }
    assert {o.kreis_key for o in matrix.offices} == {
        "13003",
        "13004",
        "13071",
        "13072",
        "13073",
        "13074",
        "13075",
        "13076",
    }
    assert [(g.office, g.evidence_type, g.status, g.authority) for g in matrix.gaps] == [
        (f"13075501{n}", MELDE, "pending", f"melderegister-13075501{n}") for n in (7, 8, 9)
    ]
    assert [g.office_name for g in matrix.gaps] == [f"Amt Vorpommern-Greifswald {n}" for n in (17, 18, 19)]
    # Gaps first.
    assert [o.ars for o in matrix.offices[:4]] == ["130755017", "130755018", "130755019", "130030000000"]
    assert all(o.gaps == 0 for o in matrix.offices[3:])
    # An Amt's own Melderegister, the Kreis's shared Standesamt, a city's Bürgeramt.
    own = cell(matrix, "130715001", MELDE)
    assert (own.status, own.authority, own.binding, own.ars_prefix, own.offices_served) == (
        "routed",
        "melderegister-130715001",
        "in_process",
        "130715001",
        1,
    )
    shared = cell(matrix, "130715001", GEBURT)
    assert (shared.authority, shared.ars_prefix, shared.offices_served) == ("standesamt-13071", "13071", 19)
    city = cell(matrix, "130040000000", MELDE)
    assert (city.authority, city.ars_prefix, city.served_by) == ("melderegister-13004", "13004", "melderegister-13004")
    gap = cell(matrix, "130755017", MELDE)
    assert (gap.status, gap.authority, gap.served_by, gap.conformance_passed_at) == ("pending", AUTHORITY, None, None)
    assert (own.exchanges, own.errors, own.error_rate, own.p95_seconds, own.last_delivered_at) == (
        0,
        0,
        None,
        None,
        None,
    )
    assert len(matrix.days) == service.HISTORY_DAYS and matrix.days[-1].day == NOW.date()


def test_an_office_without_a_route_is_a_gap_named_no_route(database: Database) -> None:
    with database.unit_of_work() as session:
        registry_service.delete_route(session, GEBURT, "13073", actor="test", now=NOW)
    matrix = matrix_of(database)
    unrouted = [(g.office, g.status, g.authority) for g in matrix.gaps if g.evidence_type == GEBURT]
    assert unrouted == [(f"130735{n:03d}", "unrouted", None) for n in range(1, 20)]
    assert matrix.summary.unrouted == 19
    assert cell(matrix, "130735001", GEBURT).offices_served == 0


def test_a_pending_route_routes_nothing_and_a_coarser_active_one_answers_meanwhile(database: Database) -> None:
    with pytest.raises(Problem) as refused:
        snapshot(database).route(MELDE, "130755017001")
    assert refused.value.reason == "route.not_found"
    assert AUTHORITY not in {a for prefixes in snapshot(database).routes.values() for a in prefixes.values()}

    # A Kreis-wide Melderegister route, active: it answers for the Amt until the Amt's own is onboarded.
    with database.unit_of_work() as session:
        kreis = {"evidence_type": MELDE, "ars_prefix": "13075", "authority": "melderegister-130755001"}
        registry_service.put_route(session, RouteSpec.model_validate(kreis), actor="test", now=NOW, if_match=None)
    assert snapshot(database).route(MELDE, "130755017001").id == "melderegister-130755001"
    gap = cell(matrix_of(database), "130755017", MELDE)
    assert (gap.status, gap.authority, gap.served_by) == ("pending", AUTHORITY, "melderegister-130755001")


# --- onboarding ---------------------------------------------------------------------------------


def test_onboarding_that_passes_activates_the_routes_and_logs_it(database: Database) -> None:
    kit = ScriptedKit()
    clock = FixedClock(NOW)
    before = etag(database)

    done = Onboarding(database, kit, clock).onboard(AUTHORITY, actor="operator")

    assert (done.authority, done.passed, done.activated, done.failed) == (AUTHORITY, True, 1, ())
    assert [a.id for a in kit.checked] == [AUTHORITY]
    assert route_states(database, AUTHORITY) == ["active"]
    assert snapshot(database).route(MELDE, "130755017001").id == AUTHORITY
    with database.read() as session:
        run = session.scalars(select(ConformanceRun)).one()
    assert (run.authority_id, run.binding, run.passed, run.actor) == (AUTHORITY, "in_process", True, "operator")
    assert [r["case"] for r in run.results] == list(CASES)
    [entry] = log_entries(database, "routes_activated")
    assert {k: entry[k] for k in ("authority", "actor", "change", "registry_before", "registry_after")} == {
        "authority": AUTHORITY,
        "actor": "operator",
        "change": f"authorities/{AUTHORITY}/routes",
        "registry_before": before,
        "registry_after": etag(database),
    }
    assert before != etag(database)
    matrix = matrix_of(database)
    assert matrix.summary.pending == 2
    passed = cell(matrix, "130755017", MELDE)
    assert (passed.status, passed.conformance_passed_at) == ("routed", NOW)


def test_onboarding_that_fails_leaves_the_routes_pending_and_says_what_failed(database: Database) -> None:
    before = etag(database)
    done = Onboarding(database, ScriptedKit(fail=["known subject", "slow answer"]), FixedClock(NOW)).onboard(
        AUTHORITY, actor="operator"
    )

    assert (done.passed, done.activated) == (False, 0)
    assert [(r.case, r.detail) for r in done.failed] == [("known subject", "scripted"), ("slow answer", "scripted")]
    assert route_states(database, AUTHORITY) == ["pending"]
    assert etag(database) == before
    assert log_entries(database, "routes_activated") == []
    with database.read() as session:
        run = session.scalars(select(ConformanceRun)).one()
    assert run.passed is False
    assert [r["verdict"] for r in run.results if r["case"] == "known subject"] == ["FAIL"]
    assert cell(matrix_of(database), "130755017", MELDE).conformance_passed_at is None


def test_a_kit_that_ran_no_case_does_not_pass(database: Database) -> None:
    done = Onboarding(database, lambda authority: [], FixedClock(NOW)).onboard(AUTHORITY, actor="operator")
    assert (done.passed, done.activated) == (False, 0)
    assert route_states(database, AUTHORITY) == ["pending"]


def test_onboarding_an_unknown_authority_runs_no_kit(database: Database) -> None:
    kit = ScriptedKit()
    with pytest.raises(Problem) as refused:
        Onboarding(database, kit, FixedClock(NOW)).onboard("nobody", actor="operator")
    assert (refused.value.status, refused.value.reason) == (404, "authority.not_found")
    assert kit.checked == []


def test_deactivation_puts_the_routes_back_to_pending_and_logs_it(database: Database) -> None:
    Onboarding(database, ScriptedKit(), FixedClock(NOW)).onboard(AUTHORITY, actor="operator")
    active = etag(database)
    later = NOW + timedelta(hours=1)

    with database.unit_of_work() as session:
        assert service.deactivate(session, AUTHORITY, actor="operator", now=later) == 1
    with database.unit_of_work() as session:
        assert service.deactivate(session, AUTHORITY, actor="operator", now=later) == 0  # no change, no entry

    assert route_states(database, AUTHORITY) == ["pending"]
    [entry] = log_entries(database, "routes_deactivated")
    assert (entry["authority"], entry["change"], entry["registry_before"]) == (
        AUTHORITY,
        f"authorities/{AUTHORITY}/routes",
        active,
    )
    assert entry["registry_after"] == etag(database)
    # The authority passed once: the matrix still says when, and that its route is pending.
    gap = cell(matrix_of(database, later), "130755017", MELDE)
    assert (gap.status, gap.conformance_passed_at) == ("pending", NOW)
    with pytest.raises(Problem) as refused, database.unit_of_work() as session:
        service.deactivate(session, "nobody", actor="operator", now=later)
    assert refused.value.status == 404


# --- what the exchanges say ---------------------------------------------------------------------


def test_the_matrix_counts_errors_and_durations_of_the_last_24_hours(database: Database) -> None:
    hour = timedelta(hours=1)
    add_exchanges(
        database,
        [
            *[("delivered", None, float(n), n * hour, False) for n in range(1, 11)],  # 1 s … 10 s
            ("failed", "subject.not_found", 0.5, 2 * hour, False),  # the register's correct answer
            ("failed", "authority.timeout", 20.0, 3 * hour, False),
            ("expired", "exchange.expired", 600.0, 4 * hour, False),
            ("delivered", None, 900.0, 5 * hour, True),  # waited for the citizen: not timed
            ("delivered", None, 1.0, 30 * hour, False),  # before the window
            ("routed", None, 1.0, 0 * hour, False),  # not ended
        ],
    )
    own = cell(matrix_of(database), "130715001", MELDE)

    assert (own.exchanges, own.errors) == (14, 2)
    assert own.error_rate == pytest.approx(2 / 14)
    timed = sorted([float(n) for n in range(1, 11)] + [0.5, 20.0, 600.0])
    assert own.p95_seconds == pytest.approx(percentile(timed, 0.95))
    assert own.last_delivered_at == NOW - hour
    days = {d.day: (d.exchanges, d.errors) for d in matrix_of(database).days}
    assert sum(count for count, _ in days.values()) == 15 and sum(errors for _, errors in days.values()) == 2
    assert cell(matrix_of(database), "130715002", MELDE).exchanges == 0


def test_percentile_interpolates_like_postgresql() -> None:
    assert percentile([], 0.95) is None
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.95) == pytest.approx(4.8)
    assert percentile([0.0, 10.0], 0.5) == 5.0
