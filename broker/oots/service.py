"""The OOTS gateway: an EDM evidence request becomes an ordinary exchange, its end an EDM answer.

One way to do each thing: the exchange is the one ``broker.exchange.service.request_evidence``
runs for the JSON API (same authorisation, routing, adapters, schema check, seal and log),
reached through the ``oots`` channel with the QueryRequest id as external reference and
idempotency key, plus the refusals only EDM requests can earn (level of assurance, preview
possibility). What remains here is reading the request into the exchange's terms and writing
its outcome back in the EDM's.

The service never commits; the route is the transaction boundary.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from broker.clients.service import Principal
from broker.clock import as_utc
from broker.db.models import Exchange
from broker.exchange.service import Channel, ExchangeDependencies, ExchangeResult, problem_of, request_evidence
from broker.oots import dsd, edm, mapping
from broker.oots.edm import Agent, EdmCode, EdmError, EvidenceRequest, Text
from broker.preview import service as preview_service
from broker.problems import Problem
from broker.registry.schemas import AuthoritySpec, EvidenceTypeSpec
from broker.registry.service import RegistrySnapshot

BROKER_NAME = Text("Once-Only evidence broker", "en")
PREVIEW_DESCRIPTION = (
    Text("Please check the evidence and approve or decline its release.", "en"),
    Text("Bitte prüfen Sie den Nachweis und stimmen Sie der Übermittlung zu oder lehnen Sie sie ab.", "de"),
)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer of the gateway: status, Content-Type and body."""

    status: int
    media_type: str
    body: bytes


def broker_agent(origin: str) -> Agent:
    """The broker itself, as ErrorProvider."""
    return Agent(
        identifier=origin, scheme=edm.UNREGISTERED_SCHEME, names=(BROKER_NAME,), classification="ERRP", country="DE"
    )


def authority_agent(authority: AuthoritySpec, classification: str | None = "EP") -> Agent:
    return Agent(
        identifier=authority.id,
        scheme=edm.UNREGISTERED_SCHEME,
        names=(Text(authority.name, "de"),),
        classification=classification,
        country="DE",
    )


def specification_of(request: EvidenceRequest | None) -> str:
    if request is not None and request.specification in edm.SUPPORTED_SPECIFICATIONS:
        return request.specification
    return edm.DEFAULT_SPECIFICATION


# --- checks before any exchange ---------------------------------------------------------------


def check(principal: Principal, request: EvidenceRequest) -> None:
    """What must hold before the request is looked at further. Raises EdmError."""
    if request.specification is None:
        raise EdmError(
            EdmCode.INVALID_REQUEST, "oots.specification_missing", "The request has no SpecificationIdentifier."
        )
    if request.specification not in edm.SUPPORTED_SPECIFICATIONS:
        raise EdmError(
            EdmCode.UNSUPPORTED,
            "oots.unsupported_specification",
            f"SpecificationIdentifier {request.specification!r} is not supported; "
            f"this gateway speaks {', '.join(edm.SUPPORTED_SPECIFICATIONS)}.",
        )
    if principal.agent_id is None:
        raise EdmError(
            EdmCode.AUTHORIZATION,
            "oots.requester_unregistered",
            "This client has no OOTS agent identifier; it cannot send EDM requests.",
        )
    if request.requester is None:
        raise EdmError(EdmCode.INVALID_REQUEST, "oots.requester_missing", "The request names no EvidenceRequester.")
    if not mapping.requester_matches(principal.agent_id, request.requester):
        raise EdmError(
            EdmCode.AUTHORIZATION,
            "oots.requester_mismatch",
            "The EvidenceRequester is not the agent this client is registered as.",
        )
    if request.legal_person:
        raise EdmError(
            EdmCode.UNSUPPORTED, "oots.unsupported_subject", "Evidence about legal persons is not served here."
        )
    if request.person is None:
        raise EdmError(EdmCode.INVALID_REQUEST, "oots.person_missing", "The request names no NaturalPerson.")
    if request.evidence_type is None:
        raise EdmError(
            EdmCode.INVALID_REQUEST, "oots.evidence_request_missing", "The request names no EvidenceRequest."
        )


# --- the first request: a new exchange ---------------------------------------------------------


