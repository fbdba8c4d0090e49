"""The life of an evidence request: received → authorised → routed → delivered | rejected | failed.

The caller's transaction spans the whole exchange; the service never commits. Refusals and
failures are not exceptions here: they end the exchange in a terminal state that is recorded
in the log and committed like any other outcome, and the caller turns it into a problem answer.
Every change of state goes through :mod:`broker.exchange.lifecycle`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from adapters.protocol import AdapterOutcome, EvidenceQuery, OutcomeKind
from broker.clients.service import Principal
from broker.consent import service as consent_service
from broker.db.models import Exchange
from broker.exchange import lifecycle, repository
from broker.exchange.dependencies import ExchangeDependencies
from broker.exchange.lifecycle import State
from broker.exchange.schemas import EvidenceRequestIn
from broker.logging import get_logger
from broker.problems import Problem
from broker.registry.schemas import AuthoritySpec, EvidenceTypeSpec
from broker.xml.hardened import XmlIntakeError

log = get_logger(__name__)


@dataclass(frozen=True)
class Channel:
    """Where a request came in. The OOTS gateway names its own channel and adds its refusals."""

    name: str = "v1"
    # The caller's own reference of the request (the OOTS QueryRequest id).
    external_ref: str | None = None
    # Refusals of the channel (raise Problem), checked after the broker's own, before routing.
    policy: Callable[[EvidenceTypeSpec], None] | None = None


V1 = Channel()


@dataclass(frozen=True)
class ExchangeResult:
    exchange: Exchange
    # Why a refused or failed exchange ended, with every detail (field errors, candidate prefixes).
    problem: Problem | None = None
    replayed: bool = False
    # The authority is remote (push or pull): the query to send once the routed state is committed.
    pending: EvidenceQuery | None = None


def request_digest(body: EvidenceRequestIn) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def request_evidence(
    session: Session,
    deps: ExchangeDependencies,
    principal: Principal,
    body: EvidenceRequestIn,
    idempotency_key: str | None,
    channel: Channel = V1,
) -> ExchangeResult:
    digest = request_digest(body)
    if idempotency_key is not None:
        earlier = repository.by_idempotency_key(session, principal.id, idempotency_key)
        if earlier is not None:
            if earlier.request_digest != digest:
                raise Problem(
                    409,
                    "idempotency.key_reused",
                    "This Idempotency-Key was used before with a different request body.",
                )
            return ExchangeResult(earlier, lifecycle.problem_of(earlier), replayed=True)

    registry = deps.registry.get()
    subject = body.subject.to_subject()
    now = deps.clock.now()
    exchange = Exchange(
        id=str(uuid.uuid4()),
        requester_id=principal.id,
        channel=channel.name,
        external_ref=channel.external_ref,
        idempotency_key=idempotency_key,
        request_digest=digest,
        evidence_type_id=body.evidence_type,
        jurisdiction=body.jurisdiction,
        purpose=body.purpose,
        legal_basis=body.legal_basis,
        consent_id=body.consent_id,
        explicit_request=body.explicit_request,
        preview=body.preview,
        subject_pseudonym=deps.pseudonyms.of(subject),
        callback_url=body.callback_url,
    )
    lifecycle.receive(session, exchange, at=now, requester=principal.name)
    try:
        evidence_type = registry.evidence_type(body.evidence_type)
        exchange.preview = exchange.preview or evidence_type.preview_required
        if exchange.preview and deps.previews is None:
            raise Problem(501, "preview.unavailable", "This broker cannot hold evidence for a citizen's preview.")
        authorise(session, exchange, principal, deps)
        if channel.policy is not None:
            channel.policy(evidence_type)
        lifecycle.transition(session, exchange, State.AUTHORISED, at=now, requester=principal.name)
        authority = registry.route(body.evidence_type, body.jurisdiction)
    except Problem as refusal:
        lifecycle.transition(
            session, exchange, State.REJECTED, at=deps.clock.now(), requester=principal.name, problem=refusal
        )
        return ExchangeResult(exchange, refusal)
    exchange.authority_id = authority.id
    lifecycle.transition(session, exchange, State.ROUTED, at=now, requester=principal.name)
    query = EvidenceQuery(exchange.id, evidence_type.id, authority.id, body.jurisdiction, subject)
    if authority.binding != "in_process":
        # No transaction may stay open across a network call: the caller commits, then asks.
        return ExchangeResult(exchange, pending=query)
    return ExchangeResult(exchange, complete(session, deps, exchange, principal.name, evidence_type, authority, query))


def authorise(session: Session, exchange: Exchange, principal: Principal, deps: ExchangeDependencies) -> None:
    """Purpose, then consent or explicit request with a legal basis. Raises the refusal as a Problem."""
    if not principal.may_request(exchange.evidence_type_id, exchange.purpose):
        raise Problem(
            403,
            "policy.not_granted",
            f"Client {principal.name!r} may not request {exchange.evidence_type_id} "
            f"for the purpose {exchange.purpose!r}.",
        )
    if exchange.consent_id is not None:
        consent_service.use_consent(session, exchange, principal, deps.clock.now())
        return
    if not exchange.explicit_request:
        raise Problem(
            422,
            "policy.basis_missing",
            "Give consent_id, or explicit_request: true with a legal_basis.",
            errors=[{"field": "explicit_request", "message": "must be true when no consent_id is given"}],
        )
    if not exchange.legal_basis:
        raise Problem(
            422,
            "policy.legal_basis_missing",
            "An explicit request needs a legal_basis.",
            errors=[{"field": "legal_basis", "message": "required with explicit_request"}],
        )


def complete(
    session: Session,
    deps: ExchangeDependencies,
    exchange: Exchange,
    requester: str,
    evidence_type: EvidenceTypeSpec,
    authority: AuthoritySpec,
    query: EvidenceQuery,
) -> Problem | None:
    """Ask an in-process authority, check and seal what it returns, end the exchange. Returns why it failed."""
    try:
        # The exchange's pending rows need not reach the database before the register lookup:
        # flushing them with the delivery saves a round trip on the hot path.
        with session.no_autoflush:
            outcome = deps.adapters.for_authority(authority, session).fetch(query)
    except Exception as error:  # a faulty adapter must end the exchange, not the request
        log.warning("adapter_error", exchange=exchange.id, authority=authority.id, error_type=type(error).__name__)
        problem = Problem(502, "authority.error", "The authority failed to answer.")
        lifecycle.transition(session, exchange, State.FAILED, at=deps.clock.now(), requester=requester, problem=problem)
        return problem
    return conclude(session, deps, exchange, requester, evidence_type, outcome)


def conclude(
    session: Session,
    deps: ExchangeDependencies,
    exchange: Exchange,
    requester: str,
    evidence_type: EvidenceTypeSpec,
    outcome: AdapterOutcome,
) -> Problem | None:
    """Check and seal what the authority answered, and end the exchange. Returns why it failed."""
    problem = _problem_of_outcome(outcome)
    if problem is None:
        assert outcome.evidence is not None
        try:
            deps.evidence.check(outcome.evidence, evidence_type.namespace, evidence_type.root_element)
        except XmlIntakeError as invalid:
            where = f" at {invalid.path}" if invalid.path else ""
            problem = Problem(
                502,
                "evidence.invalid",
                f"The authority's evidence failed the {evidence_type.id} schema{where}: {invalid.detail}",
            )
        else:
            if exchange.preview:
                hold_for_preview(session, deps, exchange, requester, outcome.evidence)
            else:
                deliver(session, deps, exchange, requester, outcome.evidence)
            return None
    lifecycle.transition(session, exchange, State.FAILED, at=deps.clock.now(), requester=requester, problem=problem)
    return problem


def _problem_of_outcome(outcome: AdapterOutcome) -> Problem | None:
    """Why an authority's answer ends the exchange ``failed``; None when it carries evidence."""
    if outcome.kind is OutcomeKind.NOT_FOUND:
        return Problem(404, "subject.not_found", "No register entry of the authority matches the subject.")
    if outcome.kind is OutcomeKind.AMBIGUOUS:
        return Problem(
            409,
            "subject.ambiguous",
            "Several register entries match the subject; give more attributes (idnr, birth_place or birth_name).",
        )
    if outcome.kind is OutcomeKind.FAILED or outcome.evidence is None:
        return Problem(
            504 if outcome.timed_out else 502,
            outcome.reason or "authority.failed",
            f"The authority could not answer: {outcome.detail}",
        )
    return None


