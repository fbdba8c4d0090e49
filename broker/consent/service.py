"""Consent artefacts: the citizen's permission for one requester, evidence types and purpose.

A consent is recorded by the requester that obtained it (e.g. in its online service) and can be
revoked; each use is counted against ``max_uses``. Granting and revoking are log entries.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from broker.audit.service import EntryFacts, record
from broker.clients.service import Principal
from broker.clock import as_utc
from broker.consent import repository
from broker.consent.schemas import ConsentIn
from broker.db.models import Consent, Exchange
from broker.problems import Problem
from broker.registry.service import RegistrySnapshot


def grant(
    session: Session, principal: Principal, body: ConsentIn, pseudonym: str, now: datetime, registry: RegistrySnapshot
) -> Consent:
    purpose = _registered_purpose(registry, body)
    valid_from = body.valid_from or now
    if as_utc(body.valid_until) <= as_utc(valid_from):
        raise Problem(422, "consent.invalid_period", "valid_until must lie after valid_from.")
    for evidence_type in body.evidence_types:
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
            evidence_types=body.evidence_types,
            purpose=purpose,
            valid_from=valid_from,
            valid_until=body.valid_until,
            max_uses=body.max_uses,
            uses=0,
            created_at=now,
        ),
    )
    _log(session, "consent_granted", consent, principal, now)
    return consent


def _registered_purpose(registry: RegistrySnapshot, body: ConsentIn) -> str:
    """The consent's purpose id; raises the 422 refusal naming every field the registry does not
    know (a consent is a log entry: no free text may reach it)."""
    errors = [
        {"field": f"evidence_types.{index}", "reason": "evidence_type.unknown", "message": "not in the registry"}
        for index, evidence_type in enumerate(body.evidence_types)
        if evidence_type not in registry.evidence_types
    ]
    purpose = registry.purpose(body.purpose)
    if purpose is None:
        errors.append({"field": "purpose", "reason": "purpose.unknown", "message": "not in the registry"})
    if purpose is None or errors:
        fields = ", ".join(e["field"] for e in errors)
        raise Problem(422, errors[0]["reason"], f"The registry holds no such {fields}.", errors=errors)
    return purpose.id


def revoke(session: Session, principal: Principal, consent_id: str, now: datetime) -> Consent:
    consent = owned(session, principal, consent_id)
    if consent.revoked_at is None:
        consent.revoked_at = now
        _log(session, "consent_revoked", consent, principal, now)
    return consent


def belongs_to(session: Session, principal: Principal, consent_id: str) -> bool:
    consent = repository.get(session, consent_id)
    return consent is not None and consent.requester_id == principal.id


def owned(session: Session, principal: Principal, consent_id: str) -> Consent:
    consent = repository.get(session, consent_id)
    if consent is None or consent.requester_id != principal.id:
        raise Problem(404, "consent.not_found", f"No consent {consent_id!r} for this client.")
    return consent


def use_consent(session: Session, exchange: Exchange, principal: Principal, now: datetime) -> None:
    """Check that the consent covers this exchange and count the use. Raises the refusal."""
    consent = repository.get(session, exchange.consent_id or "")

    def refuse(why: str) -> Problem:
        return Problem(403, "consent.invalid", f"The consent {why}.")

    if consent is None or consent.requester_id != principal.id:
        raise refuse("does not exist for this client")
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
    # of them, in any number of processes) cannot use it more than max_uses times.
    if not repository.count_use(session, consent.id):
        raise refuse("has been used up")


def _log(session: Session, event: str, consent: Consent, principal: Principal, now: datetime) -> None:
    record(
        session,
        EntryFacts(
            event=event,
            time=now,
            requester=principal.name,
            purpose=consent.purpose,
            consent=consent.id,
            evidence_type=",".join(consent.evidence_types),
            subject=consent.subject_pseudonym,
        ),
    )
