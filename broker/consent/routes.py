"""/v1/consents: consent artefacts a requester obtained from the citizen."""

from __future__ import annotations

from fastapi import APIRouter

from broker.consent import service
from broker.consent.presenters import consent_out
from broker.consent.schemas import ConsentIn, ConsentOut
from broker.deps import ClockDep, Db, Exchanges, Requester

router = APIRouter(prefix="/v1/consents", tags=["consent"])


@router.post("", status_code=201, response_model=ConsentOut)
def grant_consent(body: ConsentIn, principal: Requester, db: Db, deps: Exchanges) -> ConsentOut:
    pseudonym = deps.pseudonyms.of(body.subject.to_subject())
    with db.unit_of_work() as session:
        consent = service.grant(session, principal, body, pseudonym, deps.clock.now(), deps.registry.get())
        return consent_out(consent)


@router.get("/{consent_id}", response_model=ConsentOut)
def get_consent(consent_id: str, principal: Requester, db: Db) -> ConsentOut:
    with db.read() as session:
        return consent_out(service.owned(session, principal, consent_id))


@router.delete("/{consent_id}", response_model=ConsentOut)
def revoke_consent(consent_id: str, principal: Requester, db: Db, clock: ClockDep) -> ConsentOut:
    with db.unit_of_work() as session:
        return consent_out(service.revoke(session, principal, consent_id, clock.now()))
