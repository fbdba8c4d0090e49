"""Consent: the citizen's permission for one requester, evidence types and purpose.

A requester asks (:func:`request`, state ``requested``); the citizen, signed in, sees who asks
for what and why and grants or declines (:func:`decide`). Only a granted consent authorises an
exchange, and only while it is unrevoked, valid, of the requesting client, about the exchange's
subject, covering its evidence type and purpose, and not used up (:func:`use_consent`). The
grant is a signed artefact (:mod:`broker.consent.artefact`). Either side may revoke, with
effect at once: the requester withdraws its request or gives up a grant (:func:`revoke`), the
citizen revokes in the cockpit (:func:`revoke_by_citizen`).

Requests, grants, declines and revocations are log entries naming registry ids, the consent id,
the requester and the subject's pseudonym, never free text or personal data; ``actor`` says
who acted: ``"citizen"`` or the requester's name.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy.orm import Session

from broker.audit.service import EntryFacts, record
from broker.clients import repository as clients
from broker.clients.service import Principal
from broker.clock import as_utc
from broker.consent import repository
from broker.consent.artefact import ConsentSigner, consent_claims
from broker.consent.schemas import ConsentIn
from broker.db.models import Consent, Exchange
from broker.problems import Problem
from broker.registry.service import RegistrySnapshot

REQUESTED = "requested"
GRANTED = "granted"
DECLINED = "declined"
# The log's actor for what the signed-in citizen decides (never their name: the subject
# pseudonym already says whose consent it is).
CITIZEN_ACTOR = "citizen"


# --- the requester's side ----------------------------------------------------------------------


def request(
    session: Session, principal: Principal, body: ConsentIn, pseudonym: str, now: datetime, registry: RegistrySnapshot
) -> Consent:
    """Record a consent request for the citizen to decide. Raises the refusal as a Problem."""
    evidence_types = list(dict.fromkeys(body.evidence_types))
    purpose, legal_basis = _registered_terms(registry, body, evidence_types)
    valid_from = as_utc(body.valid_from) if body.valid_from is not None else now
    valid_until = as_utc(body.valid_until)
    if valid_until <= valid_from:
        raise Problem(422, "consent.invalid_period", "valid_until must lie after valid_from.")
    if valid_until <= now:
        # The citizen could only grant it for a time already over.
        raise Problem(422, "consent.invalid_period", "valid_until must lie in the future.")
    for evidence_type in evidence_types:
        if not principal.may_request(evidence_type, purpose):
            raise Problem(
                403,
                "policy.not_granted",
                f"Client {principal.name!r} may not request {evidence_type} for this purpose.",
            )
    consent = repository.add(
        session,
        Consent(
            id=str(uuid.uuid4()),
            subject_pseudonym=pseudonym,
            requester_id=principal.id,
            evidence_types=evidence_types,
            purpose=purpose,
            legal_basis=legal_basis,
            valid_from=valid_from,
            valid_until=valid_until,
            max_uses=body.max_uses,
            uses=0,
            created_at=now,
            state=REQUESTED,
        ),
    )
    _log(session, "consent_requested", consent, principal.name, principal.name, now)
    return consent


def _registered_terms(registry: RegistrySnapshot, body: ConsentIn, evidence_types: list[str]) -> tuple[str, str | None]:
    """The request's purpose id and legal basis id; raises the 422 refusal naming every field the
    registry does not know (a consent is a log entry: no free text may reach it), or the legal
    basis that does not cover an evidence type."""
    errors = [
        {"field": f"evidence_types.{index}", "reason": "evidence_type.unknown", "message": "not in the registry"}
        for index, evidence_type in enumerate(body.evidence_types)
        if evidence_type not in registry.evidence_types
    ]
    purpose = registry.purpose(body.purpose)
    if purpose is None:
        errors.append({"field": "purpose", "reason": "purpose.unknown", "message": "not in the registry"})
    basis = registry.legal_basis(body.legal_basis) if body.legal_basis is not None else None
    if body.legal_basis is not None and basis is None:
        errors.append({"field": "legal_basis", "reason": "legal_basis.unknown", "message": "not in the registry"})
    if purpose is None or errors:
        fields = ", ".join(e["field"] for e in errors)
        raise Problem(422, errors[0]["reason"], f"The registry holds no such {fields}.", errors=errors)
    if basis is not None:
        uncovered = [t for t in evidence_types if t not in basis.evidence_types]
        if uncovered:
            raise Problem(
                422,
                "legal_basis.not_applicable",
                f"The legal basis {basis.id} does not cover {', '.join(uncovered)}.",
                errors=[{"field": "legal_basis", "message": f"does not cover {', '.join(uncovered)}"}],
            )
    return purpose.id, basis.id if basis is not None else None


def revoke(session: Session, principal: Principal, consent_id: str, now: datetime) -> Consent:
    """The requester withdraws its request or gives up its grant (idempotent)."""
    consent = owned(session, principal, consent_id)
    if repository.revoke(session, consent, now):
        _log(session, "consent_revoked", consent, principal.name, principal.name, now)
    return consent


def belongs_to(session: Session, principal: Principal, consent_id: str) -> bool:
    consent = repository.get(session, consent_id)
    return consent is not None and consent.requester_id == principal.id


def owned(session: Session, principal: Principal, consent_id: str) -> Consent:
    consent = repository.get(session, consent_id)
    if consent is None or consent.requester_id != principal.id:
        raise Problem(404, "consent.not_found", f"No consent {consent_id!r} for this client.")
    return consent


# --- the citizen's side ------------------------------------------------------------------------
# ``pseudonyms``: the signed-in citizen's subject pseudonyms (one from the IDNr, one from the
# name triple; see broker/keys/pseudonym.py). The citizen routes log refusals themselves.


def of_citizen(session: Session, pseudonyms: Collection[str]) -> list[Consent]:
    """Every consent about the citizen, in every state, newest first (the cockpit)."""
    return repository.of_subjects(session, pseudonyms)


def for_citizen(session: Session, consent_id: str, pseudonyms: Collection[str]) -> Consent:
    """The consent, if it is about the signed-in citizen. Records nothing.

    404 ``consent.not_found`` for an unknown or malformed id; 403 ``citizen.not_subject`` for a
    consent about someone else.
    """
    consent = repository.get(session, consent_id) if _is_consent_id(consent_id) else None
    if consent is None:
        # The id is not echoed: it came from a link anyone may have typed anything into.
        raise Problem(404, "consent.not_found", "There is no such consent.")
    if consent.subject_pseudonym not in pseudonyms:
        raise Problem(403, "citizen.not_subject", "This consent is about another person.")
    return consent


def decide(
    session: Session,
    consent_id: str,
    pseudonyms: Collection[str],
    grant: bool,
    now: datetime,
    signer: ConsentSigner,
    citizen_idnr_pseudonym: str | None = None,
) -> Consent:
    """The citizen grants (signing the artefact) or declines a requested consent.

    A grant is bound to the IDNr the citizen's sign-in stated (``citizen_idnr_pseudonym``):
    evidence fetched on it must state the same IDNr (:func:`bound_idnr_pseudonym`), so that a
    namesake's grant of a consent asked by name authorises nothing about anyone else.

    409 ``consent.decided`` if it was decided already (naming the state), ``consent.revoked``
    if the requester withdrew it, ``consent.expired`` for a grant after its validity ended.
    """
    consent = for_citizen(session, consent_id, pseudonyms)
    _check_open(consent)
    if grant and now >= as_utc(consent.valid_until):
        raise Problem(409, "consent.expired", "The period this consent was asked for is over; it cannot be granted.")
    requester = clients.name_of(session, consent.requester_id)
    artefact = signer.sign(consent_claims(consent, requester, signer.issuer, now)) if grant else None
    bound = citizen_idnr_pseudonym if grant else None
    if not repository.decide(session, consent, GRANTED if grant else DECLINED, now, artefact, bound):
        # Another decision (another tab, another process) or the withdrawal came first: it stands.
        _check_open(consent)
        raise _decided(consent)  # not reached: the refreshed consent is no longer open
    _log(session, "consent_granted" if grant else "consent_declined", consent, requester, CITIZEN_ACTOR, now)
    return consent


def bound_idnr_pseudonym(session: Session, consent_id: str) -> str | None:
    """The pseudonym of the IDNr the granting citizen's sign-in stated, if it stated one."""
    return repository.citizen_idnr_pseudonym(session, consent_id)


