"""Everything a serving broker process holds: built once at start-up, shared by all requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from lxml import etree
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapters.http_push import Breakers, HttpPushAdapter, PushTransport, TlsSettings
from adapters.protocol import EvidenceAdapter, Subject
from adapters.reference import reference_adapter
from broker.clients.auth import PrincipalCache
from broker.clock import Clock, SystemClock
from broker.db.migrate import upgrade
from broker.db.session import make_engine, make_session_factory, unit_of_work
from broker.exchange.service import ExchangeDependencies
from broker.keys.pseudonym import subject_pseudonym
from broker.keys.store import KeyStore
from broker.preview.service import Previews, derive_key
from broker.registry import repository as registry_repository
from broker.registry.schemas import AuthoritySpec, EvidenceTypeSpec, RegistryDocument
from broker.registry.service import RegistryCache
from broker.seal.xades import seal_evidence
from broker.settings import Settings
from broker.tasks.remote import RemoteExchanges
from broker.xml.catalogue import SchemaCatalogue
from broker.xml.hardened import XmlIntakeError, XmlLimits, parse_xml


@dataclass
class BrokerContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    catalogue: SchemaCatalogue
    keys: KeyStore
    clock: Clock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        self.registry = RegistryCache(self._read_registry)
        self.principals = PrincipalCache(self.sessions)
        self.xml_limits = XmlLimits(max_bytes=self.settings.max_body_bytes)
        settings = self.settings
        # Exchange work is CPU-bound Python under one GIL: beyond a few at once, threads only
        # convoy. Waiting (long polls, the synchronous window of remote exchanges) is not counted.
        self.exchange_slots = threading.BoundedSemaphore(settings.exchange_concurrency)
        self.breakers = Breakers(settings.breaker_failure_threshold, settings.breaker_reset_seconds)
        self.push_transport = PushTransport(
            TlsSettings(settings.push_client_cert, settings.push_client_key, settings.push_ca_bundle)
        )
        self.remote = RemoteExchanges(self)

    @classmethod
    def create(cls, settings: Settings, clock: Clock | None = None) -> BrokerContext:
        engine = make_engine(settings.database_url)
        if settings.is_sqlite:
            # The embedded database migrates itself; PostgreSQL is migrated by `broker db upgrade`.
            upgrade(engine)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_session_factory(engine),
            catalogue=SchemaCatalogue(settings.schema_dirs),
            keys=KeyStore(settings.keys_dir, origin=settings.origin),
            clock=clock or SystemClock(),
        )

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        with unit_of_work(self.sessions) as session:
            yield session

    def _read_registry(self) -> RegistryDocument:
        with self.sessions() as session:
            return registry_repository.read_document(session)

    # --- the collaborators of an exchange ---------------------------------------------------

    def exchange_dependencies(self) -> ExchangeDependencies:
        return ExchangeDependencies(
            registry=self.registry.get(),
            adapter_for=self.adapter_for,
            check_evidence=self.check_evidence,
            seal=self.seal,
            pseudonymise=self.pseudonymise,
            clock=self.clock.now,
            retention=timedelta(hours=self.settings.evidence_retention_hours),
            open_preview=self.previews().open,
        )

    def previews(self) -> Previews:
        """Preview tokens and their lifetime (broker/preview)."""
        return Previews(derive_key(self.keys.pseudonym_secret()), self.settings.preview_ttl, self.clock.now)

    def adapter_for(self, authority: AuthoritySpec, session: Session) -> EvidenceAdapter:
        if authority.binding == "in_process":
            return reference_adapter(session, authority.id, authority.name, authority.ars, authority.register_kind)
        if authority.binding == "http_push":
            return self.push_adapter(authority)
        # Pull authorities are asked through their task queue (broker/tasks), never synchronously.
        raise NotImplementedError(f"binding {authority.binding} has no synchronous adapter")

    def push_adapter(self, authority: AuthoritySpec) -> HttpPushAdapter:
        assert authority.endpoint_url is not None  # the registry refuses http_push without one
        return HttpPushAdapter(
            authority.id,
            authority.endpoint_url,
            authority.timeout_seconds,
            authority.public_key_pem,
            self.keys.request_signing_key(),
            self.push_transport,
            self.breakers.for_authority(authority.id),
        )

    def start_background(self) -> None:
        """Threads a serving process runs besides its requests (remote exchanges' sweeps)."""
        self.keys.request_signing_key()  # made now, so that the JWKS lists it before the first push
        self.remote.start()

    def stop_background(self) -> None:
        self.remote.stop()
        self.push_transport.close()

    def check_evidence(self, evidence: bytes, evidence_type: EvidenceTypeSpec) -> None:
        root = parse_xml(evidence, self.xml_limits)
        expected = etree.QName(evidence_type.namespace, evidence_type.root_element)
        if root.tag != expected.text:
            raise XmlIntakeError(
                422,
                "xml.unexpected_root",
                f"expected root {expected.text}, got {root.tag}",
                root.sourceline,
                None,
                None,
            )
        self.catalogue.validate(root)

    def evidence_as_json(self, sealed: bytes) -> dict[str, object]:
        """Delivered evidence decoded to JSON by its schema (the seal itself is left out)."""
        root = parse_xml(sealed, self.xml_limits)
        for signature in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
            root.remove(signature)
        return self.catalogue.to_json(root)

    def seal(self, evidence: bytes) -> bytes:
        private_key, certificate = self.keys.sealing_key()
        return seal_evidence(evidence, private_key, certificate)

    def pseudonymise(self, subject: Subject) -> str:
        return subject_pseudonym(
            self.keys.pseudonym_secret(),
            idnr=subject.idnr,
            family_name=subject.family_name,
            given_name=subject.given_name,
            birth_date=subject.birth_date,
        )
