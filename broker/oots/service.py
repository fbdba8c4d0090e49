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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from broker.clients.service import Principal
from broker.clock import as_utc
from broker.db.models import Exchange
from broker.exchange.dependencies import ExchangeDependencies
from broker.exchange.lifecycle import State, problem_of
from broker.exchange.service import Channel, ExchangeResult, request_evidence
from broker.oots import edm, mapping
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
    """An HTTP answer of the gateway: status, Content-Type, body and any further headers."""

    status: int
    media_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


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
    registry = deps.registry.get()
    spec = mapping.evidence_type_for(registry, request.evidence_type)
    routing_refusal: Problem | None = None
    jurisdiction = None
    if spec is not None:
        try:
            jurisdiction = mapping.jurisdiction_for(registry, spec, request.person, request.provider)
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
    spec = mapping.evidence_type_for(deps.registry.get(), request.evidence_type)
    subject = mapping.subject_of(request.person).to_subject()
    if (
        spec is None
        or spec.id != exchange.evidence_type_id
        or deps.pseudonyms.of(subject) != exchange.subject_pseudonym
    ):
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

    if exchange.state == State.DELIVERED:
        if exchange.evidence is None or (exchange.expires_at is not None and as_utc(exchange.expires_at) <= now):
            return fail(
                EdmError(EdmCode.NOT_FOUND, "evidence.expired", "The evidence was delivered but is no longer kept.")
            )
        return _evidence_answer(exchange, request, registry, now, origin)
    if exchange.state == State.AWAITING_PREVIEW:
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
    spec = registry.evidence_types.get(exchange.evidence_type_id or "")
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
