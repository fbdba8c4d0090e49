"""/preview/{token}: the citizen's page to approve or decline evidence before it is released.

The token in the address is the only credential: whoever holds the link may decide, once,
until it expires (in production the page sits behind the citizen's eID login at the portal
that redirects there). The responses are never cached and never leak the address onwards.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse

from broker.clock import as_utc
from broker.context import BrokerContext
from broker.db.models import Exchange
from broker.deps import Context
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


def public_base(request: Request, context: BrokerContext) -> str:
    """The broker's address as citizens and remote requesters reach it."""
    configured = context.settings.public_url.strip()
    return (configured or str(request.base_url)).rstrip("/")


def location(request: Request, context: BrokerContext, exchange_id: str) -> str:
    """The absolute preview address of an exchange (the OOTS PreviewLocation)."""
    return public_base(request, context) + context.previews().path(exchange_id)


def preview_link(context: BrokerContext, exchange: Exchange) -> tuple[Exchange, str | None]:
    """For the JSON API: the exchange as it stands and, while it awaits the citizen, the preview
    path (relative, like the API's other links) to send them to."""
    if exchange.state != "awaiting_preview":
        return exchange, None
    with context.unit_of_work() as session:
        exchange = service.current(session, context.exchange_dependencies(), exchange.id) or exchange
    if exchange.state != "awaiting_preview":
        return exchange, None
    return exchange, context.previews().path(exchange.id)


def _return_url(value: str | None) -> str | None:
    # Only a plain web address is linked back to: never javascript:, data: or the like.
    if not value or len(value) > 2000:
        return None
    parsed = urllib.parse.urlsplit(value)
    return value if parsed.scheme in ("https", "http") and parsed.netloc else None


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


@router.get("/{token}", response_class=HTMLResponse, summary="The citizen's preview of held evidence")
def show_preview(
    token: str,
    context: Context,
    returnurl: Annotated[str | None, Query(max_length=2000)] = None,
) -> HTMLResponse:
    deps = context.exchange_dependencies()
    return_url = _return_url(returnurl)
    with context.unit_of_work() as session:  # looking may expire the preview, which writes
        state = service.find(session, deps, token)
        if state is None:
            return _html(page.not_found_page(), 404)
        preview, exchange = state.preview, state.exchange
        if preview.state != "pending" or exchange.evidence is None:
            return _html(
                page.outcome_page(preview.state, return_url, already=True), 410 if preview.state == "expired" else 200
            )
        evidence_type = deps.registry.evidence_types.get(exchange.evidence_type_id)
        authority = deps.registry.authorities.get(exchange.authority_id or "")
        facts = page.PageFacts(
            evidence_title=evidence_type.title if evidence_type else exchange.evidence_type_id,
            authority=authority.name if authority else "der zuständigen Behörde",
            requester=service.requester_name(session, exchange),
            expires_at=as_utc(preview.expires_at),
        )
        body = page.pending_page(facts, page.evidence_fields(exchange.evidence), return_url)
    return _html(body)


@router.post("/{token}", response_class=HTMLResponse, summary="Approve or decline the release of held evidence")
def decide_preview(
    token: str,
    context: Context,
    decision: Annotated[str, Form(pattern="^(approve|decline)$")],
    returnurl: Annotated[str | None, Form(max_length=2000)] = None,
) -> HTMLResponse:
    deps = context.exchange_dependencies()
    return_url = _return_url(returnurl)
    try:
        with context.unit_of_work() as session:
            outcome = service.decide(session, deps, token, decision == "approve").preview.state
    except Problem as refusal:
        if refusal.reason == "preview.not_found":
            return _html(page.not_found_page(), 404)
        return _html(page.outcome_page(str(refusal.extensions.get("state")), return_url, already=True), 409)
    return _html(page.outcome_page(outcome, return_url), 410 if outcome == "expired" else 200)
