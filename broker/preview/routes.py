"""/preview/{token}: the citizen's page to approve or decline evidence before it is released.

The link alone shows nothing: the visitor signs in first (``/citizen/login``), and only the
exchange's subject, at or above the evidence type's level of assurance and authenticated at
most BROKER_CITIZEN_MAX_AUTH_AGE_SECONDS ago, sees the evidence and decides; every form
carries the session's CSRF token. The responses are never cached and never leak the address
onwards.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse

from broker.citizen import pages as citizen_pages
from broker.citizen import session as citizen_session
from broker.citizen.layout import Frame, page
from broker.clock import as_utc
from broker.deps import CitizenAccessDep, Db, Exchanges, SignedIn
from broker.preview import page as preview_page
from broker.preview import service
from broker.problems import Problem

router = APIRouter(prefix="/preview", tags=["preview"])


def _frame(request: Request, development: bool) -> Frame:
    """The frame of a signed-in citizen's page (with the sign-out form)."""
    return Frame(development=development, csrf=citizen_session.csrf_token(request))


def _login(token: str) -> str:
    return f"/citizen/login?next=/preview/{token}"


def _signin_needed(token: str, development: bool, status: int = 200) -> HTMLResponse:
    lead = "Ein Online-Dienst möchte einen Nachweis über Sie erhalten. Melden Sie sich an, um ihn anzusehen und zu "
    lead += "entscheiden, ob er übermittelt wird."
    return page(citizen_pages.signin_page(_login(token), Frame(development=development), lead=lead), status)


def _refused(reason: str, token: str, frame: Frame) -> HTMLResponse:
    again = _login(token) if reason in ("citizen.reauthenticate", "citizen.assurance_too_low") else None
    return page(citizen_pages.refused_page(reason, frame, login_href=again), 403)


# Every answer of these routes is a page for the citizen's browser (problem+json only from the
# middleware around them, see broker.openapi).
PAGES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {"text/html": {}}}
    for status, description in (
        (401, "Sign-in page: the citizen must sign in to decide"),
        (403, "Refusal page: not the subject, a level too low, a stale sign-in or a missing CSRF token"),
        (404, "No such preview"),
        (409, "The preview was decided already"),
        (410, "The preview expired"),
    )
}


@router.get("/{token}", response_class=HTMLResponse, responses=PAGES, summary="The citizen's preview of held evidence")
def show_preview(
    token: str,
    request: Request,
    db: Db,
    deps: Exchanges,
    access: CitizenAccessDep,
    citizen: SignedIn,
    returnurl: Annotated[str | None, Query(max_length=2000)] = None,
) -> HTMLResponse:
    if citizen is None:
        return _signin_needed(token, access.development)
    frame = _frame(request, access.development)
    registry = deps.registry.get()
    with db.unit_of_work() as session:  # looking may expire the preview or record a refusal
        return_url = service.return_url(session, token, returnurl)
        opened = service.open_for(session, deps, token, citizen, access.max_auth_age)
        if opened.state is None:
            return page(preview_page.not_found_page(frame), 404)
        if opened.refusal is not None:
            return _refused(opened.refusal, token, frame)
        preview, exchange = opened.state.preview, opened.state.exchange
        if preview.state != "pending" or exchange.evidence is None:
            already = preview_page.outcome_page(preview.state, return_url, frame, already=True)
            return page(already, 410 if preview.state == "expired" else 200)
        evidence_type = registry.evidence_types.get(exchange.evidence_type_id or "")
        authority = registry.authorities.get(exchange.authority_id or "")
        facts = preview_page.PageFacts(
            evidence_title=evidence_type.title if evidence_type else exchange.evidence_type_id or "",
            authority=authority.name if authority else "der zuständigen Behörde",
            requester=service.requester_name(session, exchange),
            expires_at=as_utc(preview.expires_at),
        )
        fields = preview_page.evidence_fields(exchange.evidence)
        body = preview_page.pending_page(facts, fields, return_url, citizen_session.csrf_token(request), frame)
    return page(body)


@router.post(
    "/{token}", response_class=HTMLResponse, responses=PAGES, summary="Approve or decline the release of held evidence"
)
def decide_preview(
    token: str,
    request: Request,
    db: Db,
    deps: Exchanges,
    access: CitizenAccessDep,
    citizen: SignedIn,
    decision: Annotated[str, Form(pattern="^(approve|decline)$")],
    csrf: Annotated[str | None, Form(max_length=100)] = None,
    returnurl: Annotated[str | None, Form(max_length=2000)] = None,
) -> HTMLResponse:
    if citizen is None:
        return _signin_needed(token, access.development, 401)
    frame = _frame(request, access.development)
    if not citizen_session.csrf_valid(request, csrf):
        return page(citizen_pages.refused_page("citizen.csrf", frame), 403)
    with db.read() as session:
        return_url = service.return_url(session, token, returnurl)
    try:
        with db.unit_of_work() as session:
            decided = service.decide(session, deps, token, decision == "approve", citizen, access.max_auth_age)
    except Problem as refusal:
        already = preview_page.outcome_page(str(refusal.extensions.get("state")), return_url, frame, already=True)
        return page(already, 409)
    if decided.state is None:
        return page(preview_page.not_found_page(frame), 404)
    if decided.refusal is not None:
        return _refused(decided.refusal, token, frame)
    outcome = decided.state.preview.state
    return page(preview_page.outcome_page(outcome, return_url, frame), 410 if outcome == "expired" else 200)
