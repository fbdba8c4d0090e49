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

from lxml import etree
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from adapters.protocol import AdapterOutcome, EvidenceQuery, OutcomeKind, Subject
from broker import egress
from broker.clients import repository as clients
from broker.clients.service import Principal
from broker.consent import service as consent_service
from broker.db.models import Exchange
from broker.exchange import lifecycle, repository, terms
from broker.exchange.dependencies import ExchangeDependencies
from broker.exchange.lifecycle import State
from broker.exchange.schemas import EvidenceRequestIn
from broker.exchange.subject_check import differing_attribute, stated_idnr
from broker.logging import get_logger
from broker.ops import metrics
from broker.problems import Problem
from broker.registry.schemas import ASSURANCE_LEVELS, AuthoritySpec, EvidenceTypeSpec, PurposeSpec
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
    # A digest of the channel's own message (the OOTS QueryRequest), folded into the request
    # digest: a replay under the same key must then be the same message, not merely the same terms.
    message_digest: str | None = None


V1 = Channel()


@dataclass(frozen=True)
class ExchangeResult:
    exchange: Exchange
    # Why a refused or failed exchange ended, with every detail (field errors, candidate prefixes).
    problem: Problem | None = None
    replayed: bool = False
    # The authority is remote (push or pull): the query to send once the routed state is committed.
    pending: EvidenceQuery | None = None


class KeyTaken(Exception):
    """A concurrent request with the same Idempotency-Key claimed it first and has committed since:
    the caller rolls back and runs the request again, which then replays that exchange."""


def request_digest(deps: ExchangeDependencies, body: EvidenceRequestIn, message_digest: str | None = None) -> str:
    """The keyed digest of the request as sent: it tells a replay from a changed request (the
    Idempotency-Key check) and commits the log to the request without revealing its subject."""
    terms = body.model_dump(mode="json")
    document = terms if message_digest is None else {"request": terms, "message": message_digest}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return deps.pseudonyms.request_digest(canonical.encode())


def request_evidence(
    session: Session,
    deps: ExchangeDependencies,
    principal: Principal,
    body: EvidenceRequestIn,
    idempotency_key: str | None,
    channel: Channel = V1,
) -> ExchangeResult:
    digest = request_digest(deps, body, channel.message_digest)
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
    if body.callback_url is not None:
        check_callback_url(session, principal, body.callback_url)

    registry = deps.registry.get()
    named = terms.resolve(registry, body.evidence_type, body.purpose, body.legal_basis)
    # Only a consent of this requester is named in the row and the log; any other id is refused below.
    consent_id = body.consent_id
    if consent_id is not None and not consent_service.belongs_to(session, principal, consent_id):
        consent_id = None
    subject = body.subject.to_subject()
    now = deps.clock.now()
    exchange = Exchange(
        id=str(uuid.uuid4()),
        requester_id=principal.id,
        channel=channel.name,
        external_ref=channel.external_ref,
        idempotency_key=idempotency_key,
        request_digest=digest,
        # Registry ids only: what the caller typed never reaches the row or the log.
        evidence_type_id=named.evidence_type.id if named.evidence_type else None,
        jurisdiction=body.jurisdiction,
        purpose=named.purpose.id if named.purpose else None,
        legal_basis=named.legal_basis.id if named.legal_basis else None,
        consent_id=consent_id,
        explicit_request=body.explicit_request,
        preview=body.preview,
        subject_pseudonym=deps.pseudonyms.of(subject),
        callback_url=body.callback_url,
    )
    lifecycle.receive(session, exchange, at=now, requester=principal.name)
    if idempotency_key is not None:
        # Claim the key now, before any authority is asked: a concurrent request with the same key
        # waits here on the unique index until this transaction ends, then fails, and is replayed.
        try:
            session.flush()
        except IntegrityError:
            raise KeyTaken(idempotency_key) from None
    try:
        evidence_type, purpose = named.registered()
        if body.consent_id is not None and consent_id is None:
            raise Problem(
                403,
                "consent.invalid",
                "The consent does not exist for this client.",
                errors=[{"field": "consent_id", "message": "no consent of this client has this id"}],
            )
        exchange.preview = exchange.preview or evidence_type.preview_required
        if exchange.preview and deps.previews is None:
            raise Problem(501, "preview.unavailable", "This broker cannot hold evidence for a citizen's preview.")
        authorise(session, exchange, principal, deps, evidence_type, purpose)
        if channel.policy is not None:
            channel.policy(evidence_type)
        check_assurance(evidence_type, body.assurance)
        lifecycle.transition(session, exchange, State.AUTHORISED, at=now, requester=principal.name)
        authority = registry.route(evidence_type.id, body.jurisdiction)
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