def start(
    session: Session, deps: ExchangeDependencies, principal: Principal, request: EvidenceRequest
) -> ExchangeResult:
    """Run the request as an exchange (or replay the one with the same QueryRequest id)."""
    assert request.person is not None and request.evidence_type is not None  # check() ran
    spec = mapping.evidence_type_for(deps.registry, request.evidence_type)
    routing_refusal: Problem | None = None
    jurisdiction = None
    if spec is not None:
        try:
            jurisdiction = mapping.jurisdiction_for(deps.registry, spec, request.person, request.provider)
        except Problem as refusal:
            routing_refusal = refusal
    # An unmapped type goes in as the requester named it, so that the exchange refuses it (and logs that).
    evidence_type = (
        spec.id
        if spec is not None
        else (request.evidence_type.identifier or request.evidence_type.classification or "")
    )
    body = mapping.evidence_request_in(request, evidence_type, jurisdiction, mapping.subject_of(request.person))
    policy = mapping.oots_policy(request.person, request.possibility_for_preview)

    def channel_policy(evidence_type_spec: EvidenceTypeSpec) -> None:
        policy(evidence_type_spec)
        if routing_refusal is not None:
            raise routing_refusal

    channel = Channel(mapping.CHANNEL, external_ref=request.id, policy=channel_policy)
    try:
        return request_evidence(session, deps, principal, body, request.id, channel)
    except Problem as refusal:
        if refusal.reason == "idempotency.key_reused":
            raise EdmError(
                EdmCode.INVALID_REQUEST,
                "oots.request_id_reused",
                "This QueryRequest id was used before for a different request.",
            ) from None
        raise mapping.edm_error(refusal) from None


# --- the second request: after the preview ----------------------------------------------------


def after_preview(
    session: Session,
    deps: ExchangeDependencies,
    principal: Principal,
    request: EvidenceRequest,
) -> Exchange:
    """The exchange a request carrying a PreviewLocation continues. It must be this requester's,
    for the same evidence type and person; otherwise the location is as good as unknown."""
    assert request.person is not None and request.evidence_type is not None and request.preview_location
    unknown = EdmError(
        EdmCode.INVALID_REQUEST,
        "oots.preview_location_unknown",
        "The PreviewLocation does not name a preview of this broker for this request.",
    )
    token = preview_service.token_in_location(request.preview_location)
    found = preview_service.find(session, deps, token) if token else None
    if found is None or found.exchange.requester_id != principal.id or found.exchange.channel != mapping.CHANNEL:
        raise unknown
    exchange = found.exchange
    spec = mapping.evidence_type_for(deps.registry, request.evidence_type)
    subject = mapping.subject_of(request.person).to_subject()
    if spec is None or spec.id != exchange.evidence_type_id or deps.pseudonymise(subject) != exchange.subject_pseudonym:
        raise unknown
    return exchange


# --- answers ----------------------------------------------------------------------------------


def failure(
    error: EdmError,
    *,
    now: datetime,
    origin: str,
    request_id: str | None,
    request: EvidenceRequest | None = None,
    status: int = 200,
) -> Answer:
    body = edm.error_response(
        error,
        request_id=request_id,
        now=now,
        error_provider=broker_agent(origin),
        requester=request.requester if request is not None else None,
        specification=specification_of(request),
    )
    return Answer(status, f"{edm.MEDIA_TYPE}; charset=UTF-8", body)


def answer(
    exchange: Exchange,
    request: EvidenceRequest,
    registry: RegistrySnapshot,
    *,
    now: datetime,
    origin: str,
    preview_location: Callable[[str], str],
) -> Answer:
    """The EDM answer for where the exchange stands: evidence, the preview redirect, or the refusal."""

    def fail(error: EdmError) -> Answer:
        return failure(error, now=now, origin=origin, request_id=request.id, request=request)

    if exchange.state == "delivered":
        if exchange.evidence is None or (exchange.expires_at is not None and as_utc(exchange.expires_at) <= now):
            return fail(
                EdmError(EdmCode.NOT_FOUND, "evidence.expired", "The evidence was delivered but is no longer kept.")
            )
        return _evidence_answer(exchange, request, registry, now, origin)
    if exchange.state == "awaiting_preview":
        return fail(
            EdmError(
                EdmCode.AUTHORIZATION,
                "preview.required",
                "The citizen must preview the evidence and approve its release first.",
                preview=edm.PreviewRedirect(preview_location(exchange.id), PREVIEW_DESCRIPTION),
            )
        )
    problem = problem_of(exchange)
    if problem is not None:
        return fail(mapping.edm_error(problem))
    # Not ended within the synchronous window (a remote authority): the EDM knows no "later".
    return fail(
        EdmError(
            EdmCode.TIMEOUT,
            "exchange.pending",
            "The authority did not answer in time; the exchange continues and may be requested again.",
        )
    )