def deliver(session: Session, deps: ExchangeDependencies, exchange: Exchange, requester: str, evidence: bytes) -> None:
    """Seal the checked evidence and deliver it; the delivery entry's seq is kept for the receipt."""
    sealed = deps.sealer.seal(evidence)
    now = deps.clock.now()
    exchange.evidence = sealed
    exchange.evidence_digest = hashlib.sha256(sealed).hexdigest()
    exchange.expires_at = now + deps.retention
    entry = lifecycle.transition(session, exchange, State.DELIVERED, at=now, requester=requester)
    assert entry is not None
    session.flush()
    exchange.delivery_log_seq = entry.seq


def hold_for_preview(
    session: Session, deps: ExchangeDependencies, exchange: Exchange, requester: str, evidence: bytes
) -> None:
    """Keep the checked (not yet sealed) evidence until the citizen decides in the preview.

    The log entry commits to the digest of exactly what the citizen is shown; sealing and the
    ``delivered`` entry follow only on approval (``broker.preview``).
    """
    assert deps.previews is not None  # refused before routing otherwise
    exchange.evidence = evidence
    exchange.evidence_digest = hashlib.sha256(evidence).hexdigest()
    exchange.expires_at = deps.previews.open(session, exchange)
    lifecycle.transition(session, exchange, State.AWAITING_PREVIEW, at=deps.clock.now(), requester=requester)