def check_callback_url(session: Session, principal: Principal, url: str) -> None:
    """A callback goes only to an origin the requester registered (``--callback-origin``).

    Refused before the exchange exists: an exchange that ended refused would otherwise call
    the very URL it was refused for.
    """
    if not egress.is_under_origins(url, clients.callback_origins(session, principal.id)):
        raise Problem(
            422,
            "callback_url.not_allowed",
            "callback_url must point to one of the callback origins registered for this client.",
            errors=[{"field": "callback_url", "message": "not under a registered callback origin"}],
        )


def authorise(
    session: Session,
    exchange: Exchange,
    principal: Principal,
    deps: ExchangeDependencies,
    evidence_type: EvidenceTypeSpec,
    purpose: PurposeSpec,
) -> None:
    """Purpose, then consent or explicit request with a legal basis. Raises the refusal as a Problem."""
    if not principal.may_request(evidence_type.id, purpose.id):
        raise Problem(
            403,
            "policy.not_granted",
            f"Client {principal.name!r} may not request {evidence_type.id} for the purpose {purpose.id}.",
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


def check_assurance(evidence_type: EvidenceTypeSpec, given: str | None) -> None:
    """The evidence type's minimum eIDAS level of assurance, on every channel. Raises the refusal.

    A request that states no level leaves it to the online service, which vouches for the
    citizen's authentication as it does for the explicit request (the contract's example request
    states none); a stated level below the minimum is refused.
    """
    required = evidence_type.assurance_level
    if given is not None and ASSURANCE_LEVELS.index(given) < ASSURANCE_LEVELS.index(required):
        raise Problem(
            403,
            "assurance.insufficient",
            f"{evidence_type.id} needs the eIDAS level of assurance {required} or higher; "
            f"the citizen authenticated at {given}.",
            errors=[{"field": "assurance", "message": f"must be {required} or higher"}],
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
        with session.no_autoflush, metrics.authority_call(authority.id, authority.binding) as call:
            outcome = call.outcome = deps.adapters.for_authority(authority, session).fetch(query)
    except SQLAlchemyError:
        # An in-process adapter reads its register in this very transaction: a database error there
        # is the broker's own storage failing (a lost connection above all), and the transaction
        # cannot record anything more. It rolls back whole and the request answers 503
        # storage.unavailable (broker.problems): nothing was acknowledged, nothing half-written.
        raise
    except Exception as error:  # a faulty adapter must end the exchange, not the request
        log.warning("adapter_error", exchange=exchange.id, authority=authority.id, error_type=type(error).__name__)
        problem = Problem(502, "authority.error", "The authority failed to answer.")
        lifecycle.transition(session, exchange, State.FAILED, at=deps.clock.now(), requester=requester, problem=problem)
        return problem
    return conclude(session, deps, exchange, requester, evidence_type, outcome, query.subject)


def conclude(
    session: Session,
    deps: ExchangeDependencies,
    exchange: Exchange,
    requester: str,
    evidence_type: EvidenceTypeSpec,
    outcome: AdapterOutcome,
    subject: Subject | None,
) -> Problem | None:
    """Check what the authority answered (schema, then whom it is about: ``subject``, the one
    requested; None if that is no longer known), seal it, and end the exchange. Returns why it failed."""
    problem = _problem_of_outcome(outcome)
    if problem is None:
        assert outcome.evidence is not None
        try:
            root = deps.evidence.check(outcome.evidence, evidence_type.namespace, evidence_type.root_element)
        except XmlIntakeError as invalid:
            where = f" at {invalid.path}" if invalid.path else ""
            problem = Problem(
                502,
                "evidence.invalid",
                f"The authority's evidence failed the {evidence_type.id} schema{where}: {invalid.detail}",
            )
        else:
            problem = _problem_of_subject(exchange, evidence_type, root, subject)
            if problem is None:
                problem = _problem_of_consent_subject(session, deps, exchange, evidence_type, root)
            if problem is None:
                if exchange.preview:
                    hold_for_preview(session, deps, exchange, requester, outcome.evidence)
                else:
                    deliver(session, deps, exchange, requester, root)
                return None
    lifecycle.transition(session, exchange, State.FAILED, at=deps.clock.now(), requester=requester, problem=problem)
    return problem


def _problem_of_subject(
    exchange: Exchange, evidence_type: EvidenceTypeSpec, root: etree._Element, subject: Subject | None
) -> Problem | None:
    """Why schema-valid evidence is still not delivered: it is not (or not provably) about the
    subject asked for. None when it is."""
    if evidence_type.subject is None or subject is None:
        why = "the registry names no subject paths for the type" if subject else "the request's subject is gone"
        log.warning("evidence_subject_unverifiable", exchange=exchange.id, evidence_type=evidence_type.id)
        return Problem(
            502,
            "evidence.subject_unverifiable",
            f"The broker cannot tell whether the {evidence_type.id} document is about the subject asked for "
            f"({why}); it was not delivered.",
        )
    attribute = differing_attribute(root, evidence_type.subject, subject)
    if attribute is None:
        return None
    # The attribute's name only: the values are personal data.
    log.warning("evidence_subject_mismatch", exchange=exchange.id, authority=exchange.authority_id, attribute=attribute)
    return Problem(
        502,
        "evidence.subject_mismatch",
        f"The authority's evidence is about another person than the one requested ({attribute} differs); "
        "it was not delivered.",
    )


def _problem_of_consent_subject(
    session: Session,
    deps: ExchangeDependencies,
    exchange: Exchange,
    evidence_type: EvidenceTypeSpec,
    root: etree._Element,
) -> Problem | None:
    """Keep the IDNr the evidence states (as a pseudonym: it tells namesakes apart in the
    citizen's pages), and refuse evidence on a consent whose granting citizen stated another
    IDNr (a namesake's grant of a consent asked by name). None when nothing stands against it."""
    idnr = stated_idnr(root, evidence_type.subject) if evidence_type.subject is not None else None
    exchange.subject_idnr_pseudonym = deps.pseudonyms.of(Subject(idnr=idnr)) if idnr else None
    if exchange.consent_id is None:
        return None
    bound = consent_service.bound_idnr_pseudonym(session, exchange.consent_id)
    if bound is None or bound == exchange.subject_idnr_pseudonym:
        return None
    log.warning("consent_subject_mismatch", exchange=exchange.id, consent=exchange.consent_id)
    return Problem(
        403,
        "consent.subject_mismatch",
        "The evidence is about another person than the citizen who granted the consent; it was not delivered.",
    )


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


def deliver(
    session: Session, deps: ExchangeDependencies, exchange: Exchange, requester: str, evidence: bytes | etree._Element
) -> None:
    """Seal the checked evidence (its bytes, or the root the check parsed) and deliver it; the
    delivery entry's seq is kept for the receipt."""
    sealed = deps.sealer.seal(evidence)
    now = deps.clock.now()
    exchange.evidence = sealed
    exchange.evidence_digest = hashlib.sha256(sealed).hexdigest()
    exchange.expires_at = now + deps.retention
    entry = lifecycle.transition(session, exchange, State.DELIVERED, at=now, requester=requester)
    assert entry is not None
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