def revoke_by_citizen(session: Session, consent_id: str, pseudonyms: Collection[str], now: datetime) -> Consent:
    """The citizen revokes a grant (or a request still open), with effect at once; idempotent.

    A declined consent has nothing to revoke and is returned as it is.
    """
    consent = for_citizen(session, consent_id, pseudonyms)
    if consent.state != DECLINED and repository.revoke(session, consent, now):
        _log(session, "consent_revoked", consent, clients.name_of(session, consent.requester_id), CITIZEN_ACTOR, now)
    return consent


def requester_name(session: Session, consent: Consent) -> str:
    """The name of the client that asked (for the citizen's pages)."""
    return clients.name_of(session, consent.requester_id)


def _check_open(consent: Consent) -> None:
    """Refuse a decision on a consent decided already or withdrawn by the requester (409)."""
    if consent.state != REQUESTED:
        raise _decided(consent)
    if consent.revoked_at is not None:
        raise Problem(409, "consent.revoked", "The requester withdrew this request; there is nothing to decide.")


def _decided(consent: Consent) -> Problem:
    return Problem(409, "consent.decided", f"The consent was already {consent.state}.", state=consent.state)


def _is_consent_id(value: str) -> bool:
    """Whether ``value`` is a consent id as the broker writes them (a canonical UUID)."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


# --- the exchange's use ------------------------------------------------------------------------


def use_consent(session: Session, exchange: Exchange, principal: Principal, now: datetime) -> None:
    """Check that the consent covers this exchange and count the use. Raises the refusal."""
    consent = repository.get(session, exchange.consent_id or "")

    def refuse(why: str) -> Problem:
        return Problem(403, "consent.invalid", f"The consent {why}.")

    if consent is None or consent.requester_id != principal.id:
        raise refuse("does not exist for this client")
    if consent.state != GRANTED:
        raise refuse("was not granted by the citizen")
    if consent.revoked_at is not None:
        raise refuse("was revoked")
    if not as_utc(consent.valid_from) <= now < as_utc(consent.valid_until):
        raise refuse("is not valid now")
    if consent.subject_pseudonym != exchange.subject_pseudonym:
        raise refuse("was given by another subject")
    if exchange.evidence_type_id not in consent.evidence_types:
        raise refuse(f"does not cover {exchange.evidence_type_id}")
    if consent.purpose != exchange.purpose:
        raise refuse("was given for another purpose")
    # One conditional UPDATE, not read-then-write: parallel requests on one consent (any number
    # of them, in any number of processes) cannot use it more than max_uses times, nor after a
    # revocation committed meanwhile.
    if not repository.count_use(session, consent.id):
        session.refresh(consent)
        raise refuse("was revoked" if consent.revoked_at is not None else "has been used up")


def _log(session: Session, event: str, consent: Consent, requester: str, actor: str, now: datetime) -> None:
    record(
        session,
        EntryFacts(
            event=event,
            time=now,
            requester=requester,
            purpose=consent.purpose,
            legal_basis=consent.legal_basis,
            consent=consent.id,
            evidence_type=",".join(consent.evidence_types),
            subject=consent.subject_pseudonym,
            actor=actor,
        ),
    )
