"""/citizen: sign-in and sign-out, the data cockpit, the citizen's copy of their log entries,
and the pages where the citizen grants, declines or revokes a consent.

HTML for browsers (not part of the JSON API's OpenAPI). Every form carries the session's CSRF
token; every page is no-store and framed by nothing. The session is the signed cookie of
:mod:`broker.citizen.session`.
"""

from __future__ import annotations

import re
from datetime import datetime
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from adapters.protocol import Subject
from broker.citizen import pages, service, session
from broker.citizen.identity import Citizen, pseudonyms_of, refusal, subject_of_claims
from broker.citizen.layout import Frame, page
from broker.citizen.signin import DEMO_CITIZENS, CitizenAccess, SignInFailed
from broker.consent import service as consents
from broker.db.models import Consent
from broker.deps import (
    CitizenAccessDep,
    ClockDep,
    ConsentSignerDep,
    Db,
    Exchanges,
    Keys,
    PreviewsDep,
    SettingsDep,
    SignedIn,
)
from broker.logging import get_logger
from broker.preview.presenters import public_base
from broker.problems import Problem
from broker.registry.schemas import AssuranceLevel, assurance_level

log = get_logger(__name__)

router = APIRouter(prefix="/citizen", tags=["citizen"], include_in_schema=False)

# Where a sign-in may lead back to: the citizen's own pages only (never another site).
_NEXT = re.compile(r"/(citizen(/[A-Za-z0-9_-]+)*|preview/[A-Za-z0-9_-]{43})")
# Module scripts load only with a JavaScript type (Python's own MIME table lacks .mjs).
_STATIC = {"proof.js": "text/javascript; charset=utf-8", "proof-core.mjs": "text/javascript; charset=utf-8"}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def safe_next(value: str | None) -> str:
    return value if value is not None and _NEXT.fullmatch(value) else "/citizen"


def frame(request: Request, access: CitizenAccess, citizen: Citizen | None) -> Frame:
    """The pages' frame: the development banner, and the sign-out form for a signed-in citizen."""
    return Frame(development=access.development, csrf=session.csrf_token(request) if citizen else None)


def login_href(next_path: str, level: str | None = None) -> str:
    query = f"next={next_path}" + (f"&level={level}" if level else "")
    return f"/citizen/login?{query}"


def _start_session(
    request: Request, deps: Exchanges, subject: Subject, level: AssuranceLevel | None, at: datetime, method: str
) -> None:
    """Sign the citizen in: their pseudonyms, level and time of authentication, nothing else."""
    by_idnr, by_name = pseudonyms_of(subject, deps.pseudonyms.of)
    citizen = Citizen(by_idnr, by_name, level, at, method)
    session.sign_in(request, citizen, deps.clock.now())
    log.info("citizen_signed_in", method=method, assurance=level)


