"""/preview/{token}: the citizen's page to approve or decline evidence before it is released.

The token in the address is the only credential: whoever holds the link may decide, once,
until it expires (in production the page sits behind the citizen's eID login at the portal
that redirects there). The responses are never cached and never leak the address onwards.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse

from broker.clock import as_utc
from broker.deps import Db, Exchanges
from broker.preview import page, service
from broker.problems import Problem

router = APIRouter(prefix="/preview", tags=["preview"])

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


@router.get("/{token}", response_class=HTMLResponse, summary="The citizen's preview of held evidence")
def show_preview(
    token: str,
    db: Db,
    deps: Exchanges,
    returnurl: Annotated[str | None, Query(max_length=2000)] = None,
) -> HTMLResponse:
    registry = deps.registry.get()
    with db.unit_of_work() as session:  # looking may expire the preview, which writes
        return_url = service.return_url(session, token, returnurl)
        state = service.find(session, deps, token)
        if state is None:
            return _html(page.not_found_page(), 404)
        preview, exchange = state.preview, state.exchange
        if preview.state != "pending" or exchange.evidence is None:
            return _html(
                page.outcome_page(preview.state, return_url, already=True), 410 if preview.state == "expired" else 200
            )
        evidence_type = registry.evidence_types.get(exchange.evidence_type_id or "")
        authority = registry.authorities.get(exchange.authority_id or "")
        facts = page.PageFacts(
            evidence_title=evidence_type.title if evidence_type else exchange.evidence_type_id or "",
            authority=authority.name if authority else "der zuständigen Behörde",
            requester=service.requester_name(session, exchange),
            expires_at=as_utc(preview.expires_at),
        )
        body = page.pending_page(facts, page.evidence_fields(exchange.evidence), return_url)
    return _html(body)


@router.post("/{token}", response_class=HTMLResponse, summary="Approve or decline the release of held evidence")
def decide_preview(
    token: str,
    db: Db,
    deps: Exchanges,
    decision: Annotated[str, Form(pattern="^(approve|decline)$")],
    returnurl: Annotated[str | None, Form(max_length=2000)] = None,
) -> HTMLResponse:
    with db.read() as session:
        return_url = service.return_url(session, token, returnurl)
    try:
        with db.unit_of_work() as session:
            outcome = service.decide(session, deps, token, decision == "approve").preview.state
    except Problem as refusal:
        if refusal.reason == "preview.not_found":
            return _html(page.not_found_page(), 404)
        return _html(page.outcome_page(str(refusal.extensions.get("state")), return_url, already=True), 409)
    return _html(page.outcome_page(outcome, return_url), 410 if outcome == "expired" else 200)
