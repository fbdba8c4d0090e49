"""The OOTS gateway: an EDM evidence request becomes an ordinary exchange, its end an EDM answer.

One way to do each thing: the exchange is the one ``broker.exchange.service.request_evidence``
runs for the JSON API (same authorisation, routing, adapters, schema check, seal and log),
reached through the ``oots`` channel with the QueryRequest id as external reference and
idempotency key, plus the refusals only EDM requests can earn (level of assurance, preview
possibility, the forms asked for in DistributedAs). What remains here is reading the request
into the exchange's terms and writing its outcome back in the EDM's (:func:`answer`: the EC
test cases' expected answers).

The service never commits; the route is the transaction boundary.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from broker.clients.service import Principal
from broker.clock import as_utc
from broker.db.models import Exchange
from broker.exchange.dependencies import ExchangeDependencies
from broker.exchange.lifecycle import State, problem_of
from broker.exchange.service import Channel, ExchangeResult, request_evidence
from broker.logging import get_logger
from broker.oots import edm, mapping
from broker.oots.edm import Agent, EdmCode, EdmError, EvidenceRequest, Text
from broker.oots.human_readable import PdfFacts, render_pdf
from broker.preview import service as preview_service
from broker.problems import Problem
from broker.registry.schemas import AuthoritySpec, EvidenceTypeSpec
from broker.registry.service import RegistrySnapshot

log = get_logger(__name__)

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
    identifier, scheme = mapping.oots_identity(authority)
    return Agent(
        identifier=identifier,
        scheme=scheme,
        names=(Text(authority.name, "de"),),
        classification=classification,
        country="DE",
    )


def specification_of(request: EvidenceRequest | None) -> str:
    """The version to answer in: the request's where the gateway speaks it (``edm.EDM_VERSIONS``)."""
    version = edm.edm_version(request.specification if request is not None else None)
    return version.specification if version is not None else edm.DEFAULT_SPECIFICATION


# --- checks before any exchange ---------------------------------------------------------------


