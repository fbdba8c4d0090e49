"""What routes may depend on: narrow FastAPI dependencies over the services built once at start-up.

The composition root (``broker.bootstrap``) builds one :class:`Services` and ``app.py`` puts it
on ``app.state``; a route names only the pieces it uses (``db: Db``, ``exchanges: Exchanges``,
…), never the whole. Nothing here builds a collaborator; :class:`ExchangeRoute` only groups the
five the exchange routes use, so that their hot path solves one dependency instead of five.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from broker.audit.integrator import BackgroundIntegrator
from broker.citizen.identity import Citizen
from broker.citizen.service import current_citizen
from broker.citizen.signin import CitizenAccess
from broker.clients.auth import PrincipalCache, authenticate
from broker.clients.service import Principal
from broker.clock import Clock
from broker.consent.artefact import ConsentSigner
from broker.db.session import Database
from broker.egress import EgressPolicy
from broker.exchange.dependencies import ExchangeDependencies, Sealer
from broker.fifo import FifoSemaphore
from broker.keys.store import KeyStore
from broker.oots.gateway import EdmGateway
from broker.ops.metrics import DomainGauges
from broker.preview.service import Previews
from broker.registry.service import RegistryCache
from broker.settings import Settings
from broker.tasks.remote import RemoteExchanges
from broker.xml.catalogue import SchemaCatalogue
from broker.xml.evidence import EvidenceSchemas
from broker.xml.hardened import XmlLimits


@dataclass(frozen=True)
class Services:
    settings: Settings
    database: Database
    clock: Clock
    keys: KeyStore
    catalogue: SchemaCatalogue
    xml_limits: XmlLimits
    registry: RegistryCache
    principals: PrincipalCache
    evidence: EvidenceSchemas
    previews: Previews
    exchanges: ExchangeDependencies
    remote: RemoteExchanges
    gateway: EdmGateway
    # Exchange work is CPU-bound Python under one GIL: beyond a few at once, threads only convoy.
    # Taken first come, first served; waiting (long polls, the synchronous window of remote
    # exchanges) is not counted.
    exchange_slots: FifoSemaphore
    # Where outbound calls may go; registry changes check authority endpoints against it.
    egress: EgressPolicy
    # How citizens sign in (OpenID Connect, or the development sign-in).
    citizen: CitizenAccess
    # Signs the artefact of a consent the citizen grants (the active checkpoint key).
    consent_signer: ConsentSigner
    # This process's log integrator (a background job); /readyz asks whether it makes progress.
    integrator: BackgroundIntegrator
    # The domain gauges /metrics computes at scrape time (queues, outbox, log, breakers).
    gauges: DomainGauges


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


# The dependencies below only read what bootstrap built, so they are coroutines: FastAPI runs a
# plain function dependency in the thread pool, and a thread hop per dependency cost more than
# the rest of the dependency handling on the exchange's hot path. A dependency that does I/O
# (``_signed_in``; ``require`` when the token is not known yet) stays off the event loop.


async def _settings(request: Request) -> Settings:
    return services(request).settings


async def _database(request: Request) -> Database:
    return services(request).database


async def _clock(request: Request) -> Clock:
    return services(request).clock


async def _keys(request: Request) -> KeyStore:
    return services(request).keys


async def _catalogue(request: Request) -> SchemaCatalogue:
    return services(request).catalogue


async def _xml_limits(request: Request) -> XmlLimits:
    return services(request).xml_limits


async def _registry(request: Request) -> RegistryCache:
    return services(request).registry


async def _evidence(request: Request) -> EvidenceSchemas:
    return services(request).evidence


async def _previews(request: Request) -> Previews:
    return services(request).previews


@dataclass(frozen=True)
class ExchangeRoute:
    """What the exchange routes use, as one dependency: they are the hot path, and FastAPI's
    solving of each dependency cost about 75,000 instructions of a 13.5 million exchange
    (five of them 2.7 %, ``bench.instructions``)."""

    database: Database
    exchanges: ExchangeDependencies
    remote: RemoteExchanges
    slots: FifoSemaphore
    previews: Previews


async def _exchange_route(request: Request) -> ExchangeRoute:
    found = services(request)
    return ExchangeRoute(found.database, found.exchanges, found.remote, found.exchange_slots, found.previews)


async def _exchanges(request: Request) -> ExchangeDependencies:
    return services(request).exchanges


async def _sealer(request: Request) -> Sealer:
    return services(request).exchanges.sealer


async def _remote(request: Request) -> RemoteExchanges:
    return services(request).remote


async def _gateway(request: Request) -> EdmGateway:
    return services(request).gateway


async def _egress(request: Request) -> EgressPolicy:
    return services(request).egress


async def _citizen_access(request: Request) -> CitizenAccess:
    return services(request).citizen


def _signed_in(request: Request) -> Citizen | None:
    found = services(request)
    return current_citizen(request, found.database, found.clock.now(), found.citizen.session_lifetime)


async def _consent_signer(request: Request) -> ConsentSigner:
    return services(request).consent_signer


async def _integrator(request: Request) -> BackgroundIntegrator:
    return services(request).integrator


async def _gauges(request: Request) -> DomainGauges:
    return services(request).gauges


SettingsDep = Annotated[Settings, Depends(_settings)]
Db = Annotated[Database, Depends(_database)]
ClockDep = Annotated[Clock, Depends(_clock)]
Keys = Annotated[KeyStore, Depends(_keys)]
Catalogue = Annotated[SchemaCatalogue, Depends(_catalogue)]
Limits = Annotated[XmlLimits, Depends(_xml_limits)]
Registry = Annotated[RegistryCache, Depends(_registry)]
Evidence = Annotated[EvidenceSchemas, Depends(_evidence)]
PreviewsDep = Annotated[Previews, Depends(_previews)]
Exchanges = Annotated[ExchangeDependencies, Depends(_exchanges)]
SealerDep = Annotated[Sealer, Depends(_sealer)]
Remote = Annotated[RemoteExchanges, Depends(_remote)]
Gateway = Annotated[EdmGateway, Depends(_gateway)]
ExchangeRouteDep = Annotated[ExchangeRoute, Depends(_exchange_route)]
Egress = Annotated[EgressPolicy, Depends(_egress)]
CitizenAccessDep = Annotated[CitizenAccess, Depends(_citizen_access)]
# The signed-in citizen of a request to the citizen's pages, or None.
SignedIn = Annotated[Citizen | None, Depends(_signed_in)]
ConsentSignerDep = Annotated[ConsentSigner, Depends(_consent_signer)]
Integrator = Annotated[BackgroundIntegrator, Depends(_integrator)]
Gauges = Annotated[DomainGauges, Depends(_gauges)]


# Declares the bearer scheme in the OpenAPI document (and each operation that asks for it);
# authenticate() reads and checks the header itself, so this one never refuses.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description="A client's token (`broker clients add`)")


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    # The principal cache is read here rather than declared as a sub-dependency: every
    # dependency FastAPI solves costs about as much as a small query's Python (bench.instructions),
    # and every authenticated request pays this one.
    async def dependency(
        request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
    ) -> Principal:
        return await authenticate(request, services(request).principals, *roles)

    return dependency


Requester = Annotated[Principal, Depends(require("requester"))]
Auditor = Annotated[Principal, Depends(require("auditor", "admin"))]
Admin = Annotated[Principal, Depends(require("admin"))]
AdapterClient = Annotated[Principal, Depends(require("adapter"))]
MetricsReader = Annotated[Principal, Depends(require("metrics", "admin"))]
