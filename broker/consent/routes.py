"""/v1/consents: consent artefacts a requester obtained from the citizen."""

from __future__ import annotations

from fastapi import APIRouter

from broker.consent import service
from broker.consent.schemas import ConsentIn, ConsentOut
from broker.db.models import Consent
from broker.deps import Context, Requester

router = APIRouter(prefix="/v1/consents", tags=["consent"])


def consent_out(consent: Consent) -> ConsentOut:
    return ConsentOut.model_validate(consent, from_attributes=True)


@router.post("", status_code=201, response_model=ConsentOut)
def grant_consent(body: ConsentIn, principal: Requester, context: Context) -> ConsentOut:
    pseudonym = context.pseudonymise(body.subject.to_subject())
    with context.unit_of_work() as session:
        consent = service.grant(session, principal, body, pseudonym, context.clock.now())
        return consent_out(consent)


@router.get("/{consent_id}", response_model=ConsentOut)
def get_consent(consent_id: str, principal: Requester, context: Context) -> ConsentOut:
    with context.sessions() as session:
        return consent_out(service.owned(session, principal, consent_id))


@router.delete("/{consent_id}", response_model=ConsentOut)
def revoke_consent(consent_id: str, principal: Requester, context: Context) -> ConsentOut:
    with context.unit_of_work() as session:
        return consent_out(service.revoke(session, principal, consent_id, context.clock.now()))