def _evidence_answer(
    exchange: Exchange, request: EvidenceRequest, registry: RegistrySnapshot, now: datetime, origin: str
) -> Answer:
    assert exchange.evidence is not None and request.person is not None
    spec = registry.evidence_types.get(exchange.evidence_type_id)
    authority = registry.authorities.get(exchange.authority_id or "")
    if spec is None or authority is None:  # the registry changed under a delivered exchange
        return failure(
            EdmError(
                EdmCode.PROCESSING, "oots.registry_changed", "The evidence type or authority is no longer registered."
            ),
            now=now,
            origin=origin,
            request_id=request.id,
            request=request,
        )
    content_id = f"evidence-{exchange.id}@oots.broker"
    metadata = edm.EvidenceMetadata(
        identifier=exchange.id,
        person=request.person,
        issuing_authority=authority_agent(authority, classification=None),
        classification=mapping.classification_of(spec, request.evidence_type),
        titles=(Text(spec.title, "de"),),
        issuing_date=as_utc(exchange.updated_at).date(),
        media_type="application/xml",
        conforms_to=spec.namespace,
        content_id=content_id,
        registry_object_id=f"urn:uuid:{exchange.id}",
    )
    root = edm.evidence_response(
        request_id=request.id,
        now=now,
        provider=authority_agent(authority),
        requester=request.requester,
        evidence=[metadata],
        specification=specification_of(request),
    )
    content_type, body = edm.multipart_related(
        edm.Part(f"response-{exchange.id}@oots.broker", f"{edm.MEDIA_TYPE}; charset=UTF-8", root),
        [edm.Part(content_id, "application/xml", exchange.evidence)],
    )
    return Answer(200, content_type, body)


# --- the Data Service Directory ------------------------------------------------------------------

# NUTS level 1 code of each Land → its Regionalschlüssel (first two digits of the ARS).
NUTS1_TO_LAND = {
    "DE1": "08", "DE2": "09", "DE3": "11", "DE4": "12", "DE5": "04", "DE6": "02", "DE7": "06", "DE8": "13",
    "DE9": "03", "DEA": "05", "DEB": "07", "DEC": "10", "DED": "14", "DEE": "15", "DEF": "01", "DEG": "16",
}  # fmt: skip
LAND_TO_NUTS1 = {land: nuts for nuts, land in NUTS1_TO_LAND.items()}
_NUTS = re.compile(r"^DE[1-9A-G][0-9A-Z]{0,2}$")
_ARS = re.compile(r"^[0-9]{2,12}$")

DETERMINATIONS = {
    "PlaceOfBirth": (Text("Place of birth", "en"), Text("Geburtsort", "de")),
    "CurrentAddress": (Text("Current address", "en"), Text("Wohnort", "de")),
}


def area_of(admin_l2: str | None, admin_l3: str | None) -> str | None:
    """The ARS prefix a DSD query's jurisdiction parameters name (the finer one wins): an ARS
    prefix as it is, or a NUTS code of a Land (NUTS 1, or finer, read as its Land)."""
    for value in (admin_l3, admin_l2):
        if not value:
            continue
        value = value.strip().upper()
        if _ARS.match(value):
            return value
        if _NUTS.match(value) and value[:3] in NUTS1_TO_LAND:
            return NUTS1_TO_LAND[value[:3]]
        raise dsd.DsdError(
            dsd.DsdCode.INVALID_VALUE,
            "dsd.jurisdiction_invalid",
            f"Jurisdiction {value[:40]!r} is neither a German NUTS code nor a Regionalschlüssel prefix.",
        )
    return None