def check(principal: Principal, request: EvidenceRequest) -> EvidenceRequest:
    """What must hold before the request is looked at further. Raises EdmError. Returns the
    request with the EvidenceRequester the client is registered as first: the one answered."""
    if not edm.is_request_id(request.id):
        # The answer must name the request by this id, and the rules want a urn:uuid (R-EDM-REQ-S004,
        # R-EDM-RESP-S004): a request in another form cannot be answered conformantly.
        raise EdmError(
            EdmCode.INVALID_REQUEST, "oots.request_id_invalid", "The request id must be a urn:uuid (RFC 4122)."
        )
    if request.specification is None:
        raise EdmError(
            EdmCode.INVALID_REQUEST, "oots.specification_missing", "The request has no SpecificationIdentifier."
        )
    if edm.edm_version(request.specification) is None:
        raise EdmError(
            EdmCode.UNSUPPORTED,
            "oots.unsupported_specification",
            f"SpecificationIdentifier {request.specification!r} is not supported; "
            f"this gateway speaks {', '.join(edm.SUPPORTED_SPECIFICATIONS)}.",
        )
    if principal.agent_id is None:
        raise EdmError(
            mapping.code_for("oots.requester_unregistered"),
            "oots.requester_unregistered",
            "This client has no OOTS agent identifier; it cannot send EDM requests.",
        )
    if not request.requesters:
        raise EdmError(EdmCode.INVALID_REQUEST, "oots.requester_missing", "The request names no EvidenceRequester.")
    matched = mapping.matching_requester(principal.agent_id, request.requesters)
    if matched is None:
        raise EdmError(
            mapping.code_for("oots.requester_mismatch"),
            "oots.requester_mismatch",
            "No EvidenceRequester of the request is the agent this client is registered as.",
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
    return replace(request, requesters=(matched, *(r for r in request.requesters if r is not matched)))


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
    distributions = request.evidence_type.distributions

    def channel_policy(evidence_type_spec: EvidenceTypeSpec) -> None:
        policy(evidence_type_spec)
        if routing_refusal is not None:
            raise routing_refusal
        # Before the authority is asked: evidence in no form the requester takes is not fetched.
        mapping.delivered_distributions(evidence_type_spec, distributions)

    # The whole message decides whether a request id used again is a resend (the same answer) or
    # a different request (refused), not only the terms the exchange reads of it.
    channel = Channel(
        mapping.CHANNEL, external_ref=request.id, policy=channel_policy, message_digest=request.message_digest
    )
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
    # The answer carries the reason code in rs:Exception/@detail; the log keeps it as a field.
    log.info("oots_error_answered", code=str(error.code), reason=error.reason, status=status)
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
    """The EDM answer for where the exchange stands, as the EC test cases expect it:

    * delivered: the evidence (TC01; TC06 once the citizen approved);
    * the authority holds nothing about the subject (TC02), or the citizen declined the release
      in the preview (TC08): a successful response without evidence (an empty RegistryObjectList);
    * awaiting the citizen: to a first request the preview redirect (EDM:ERR:0002,
      PreviewRequired); to a request that came back with the PreviewLocation and was held for
      the decision until T3 passed, EDM:ERR:0005 with the preview slots (TC09, preview closed);
    * the preview expired undecided (T2; TC09, preview timed out): EDM:ERR:0005 with the slots;
    * any other refusal or failure: its EDM error (a base registry's error stays EDM:ERR:0008,
      its timeout EDM:ERR:0005; TC03);
    * not ended within T1 (a remote authority): EDM:ERR:0005, the exchange goes on and the same
      request may be sent again.
    """

    def fail(error: EdmError) -> Answer:
        return failure(error, now=now, origin=origin, request_id=request.id, request=request)

    def redirect() -> edm.PreviewRedirect:
        return edm.PreviewRedirect(preview_location(exchange.id), PREVIEW_DESCRIPTION)

    if exchange.state == State.DELIVERED:
        if exchange.evidence is None or (exchange.expires_at is not None and as_utc(exchange.expires_at) <= now):
            return fail(
                EdmError(EdmCode.NOT_FOUND, "evidence.expired", "The evidence was delivered but is no longer kept.")
            )
        return _evidence_answer(exchange, request, registry, now, origin)
    if exchange.state == State.AWAITING_PREVIEW:
        if request.preview_location:
            until = f" (until {as_utc(exchange.expires_at):%Y-%m-%d %H:%M} UTC)" if exchange.expires_at else ""
            return fail(
                EdmError(
                    EdmCode.TIMEOUT,
                    "preview.pending",
                    f"The citizen has not decided in the preview yet; it stays open{until}. "
                    "Send the request again once the citizen returns.",
                    preview=redirect(),
                )
            )
        return fail(
            EdmError(
                EdmCode.AUTHORIZATION,
                "preview.required",
                "The citizen must preview the evidence and approve its release first.",
                preview=redirect(),
            )
        )
    problem = problem_of(exchange)
    if problem is not None:
        if problem.reason in NO_EVIDENCE:
            return _without_evidence(exchange, request, registry, now, origin)
        if problem.reason == "preview.expired":
            return fail(EdmError(EdmCode.TIMEOUT, problem.reason, problem.detail, preview=redirect()))
        return fail(mapping.edm_error(problem))
    # Not ended within T1 (a remote authority): the EDM knows no "later".
    return fail(
        EdmError(
            EdmCode.TIMEOUT,
            "exchange.pending",
            "The authority did not answer in time; the exchange continues and may be requested again.",
        )
    )


# Ends of an exchange that are answers, not errors: the evidence provider looked and has nothing
# to give (TC02: no evidence matches the subject; TC08: the citizen declined in the preview).
NO_EVIDENCE = frozenset({"subject.not_found", "preview.declined"})


def _without_evidence(
    exchange: Exchange, request: EvidenceRequest, registry: RegistrySnapshot, now: datetime, origin: str
) -> Answer:
    """A successful response with an empty RegistryObjectList, from the authority that was asked."""
    authority = registry.authorities.get(exchange.authority_id or "")
    if authority is None:  # the registry changed under the exchange
        return failure(_REGISTRY_CHANGED, now=now, origin=origin, request_id=request.id, request=request)
    log.info("oots_answered_without_evidence", reason=exchange.reason)
    root = edm.evidence_response(
        request_id=request.id,
        now=now,
        provider=authority_agent(authority),
        requester=request.requester,
        evidence=[],
        specification=specification_of(request),
    )
    return Answer(200, f"{edm.MEDIA_TYPE}; charset=UTF-8", root)


_REGISTRY_CHANGED = EdmError(
    EdmCode.PROCESSING, "oots.registry_changed", "The evidence type or authority is no longer registered."
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
    # Letters and digits before the "@": the rules' pattern for the cid: reference.
    content_id = f"evidence{exchange.id.replace('-', '')}@oots.broker"
    metadata = edm.EvidenceMetadata(
        identifier=exchange.id,
        person=request.person,
        issuing_authority=authority_agent(authority, classification=None),
        classification=mapping.classification_of(spec, request.evidence_type),
        titles=(Text(spec.title, "de"),),
        issuing_date=as_utc(exchange.updated_at).date(),
        media_type="application/xml",
        conforms_to=spec.data_model or spec.namespace,
        content_id=content_id,
        registry_object_id=f"urn:uuid:{exchange.id}",
        descriptions=(Text(spec.description, "de"),) if spec.description else (),
    )
    # DistributedAs of the request answered (a second request may ask otherwise than the first).
    requested = request.evidence_type.distributions if request.evidence_type is not None else ()
    try:
        deliveries = mapping.delivered_distributions(spec, requested)
    except Problem as refusal:
        return failure(mapping.edm_error(refusal), now=now, origin=origin, request_id=request.id, request=request)
    items: list[edm.EvidenceMetadata] = []
    parts: list[edm.Part] = []
    for delivery in deliveries:
        if delivery.distribution.media_type == mapping.XML:
            items.append(metadata)
            parts.append(edm.Part(content_id, mapping.XML, exchange.evidence))
            continue
        # The PDF is a document of its own (its own Evidence identifier, a UUID as the rules want),
        # derived from the exchange so that a resent request gets the same identifiers.
        pdf_id = str(uuid.uuid5(uuid.UUID(exchange.id), "human-readable-version"))
        pdf = replace(
            metadata,
            identifier=pdf_id,
            media_type=mapping.PDF,
            conforms_to=None,
            content_id=f"pdf{pdf_id.replace('-', '')}@oots.broker",
            registry_object_id=f"urn:uuid:{pdf_id}",
            repository_item_title=HUMAN_READABLE_VERSION if delivery.human_readable else None,
        )
        facts = PdfFacts(spec.title, authority.name, as_utc(exchange.updated_at), exchange.id)
        items.append(pdf)
        parts.append(edm.Part(pdf.content_id, mapping.PDF, render_pdf(exchange.evidence, facts)))
    root = edm.evidence_response(
        request_id=request.id,
        now=now,
        provider=authority_agent(authority),
        requester=request.requester,
        evidence=items,
        specification=specification_of(request),
    )
    content_type, body = edm.multipart_related(
        edm.Part(f"response-{exchange.id}@oots.broker", f"{edm.MEDIA_TYPE}; charset=UTF-8", root), parts
    )
    return Answer(200, content_type, body)


# How the PDF that accompanies a structured document is marked (its RepositoryItemRef's title):
# EDM v1 has no element for a human-readable version, so it travels as a registry object of its
# own with Distribution/Format application/pdf, which the rules allow beside the XML one.
HUMAN_READABLE_VERSION = "HumanReadableVersion"
