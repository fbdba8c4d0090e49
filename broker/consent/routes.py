"""/v1/consents: a requester asks the citizen for consent, reads the answer, withdraws it."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from broker.consent import service
from broker.consent.presenters import consent_out
from broker.consent.schemas import ConsentIn, ConsentOut
from broker.deps import ClockDep, Db, Exchanges, Requester, SettingsDep
from broker.preview.presenters import public_base
from broker.problems import problem_responses

router = APIRouter(prefix="/v1/consents", tags=["consent"])

# What each operation can answer besides success: a malformed or too large body (POST), no or
# a wrong token, a term the policy or registry refuses, a consent not of this client.
CREATE_PROBLEMS = problem_responses(400, 401, 403, 413, 422)
PROBLEM_RESPONSES = problem_responses(400, 401, 403, 404, 422)


@router.post(
    "",
    status_code=201,
    response_model=ConsentOut,
    responses={201: {"description": "The consent request, with the citizen's approval link"}, **CREATE_PROBLEMS},
    summary="Ask the citizen for consent",
)
def request_consent(
    body: ConsentIn,
    principal: Requester,
    db: Db,
    deps: Exchanges,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> ConsentOut:
    """The consent starts ``requested``: send the citizen to ``links.approval``; only once they
    grant it (``state`` ``granted``, ``artefact`` the signed grant) does it authorise exchanges."""
    pseudonym = deps.pseudonyms.of(body.subject.to_subject())
    with db.unit_of_work() as session:
        consent = service.request(session, principal, body, pseudonym, deps.clock.now(), deps.registry.get())
        out = consent_out(consent, public_base(request, settings.public_url))
    response.headers["Location"] = out.links["self"]
    return out


@router.get("/{consent_id}", response_model=ConsentOut, responses=PROBLEM_RESPONSES, summary="A consent of this client")
def get_consent(consent_id: str, principal: Requester, db: Db, settings: SettingsDep, request: Request) -> ConsentOut:
    with db.read() as session:
        return consent_out(service.owned(session, principal, consent_id), public_base(request, settings.public_url))


@router.delete(
    "/{consent_id}",
    response_model=ConsentOut,
    responses=PROBLEM_RESPONSES,
    summary="Withdraw the request or give up the grant (at once)",
)
def revoke_consent(
    consent_id: str, principal: Requester, db: Db, clock: ClockDep, settings: SettingsDep, request: Request
) -> ConsentOut:
    with db.unit_of_work() as session:
        consent = service.revoke(session, principal, consent_id, clock.now())
        return consent_out(consent, public_base(request, settings.public_url))