@router.get("/login")
async def login(
    request: Request,
    access: CitizenAccessDep,
    settings: SettingsDep,
    citizen: SignedIn,
    next: Annotated[str | None, Query(max_length=200)] = None,
    level: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Start a sign-in; afterwards the citizen lands on ``next`` (one of their pages)."""
    wanted = safe_next(next)
    session.remember_next(request, wanted)
    if access.oidc is None:
        return RedirectResponse(f"/citizen/dev-login?next={wanted}", status_code=303)
    redirect_uri = public_base(request, settings.public_url) + "/citizen/callback"
    try:
        return await access.oidc.begin(request, redirect_uri, assurance_level(level) if level else None)
    except SignInFailed as failure:
        log.warning("citizen_signin_failed", reason=failure.reason)
        return page(pages.signin_failed_page(frame(request, access, citizen)), 502)


@router.get("/callback")
async def callback(request: Request, access: CitizenAccessDep, deps: Exchanges) -> Response:
    """The identity provider's redirect back: the citizen is signed in, their claims dropped."""
    if access.oidc is None:
        return page(pages.signin_failed_page(frame(request, access, None)), 404)
    try:
        signed_in = await access.oidc.finish(request, deps.clock.now())
    except SignInFailed as failure:
        log.warning("citizen_signin_failed", reason=failure.reason)
        return page(pages.signin_failed_page(frame(request, access, None)), 400)
    subject = subject_of_claims(signed_in.claims, access.oidc.mapping)
    _start_session(request, deps, subject, signed_in.assurance, signed_in.authenticated_at, "oidc")
    return RedirectResponse(safe_next(session.take_next(request)), status_code=303)


@router.get("/dev-login")
def dev_login_page(
    request: Request, access: CitizenAccessDep, next: Annotated[str | None, Query(max_length=200)] = None
) -> Response:
    if not access.development:
        return page(pages.refused_page("citizen.not_found", frame(request, access, None)), 404)
    labels = [(key, label) for key, (label, _) in DEMO_CITIZENS.items()]
    csrf = session.csrf_token(request)
    return page(pages.dev_signin_page(labels, safe_next(next), csrf, Frame(development=True)))


@router.post("/dev-login")
def dev_login(
    request: Request,
    access: CitizenAccessDep,
    deps: Exchanges,
    citizen: Annotated[str, Form(max_length=40)],
    assurance: Annotated[str, Form(max_length=20)] = "high",
    csrf: Annotated[str | None, Form(max_length=100)] = None,
    next: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """The development sign-in: one of the demo citizens, at the chosen level, authenticated now."""
    if not access.development:
        return page(pages.refused_page("citizen.not_found", frame(request, access, None)), 404)
    if not session.csrf_valid(request, csrf):
        return page(pages.refused_page("citizen.csrf", Frame(development=True)), 403)
    chosen = DEMO_CITIZENS.get(citizen)
    level = assurance_level(assurance)
    if chosen is None or level is None:
        raise Problem(422, "citizen.unknown_demo_citizen", f"Choose one of {sorted(DEMO_CITIZENS)} and a level.")
    _start_session(request, deps, chosen[1], level, deps.clock.now(), "development")
    session.take_next(request)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(
    request: Request,
    access: CitizenAccessDep,
    db: Db,
    clock: ClockDep,
    citizen: SignedIn,
    csrf: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    """Sign out: this browser's cookie is cleared, and every copy of it stops working."""
    if citizen is not None:
        if not session.csrf_valid(request, csrf):
            return page(pages.refused_page("citizen.csrf", frame(request, access, citizen)), 403)
        with db.unit_of_work() as db_session:
            service.sign_out(db_session, citizen, clock.now(), access.session_lifetime)
    session.sign_out(request)
    return page(pages.signed_out_page(Frame(development=access.development)))


def _signin_needed(access: CitizenAccessDep, next_path: str, lead: str) -> Response:
    return page(pages.signin_page(login_href(next_path), Frame(development=access.development), lead=lead))


@router.get("")
def cockpit(
    request: Request,
    access: CitizenAccessDep,
    db: Db,
    deps: Exchanges,
    keys: Keys,
    previews: PreviewsDep,
    citizen: SignedIn,
) -> Response:
    """The data cockpit: every exchange about the signed-in citizen, with proofs for the browser."""
    if citizen is None:
        lead = "Melden Sie sich an, um zu sehen, welche Nachweise über Sie übermittelt wurden."
        return _signin_needed(access, "/citizen", lead)
    registry = deps.registry.get()
    with db.read() as db_session:
        view = service.cockpit(
            db_session,
            citizen,
            registry,
            deps.clock.now(),
            consents=consents.of_citizen(db_session, citizen.pseudonyms),
            keys=keys.checkpoint_public_keys(),
            preview_path=previews.path,
        )
        body = pages.cockpit_page(view, registry, session.csrf_token(request), frame(request, access, citizen))
    return page(body, scripts=True)


@router.get("/export.json")
def export(access: CitizenAccessDep, db: Db, deps: Exchanges, keys: Keys, citizen: SignedIn) -> Response:
    """The citizen's copy of their log entries with inclusion proofs (Art. 15 GDPR)."""
    if citizen is None:
        return _signin_needed(access, "/citizen", "Melden Sie sich an, um Ihre Einträge herunterzuladen.")
    with db.read() as db_session:
        data = service.export(
            db_session, citizen, deps.registry.get(), deps.clock.now(), keys=keys.checkpoint_public_keys()
        )
    return JSONResponse(
        data,
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": 'attachment; filename="meine-protokolleintraege.json"',
        },
    )


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """The cockpit's script (the browser's own proof check); nothing else is served from here."""
    media_type = _STATIC.get(name)
    if media_type is None:
        return Response(status_code=404)
    content = resources.files("broker.citizen").joinpath("static", name).read_bytes()
    return Response(
        content,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


# --- consents -------------------------------------------------------------------------------


def _consent_gate(access: CitizenAccessDep, citizen: Citizen | None, consent_id: str) -> Citizen | Response:
    """The signed-in citizen, or the page to show instead (sign in)."""
    if citizen is None:
        return _signin_needed(
            access,
            f"/citizen/consents/{consent_id}" if _UUID.match(consent_id) else "/citizen",
            "Melden Sie sich an, um über die Einwilligung zu entscheiden.",
        )
    return citizen


def _consent_refused(
    request: Request, access: CitizenAccessDep, citizen: Citizen, reason: str, status: int
) -> Response:
    log.info("citizen_consent_refused", reason=reason)
    again = login_href(request.url.path) if reason in ("citizen.reauthenticate", "citizen.assurance_too_low") else None
    return page(pages.refused_page(reason, frame(request, access, citizen), login_href=again), status)


def _form_gate(
    request: Request, access: CitizenAccessDep, citizen: Citizen | None, consent_id: str, csrf: str | None
) -> Citizen | Response:
    """The signed-in citizen submitting a consent form with the session's CSRF token, or the page instead."""
    gate = _consent_gate(access, citizen, consent_id)
    if isinstance(gate, Response) or session.csrf_valid(request, csrf):
        return gate
    return page(pages.refused_page("citizen.csrf", frame(request, access, gate)), 403)


def _consent_view(
    request: Request,
    access: CitizenAccessDep,
    citizen: Citizen,
    deps: Exchanges,
    db_session: Session,
    consent: Consent,
    notice: str = "",
) -> Response:
    requester = consents.requester_name(db_session, consent)
    csrf = session.csrf_token(request)
    view = pages.consent_page(
        consent, requester, deps.registry.get(), csrf, frame(request, access, citizen), notice=notice
    )
    return page(view)


@router.get("/consents/{consent_id}")
def consent_page(
    consent_id: str, request: Request, access: CitizenAccessDep, db: Db, deps: Exchanges, citizen: SignedIn
) -> Response:
    gate = _consent_gate(access, citizen, consent_id)
    if isinstance(gate, Response):
        return gate
    try:
        with db.read() as db_session:
            consent = consents.for_citizen(db_session, consent_id, gate.pseudonyms)
            return _consent_view(request, access, gate, deps, db_session, consent)
    except Problem as refused:
        return _consent_refused(request, access, gate, refused.reason, refused.status)


@router.post("/consents/{consent_id}")
def decide_consent(
    consent_id: str,
    request: Request,
    access: CitizenAccessDep,
    db: Db,
    deps: Exchanges,
    signer: ConsentSignerDep,
    citizen: SignedIn,
    decision: Annotated[str, Form(pattern="^(grant|decline)$")],
    csrf: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    """Grant or decline: as for a preview, only the subject, recently signed in at the level the
    consent's evidence types need, decides. Asked by name, a consent cannot be checked against
    an IDNr yet: the grant is bound to the IDNr of the citizen's sign-in instead, and evidence
    about anyone else is never delivered on it (``broker.exchange.service``)."""
    gate = _form_gate(request, access, citizen, consent_id, csrf)
    if isinstance(gate, Response):
        return gate
    now = deps.clock.now()
    try:
        with db.unit_of_work() as db_session:
            asked = consents.for_citizen(db_session, consent_id, gate.pseudonyms)
            required = service.required_level(deps.registry.get(), asked.evidence_types)
            reason = refusal(gate, asked.subject_pseudonym, None, required, now, access.max_auth_age, confirmed=False)
            if reason is not None:
                return _consent_refused(request, access, gate, reason, 403)
            consent = consents.decide(
                db_session, consent_id, gate.pseudonyms, decision == "grant", now, signer, gate.idnr_pseudonym
            )
            notice = "Sie haben eingewilligt." if consent.state == "granted" else "Sie haben abgelehnt."
            return _consent_view(request, access, gate, deps, db_session, consent, notice)
    except Problem as refused:
        return _consent_refused(request, access, gate, refused.reason, refused.status)


@router.post("/consents/{consent_id}/revoke")
def revoke_consent(
    consent_id: str,
    request: Request,
    access: CitizenAccessDep,
    db: Db,
    deps: Exchanges,
    citizen: SignedIn,
    csrf: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    """Revoking needs no fresh sign-in: it only ever takes a permission away."""
    gate = _form_gate(request, access, citizen, consent_id, csrf)
    if isinstance(gate, Response):
        return gate
    try:
        with db.unit_of_work() as db_session:
            consent = consents.revoke_by_citizen(db_session, consent_id, gate.pseudonyms, deps.clock.now())
            notice = "Sie haben die Einwilligung widerrufen. Sie gilt ab sofort nicht mehr."
            return _consent_view(request, access, gate, deps, db_session, consent, notice)
    except Problem as refused:
        return _consent_refused(request, access, gate, refused.reason, refused.status)


@router.get("/consents/{consent_id}/artefact")
def consent_artefact(
    consent_id: str, request: Request, access: CitizenAccessDep, db: Db, citizen: SignedIn
) -> Response:
    """The signed consent (compact JWS) for the citizen to keep; ``broker consent verify`` checks it."""
    gate = _consent_gate(access, citizen, consent_id)
    if isinstance(gate, Response):
        return gate
    try:
        with db.read() as db_session:
            consent = consents.for_citizen(db_session, consent_id, gate.pseudonyms)
    except Problem as refused:
        return _consent_refused(request, access, gate, refused.reason, refused.status)
    if consent.artefact is None:
        return page(pages.refused_page("consent.not_granted", frame(request, access, gate)), 404)
    return Response(
        consent.artefact,
        media_type="application/jose",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="einwilligung-{consent.id}.jws"',
        },
    )