def search_data_services(
    registry: RegistrySnapshot,
    *,
    query_id: str | None,
    classification: str | None,
    country: str | None,
    admin_l2: str | None,
    admin_l3: str | None,
    origin: str,
) -> bytes:
    """The DSD answer (always a QueryResponse; failures carry their DSD:ERR code)."""
    try:
        found = _data_services(registry, query_id, classification, country, admin_l2, admin_l3, origin)
    except dsd.DsdError as error:
        return dsd.error_response(error)
    return dsd.query_response([found])


def _data_services(
    registry: RegistrySnapshot,
    query_id: str | None,
    classification: str | None,
    country: str | None,
    admin_l2: str | None,
    admin_l3: str | None,
    origin: str,
) -> dsd.DataServiceEvidenceType:
    if query_id != dsd.QUERY_ID:
        raise dsd.DsdError(
            dsd.DsdCode.UNKNOWN_QUERY, "dsd.query_unknown", f"Unknown queryId; this directory answers {dsd.QUERY_ID}."
        )
    if not classification or not country or max(len(classification), len(country)) > 300:
        raise dsd.DsdError(
            dsd.DsdCode.INVALID_QUERY,
            "dsd.parameter_missing",
            "The query needs evidence-type-classification and country-code.",
        )
    requested = edm.RequestedEvidenceType(identifier=classification, classification=classification)
    spec = mapping.evidence_type_for(registry, requested)
    if spec is None:
        raise dsd.DsdError(
            dsd.DsdCode.UNKNOWN_EVIDENCE_TYPE,
            "dsd.evidence_type_unknown",
            "The evidence type requested cannot be found.",
        )
    if country.strip().upper() != "DE":
        raise dsd.DsdError(
            dsd.DsdCode.NO_DATA_SERVICE, "dsd.no_data_service", "This directory lists data services in DE only."
        )
    area = area_of(admin_l2, admin_l3)
    routes = registry.routes.get(spec.id, {})
    in_area = sorted(
        {a for prefix, a in routes.items() if area is None or prefix.startswith(area) or area.startswith(prefix)}
    )
    authorities = [registry.authorities[a] for a in in_area if a in registry.authorities]
    described = _described(spec, classification)
    if not authorities:
        raise dsd.DsdError(
            dsd.DsdCode.NO_DATA_SERVICE, "dsd.no_data_service", "No data services were found for the given parameters."
        )
    if area is not None and len(authorities) > 1:
        with contextlib.suppress(Problem):  # too coarse an area: the user must say more, below
            authorities = [registry.route(spec.id, area)]
    if len(authorities) > 1:
        kinds = {a.register_kind for a in authorities}
        context_id = "PlaceOfBirth" if kinds == {"standesamt"} else "CurrentAddress"
        raise dsd.DsdError(
            dsd.DsdCode.ADDITIONAL_INPUT,
            "dsd.jurisdiction_required",
            f"{len(authorities)} authorities provide this evidence type; the competent one follows from the "
            f"user's {DETERMINATIONS[context_id][0].value.lower()} (give jurisdiction-admin-l3).",
            evidence_type=replace(
                described, determination=dsd.JurisdictionDetermination(context_id, DETERMINATIONS[context_id])
            ),
        )
    services = tuple(_access_service(registry, spec.id, a, origin) for a in authorities)
    return replace(described, access_services=services)


def _described(spec: EvidenceTypeSpec, classification: str) -> dsd.DataServiceEvidenceType:
    return dsd.DataServiceEvidenceType(
        identifier=spec.id,
        classification=classification,
        titles=(Text(spec.title, "de"),),
        distributions=(dsd.Distribution("application/xml", spec.namespace),),
        assurance_level=spec.assurance_level.capitalize(),
    )


def _access_service(
    registry: RegistrySnapshot, evidence_type_id: str, authority: AuthoritySpec, origin: str
) -> dsd.AccessService:
    prefix = mapping.route_prefix(registry, evidence_type_id, authority.id)
    publisher = dsd.Publisher(
        identifier=authority.id,
        scheme=edm.UNREGISTERED_SCHEME,
        name=Text(authority.name, "de"),
        country="DE",
        nuts=LAND_TO_NUTS1.get(prefix[:2]),
        local_unit=prefix if len(prefix) > 2 else None,
    )
    return dsd.AccessService(identifier=origin, scheme=edm.UNREGISTERED_SCHEME, publisher=publisher)
