"""In-process service tests: the real services and a real database, fakes for everything else.

A :class:`World` is what ``broker.bootstrap`` would build, minus the network and the key store:
a :class:`~broker.clock.FixedClock`, scripted authorities (:class:`InMemoryAdapters`), a
:class:`~broker.seal.sealer.FakeSealer`, the demo registry held fixed, the real schema check
over the project's ``xsd/`` and the real pseudonymiser with a fixed secret.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import select

from adapters.protocol import AdapterOutcome, EvidenceQuery
from adapters.registers.models import Resident
from adapters.registers.reference import issue
from broker.citizen.identity import Citizen, pseudonyms_of
from broker.clients.service import Principal, add_client
from broker.clock import FixedClock
from broker.consent.artefact import FixedKeySigner
from broker.db.models import CallbackDelivery, Client, Exchange, LogEntry
from broker.db.session import Database
from broker.demo.seed import DEMO_REGISTRY
from broker.exchange.dependencies import ExchangeDependencies
from broker.exchange.dispatch import InMemoryAdapters
from broker.exchange.schemas import EvidenceRequestIn, SubjectIn
from broker.exchange.service import ExchangeResult, request_evidence
from broker.keys.pseudonym import Pseudonymiser
from broker.preview.service import Previews
from broker.registry import repository as registry_repository
from broker.registry.schemas import AssuranceLevel
from broker.registry.service import FixedRegistry, read_toml
from broker.seal.sealer import FakeSealer
from broker.settings import Settings
from broker.xml.catalogue import SchemaCatalogue
from broker.xml.evidence import EvidenceSchemas
from broker.xml.hardened import XmlLimits
from tests.specimen import ERIKA, MELDE, request_body

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SECRET = bytes(range(32))
PREVIEW_KEY = bytes(range(32, 64))
# What the world's requester may ask for: Meldebescheinigungen for the specimen's purpose only
# (the registry id of "Wohngeldantrag").
GRANT = (MELDE, "wohngeld")
# Where the world's requester may be called back (callback_url) and linked back to (previews).
PORTAL_ORIGIN = "https://portal.example"


def erika_resident() -> Resident:
    """Erika's Melderegister entry, not stored anywhere: what a scripted authority renders."""
    return Resident(
        register_id="melderegister-13004",
        idnr=None,
        family_name=ERIKA["family_name"],
        given_name=ERIKA["given_name"],
        family_name_key="mustermann",
        given_name_key="erika",
        birth_date=date.fromisoformat(ERIKA["birth_date"]),
        birth_place="Schwerin",
        birth_name=None,
        street="Am Markt",
        house_number="1",
        postal_code="19055",
        municipality="Schwerin",
        municipality_ars="130040000000",
        moved_in=date(2001, 4, 1),
    )


def erika_evidence(query: EvidenceQuery) -> AdapterOutcome:
    """A valid Meldebescheinigung of Erika, as the authority asked would issue it."""
    document = issue("melderegister", erika_resident(), query.authority_id, "Stadt Schwerin", "13004", query.request_id)
    return AdapterOutcome.found(document)


def erika_evidence_stating(idnr: str) -> Callable[[EvidenceQuery], AdapterOutcome]:
    """Erika's Meldebescheinigung, stating this IDNr (hers, or a namesake's)."""

    def answer(query: EvidenceQuery) -> AdapterOutcome:
        resident = erika_resident()  # a register row, not a dataclass
        resident.idnr = idnr
        return AdapterOutcome.found(
            issue("melderegister", resident, query.authority_id, "Stadt Schwerin", "13004", query.request_id)
        )

    return answer


