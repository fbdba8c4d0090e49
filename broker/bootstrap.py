"""The composition root: every collaborator of a serving process, built once, wired here only.

Only ``broker.app``, the command line and tests import this module. Everything else receives
what it needs (narrow, typed) from here: routes through ``broker.deps``, services as arguments.
The background jobs of a process — sweeps, callback sender, log integrator — start and stop here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from adapters.http_push import Breakers, PushTransport, TlsSettings
from broker import preflight
from broker.audit.integrator import BackgroundIntegrator
from broker.background import Periodic
from broker.callbacks.sender import CallbackSender
from broker.citizen.signin import CitizenAccess, OidcSignIn
from broker.clients.auth import PrincipalCache
from broker.clock import Clock, SystemClock
from broker.consent.artefact import KeyConsentSigner
from broker.db.session import Database
from broker.deps import Services
from broker.egress import EgressPolicy, push_transport
from broker.exchange.dependencies import ExchangeDependencies
from broker.exchange.dispatch import Adapters
from broker.exchange.sweeps import Sweeps
from broker.fifo import FifoSemaphore
from broker.keys.pseudonym import Pseudonymiser
from broker.keys.store import KeyStore
from broker.oots.gateway import EdmGateway, Timeouts
from broker.oots.mapping import CHANNEL as OOTS_CHANNEL
from broker.ops import metrics
from broker.ops.metrics import DomainGauges, use_registry
from broker.preview.service import Previews, derive_key
from broker.registry import repository as registry_repository
from broker.registry.schemas import RegistryDocument
from broker.registry.service import RegistryCache
from broker.seal.sealer import KeySealer, ProcessSealer
from broker.settings import Settings
from broker.tasks.remote import RemoteExchanges
from broker.xml.evidence import EvidenceSchemas
from broker.xml.hardened import XmlLimits
from broker.xml.schematron import MessageKind, RuleSet, rule_sets_for


@dataclass(frozen=True)
class Container:
    services: Services
    adapters: Adapters
    callbacks: CallbackSender
    jobs: tuple[Periodic | BackgroundIntegrator, ...]
    # The signer processes, when the seal is made in them (BROKER_SEAL_PROCESSES).
    signers: ProcessSealer | None

    def start(self) -> None:
        # Made now, so that the JWKS lists the request-signing key before the first push call.
        self.services.keys.request_signing_key()
        if self.signers is not None:
            self.signers.start()
        for job in self.jobs:
            job.start()

    def stop(self) -> None:
        for job in self.jobs:
            job.stop()
        self.services.remote.close()
        self.adapters.close()
        self.callbacks.close()
        if self.signers is not None:
            self.signers.close()

    def close(self) -> None:
        """For commands that built a container without serving: stop what runs, release the database."""
        self.stop()
        self.services.database.dispose()


def request_rules(settings: Settings) -> tuple[RuleSet, ...]:
    """The official rules inbound EDM requests are checked against (EDM-REQ-S and -C), compiled
    now so that a missing or broken rule file stops the start; none without BROKER_OOTS_RULES_PATH."""
    if not settings.oots_rules_path:
        return ()
    return tuple(rule_sets_for(MessageKind.EVIDENCE_REQUEST, Path(settings.oots_rules_path)))


def build(settings: Settings, clock: Clock | None = None) -> Container:
    clock = clock or SystemClock()
    # Checked before anything serves (broker.preflight): a bad URL, an unmigrated database, a
    # broken schema or key file, or keys that are not this log's stop the start with one line.
    # The embedded database migrates itself; PostgreSQL is migrated by `broker db upgrade`.
    database = Database(preflight.database(settings))
    catalogue = preflight.catalogue(settings.schema_dirs)
    keys = KeyStore(settings.keys_dir, origin=settings.origin)
    preflight.keys(database, keys, clock.now())
    limits = XmlLimits(max_bytes=settings.max_body_bytes)

    def read_registry() -> RegistryDocument:
        with database.read() as session:
            return registry_repository.read_document(session)

    registry = RegistryCache(read_registry)
    # Exchange durations are labelled with their authority's binding, as this snapshot states it.
    use_registry(lambda: registry.get().authorities)
    evidence = EvidenceSchemas(catalogue, limits)
    # Previews of OOTS requests live T2 (the gateway's timeout); the JSON API's, the preview TTL.
    previews = Previews(
        derive_key(keys.pseudonym_secret()),
        settings.preview_ttl,
        clock,
        channel_ttl={OOTS_CHANNEL: settings.oots_preview_ttl},
    )
    # Every outbound call of the process (push calls, callbacks) goes through this one policy.
    egress = EgressPolicy.from_settings(settings)
    tls = TlsSettings(settings.push_client_cert, settings.push_client_key, settings.push_ca_bundle)
    adapters = Adapters(
        keys,
        PushTransport(push_transport(egress), tls),
        Breakers(settings.breaker_failure_threshold, settings.breaker_reset_seconds),
    )
    signers = (
        ProcessSealer(
            keys,
            settings.seal_processes,
            limits,
            settings.seal_timeout_seconds,
            on_failure=metrics.SIGNER_FAILURES.inc,
        )
        if settings.seal_processes
        else None
    )
    deps = ExchangeDependencies(
        registry=registry,
        adapters=adapters,
        evidence=evidence,
        sealer=signers or KeySealer(keys),
        pseudonyms=Pseudonymiser(keys.pseudonym_secret),
        clock=clock,
        retention=timedelta(hours=settings.evidence_retention_hours),
        previews=previews,
    )
    callbacks = CallbackSender(
        database,
        keys,
        clock,
        egress,
        timeout_seconds=settings.callback_timeout_seconds,
        max_attempts=settings.callback_max_attempts,
        concurrency=settings.callback_concurrency,
        per_requester=settings.callback_concurrency_per_requester,
        # The job is made just below; no send can end before it runs.
        on_free=lambda: send_callbacks.wake(),
    )
    send_callbacks = Periodic("callbacks", settings.background_interval_seconds, callbacks.send_due)
    remote = RemoteExchanges(
        database,
        deps,
        adapters,
        sync_timeout_seconds=settings.sync_timeout_seconds,
        push_workers=settings.push_workers,
        on_ended=send_callbacks.wake,
    )
    sweeps = Sweeps(database, deps, timedelta(seconds=settings.exchange_expiry_seconds), on_ended=remote.ended)
    principals = PrincipalCache(database, clock)
    integrator = BackgroundIntegrator(
        database.sessions, keys, settings.origin, clock.now, settings.integrate_interval_seconds
    )
    services = Services(
        settings=settings,
        database=database,
        clock=clock,
        keys=keys,
        catalogue=catalogue,
        xml_limits=limits,
        registry=registry,
        principals=principals,
        evidence=evidence,
        previews=previews,
        exchanges=deps,
        remote=remote,
        gateway=EdmGateway(
            database,
            deps,
            remote,
            principals,
            catalogue,
            limits,
            previews,
            settings.origin,
            Timeouts(t1=settings.oots_t1_seconds, t3=settings.oots_t3_seconds),
            request_rules(settings),
        ),
        exchange_slots=FifoSemaphore(settings.exchange_concurrency),
        egress=egress,
        citizen=CitizenAccess(
            oidc=OidcSignIn(settings, egress) if settings.signin_method == "oidc" else None,
            max_auth_age=timedelta(seconds=settings.citizen_max_auth_age_seconds),
            session_lifetime=timedelta(minutes=settings.citizen_session_minutes),
        ),
        consent_signer=KeyConsentSigner(keys),
        integrator=integrator,
        gauges=DomainGauges(database, lambda: registry.get().authorities, adapters.breakers, clock.now),
    )
    jobs = (
        Periodic("registry", settings.registry_refresh_seconds, registry.refresh),
        Periodic("sweeps", settings.background_interval_seconds, sweeps.run_once),
        send_callbacks,
        integrator,
    )
    return Container(services, adapters, callbacks, jobs, signers)
