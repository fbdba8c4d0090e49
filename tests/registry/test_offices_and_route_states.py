"""The registry's offices section and route states: validation, what a write decides for a route
that states no state, and that reloads, rollbacks and digests carry both. Both databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from broker.db.session import Database
from broker.demo.seed import DEMO_REGISTRY
from broker.registry import repository, service
from broker.registry.schemas import AuthoritySpec, RegistryDocument, RouteSpec, route_state
from broker.registry.service import read_toml
from tests.registry.support import NOW, demo_database
from tests.specimen import MELDE

KREIS = {"ars": "130715001", "name": "Amt A", "kind": "amt", "kreis": "Mecklenburgische Seenplatte"}


def demo(**changes: Any) -> dict[str, Any]:
    return {**read_toml(DEMO_REGISTRY).model_dump(mode="json"), **changes}


@pytest.mark.parametrize(
    ("offices", "complaint"),
    [
        ([KREIS, KREIS], "duplicate office '130715001'"),
        ([KREIS, {**KREIS, "ars": "130715001001"}], "office '130715001001' lies within office '130715001'"),
        ([KREIS, {**KREIS, "ars": "130715002", "kreis": "Seenplatte"}], "is named both"),
        ([{**KREIS, "ars": "13"}], "at least its Kreis"),
        ([{**KREIS, "ars": "1307150"}], "ends at a level"),
        ([{**KREIS, "kind": "bezirk"}], "kind"),
    ],
)
def test_offices_are_disjoint_areas_of_named_kreise(offices: list[dict[str, Any]], complaint: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RegistryDocument.model_validate(demo(offices=offices))
    assert complaint in str(refused.value)


def test_the_demo_lists_the_offices_of_every_kreis() -> None:
    offices = read_toml(DEMO_REGISTRY).offices
    by_kreis = {(o.ars[:5], o.kreis) for o in offices}
    assert len(offices) == 116 and len(by_kreis) == 8
    assert sum(o.kind == "amt" for o in offices) == 114
    assert {o.ars for o in offices if o.kind == "kreisfreie_stadt"} == {"130030000000", "130040000000"}


ROUTE = RouteSpec(evidence_type=MELDE, ars_prefix="130715001", authority="a")


@pytest.mark.parametrize(
    ("route", "binding", "stored", "state"),
    [
        (ROUTE, "in_process", None, "active"),
        (ROUTE, "http_push", None, "pending"),
        (ROUTE, "pull", None, "pending"),
        (ROUTE, "pull", ("a", "active"), "active"),  # a reload keeps what onboarding activated
        (ROUTE, "in_process", ("a", "pending"), "pending"),  # ... and what it deactivated
        (ROUTE, "pull", ("b", "active"), "pending"),  # another authority's route: new
        (ROUTE.model_copy(update={"state": "active"}), "pull", None, "active"),  # stated: as stated
        (ROUTE.model_copy(update={"state": "pending"}), "in_process", ("a", "active"), "pending"),
    ],
)
def test_a_route_that_states_no_state_gets_one(
    route: RouteSpec, binding: str, stored: tuple[str, str] | None, state: str
) -> None:
    assert route_state(route, binding, stored) == state


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    yield from demo_database(database_url)


def stored(database: Database) -> RegistryDocument:
    with database.read() as session:
        return repository.read_document(session)


def state_of(database: Database, evidence_type: str, prefix: str) -> str | None:
    return service.route_of(stored(database), evidence_type, prefix).state


def test_a_new_route_to_a_remote_authority_is_pending_until_activated(database: Database) -> None:
    remote = AuthoritySpec(
        id="melderegister-pull", name="Amt Pull", ars="130715020", register_kind="melderegister", binding="pull"
    )
    with database.unit_of_work() as session:
        service.put_authority(session, remote, actor="test", now=NOW, if_match=None)
        put = service.put_route(
            session,
            RouteSpec(evidence_type=MELDE, ars_prefix="130715020", authority=remote.id),
            actor="test",
            now=NOW,
            if_match=None,
        )
    # The PUT answers the route as stored: its ETag is the one a GET answers.
    assert put == service.route_of(stored(database), MELDE, "130715020")
    assert put.state == "pending"

    with database.unit_of_work() as session:
        assert service.set_route_states(session, remote.id, "active", actor="test", now=NOW) == 1
    # Loading a document whose route states no state keeps it active; stating one, as stated.
    document = stored(database).model_dump(mode="json")
    for route in document["routes"]:
        if route["authority"] == remote.id:
            route["state"] = None
    with database.unit_of_work() as session:
        service.replace_registry(
            session, RegistryDocument.model_validate(document), actor="test", now=NOW, if_match="*"
        )
    assert state_of(database, MELDE, "130715020") == "active"
    assert state_of(database, MELDE, "130755017") == "pending"  # as the demo file states


def test_the_digest_and_a_rollback_cover_offices_and_route_states(database: Database) -> None:
    demo_etag = service.digest(stored(database))
    with database.unit_of_work() as session:
        service.set_route_states(session, "melderegister-130755017", "active", actor="test", now=NOW)
    activated = service.digest(stored(database))
    assert activated != demo_etag

    fewer = stored(database).model_dump(mode="json")
    fewer["offices"] = fewer["offices"][:10]
    with database.unit_of_work() as session:
        after = service.replace_registry(
            session, RegistryDocument.model_validate(fewer), actor="test", now=NOW, if_match=f'"{activated}"'
        )
    assert after != activated and len(stored(database).offices) == 10
    with database.unit_of_work() as session:
        restored = service.rollback_registry(session, actor="test", now=NOW, if_match=f'"{after}"')
    assert restored.etag_after == activated
    assert len(stored(database).offices) == 116
    assert state_of(database, MELDE, "130755017") == "active"