@dataclass
class World:
    database: Database
    clock: FixedClock
    sealer: FakeSealer
    deps: ExchangeDependencies
    requester: Principal
    # What the scripted authorities answer; tests replace it.
    answer: Callable[[EvidenceQuery], AdapterOutcome] = field(default=erika_evidence)
    # Signs granted consents with a key of its own; its jwks() verifies them.
    consent_signer: FixedKeySigner = field(default_factory=FixedKeySigner)

    @property
    def queries(self) -> list[EvidenceQuery]:
        adapters = self.deps.adapters
        assert isinstance(adapters, InMemoryAdapters)
        return adapters.queries

    @property
    def previews(self) -> Previews:
        previews = self.deps.previews
        assert isinstance(previews, Previews)
        return previews

    def bind(self, authority_id: str, binding: str) -> None:
        """Put an authority behind another binding (a remote one, so that exchanges wait for it)."""
        document = read_toml(DEMO_REGISTRY)
        authorities = [
            a.model_copy(update={"binding": binding}) if a.id == authority_id else a for a in document.authorities
        ]
        # Onboarded: a remote authority's routes that state no state would be pending.
        routes = [
            r.model_copy(update={"state": "active"}) if r.authority == authority_id else r for r in document.routes
        ]
        registry = FixedRegistry(document.model_copy(update={"authorities": authorities, "routes": routes}))
        self.deps = replace(self.deps, registry=registry)

    def request(self, idempotency_key: str | None = None, **overrides: Any) -> ExchangeResult:
        body = EvidenceRequestIn.model_validate(request_body(**overrides))
        with self.database.unit_of_work() as session:
            return request_evidence(session, self.deps, self.requester, body, idempotency_key)

    def citizen(
        self, subject: dict[str, Any] | None = None, assurance: AssuranceLevel = "high", age: timedelta = timedelta()
    ) -> Citizen:
        """A signed-in citizen (Erika unless ``subject`` says otherwise) who authenticated ``age`` ago."""
        person = SubjectIn.model_validate(subject or ERIKA).to_subject()
        by_idnr, by_name = pseudonyms_of(person, self.deps.pseudonyms.of)
        return Citizen(by_idnr, by_name, assurance, self.clock.now() - age, "oidc")

    def exchange(self, exchange_id: str) -> Exchange:
        with self.database.read() as session:
            found = session.get(Exchange, exchange_id)
        assert found is not None
        return found

    def events(self, exchange_id: str) -> list[tuple[str, str | None]]:
        """The log entries of an exchange, in order: (event, outcome)."""
        with self.database.read() as session:
            entries = session.scalars(
                select(LogEntry).where(LogEntry.exchange_id == exchange_id).order_by(LogEntry.seq)
            )
            return [(entry.event, json.loads(entry.body)["outcome"]) for entry in entries]

    def callbacks(self, exchange_id: str) -> list[CallbackDelivery]:
        with self.database.read() as session:
            query = select(CallbackDelivery).where(CallbackDelivery.exchange_id == exchange_id)
            return list(session.scalars(query))


@cache
def project_schemas() -> EvidenceSchemas:
    """The real schema check over the project's own xsd/ (compiled once per test run)."""
    return EvidenceSchemas(SchemaCatalogue(Settings().schema_dirs[:1]), XmlLimits())


def build_world(database: Database) -> World:
    clock = FixedClock(START)
    sealer = FakeSealer()
    deps = ExchangeDependencies(
        registry=FixedRegistry(read_toml(DEMO_REGISTRY)),
        adapters=InMemoryAdapters(lambda query: world.answer(query)),
        evidence=project_schemas(),
        sealer=sealer,
        pseudonyms=Pseudonymiser(lambda: SECRET),
        clock=clock,
        retention=timedelta(hours=24),
        previews=Previews(PREVIEW_KEY, timedelta(minutes=30), clock),
    )
    name = f"portal-{uuid.uuid4().hex[:8]}"
    with database.unit_of_work() as session:
        # The stored registry too (grants name registered entries), once per database.
        if not registry_repository.evidence_type_exists(session, MELDE):
            registry_repository.replace_document(session, read_toml(DEMO_REGISTRY))
        add_client(session, name, "requester", [GRANT], callback_origins=[PORTAL_ORIGIN], actor="cli", now=START)
        client_id = session.scalar(select(Client.id).where(Client.name == name))
    assert client_id is not None
    requester = Principal(client_id, name, "requester", None, None, frozenset({GRANT}))
    world = World(database, clock, sealer, deps, requester)
    return world
