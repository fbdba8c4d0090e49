"""The citizen's session: a signed cookie (Starlette's SessionMiddleware, itsdangerous), no table.

What it holds is all the broker keeps of a sign-in: the citizen's subject pseudonyms, the level
of assurance, when they authenticated and how (:class:`~broker.citizen.identity.Citizen`), and
a random CSRF token that every form of the citizen's pages carries back. The cookie is
``HttpOnly``, ``SameSite=Lax``, ``Secure`` and ``__Host-`` (browsers keep such cookies of
http://localhost and 127.0.0.1 too, so development needs no exception); it is signed with a key
derived from the broker's pseudonym secret. It ends BROKER_CITIZEN_SESSION_MINUTES after the
sign-in however often it is used (Starlette re-signs it on every answer, so its own expiry only
bounds idleness), and signing out ends every copy of it: the session's id is kept as signed out
until then (``broker.citizen.service.signed_in``). An OpenID Connect sign-in's claims never
enter it.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
from typing import Any

from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.citizen.identity import Citizen
from broker.registry.schemas import assurance_level

# "__Host-": the browser takes the cookie only from this very host (Secure, Path=/, no Domain),
# so no sibling subdomain can plant a session of its own choosing.
COOKIE_NAME = "__Host-broker_citizen"
_CITIZEN = "citizen"
_CSRF = "csrf"
_NEXT = "next"
_KEY_CONTEXT = b"once-only-broker/citizen-session/v1"


def derive_key(pseudonym_secret: bytes) -> str:
    """The session cookie's signing key, domain-separated from the secret it derives from."""
    return hmac.new(pseudonym_secret, _KEY_CONTEXT, hashlib.sha256).hexdigest()


def _session(request: Request) -> dict[str, Any]:
    session: dict[str, Any] = request.session
    return session


def _moment(value: object) -> datetime.datetime:
    if not isinstance(value, int):
        raise TypeError("not a timestamp")
    return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)


def _pseudonym(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("not a pseudonym")
    return value


def current(request: Request) -> Citizen | None:
    """The citizen the cookie names, or None (also for a cookie this version cannot read). Whether
    the session is still valid (its lifetime, a sign-out) is for ``broker.citizen.service``."""
    data = _session(request).get(_CITIZEN)
    if not isinstance(data, dict):
        return None
    try:
        level = data["assurance"]
        return Citizen(
            idnr_pseudonym=_pseudonym(data["idnr"]),
            name_pseudonym=_pseudonym(data["name"]),
            assurance=assurance_level(level) if isinstance(level, str) else None,
            authenticated_at=_moment(data["auth_time"]),
            method=str(data["method"]),
            session_id=str(data["sid"]),
            signed_in_at=_moment(data["issued"]),
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def sign_in(request: Request, citizen: Citizen, now: datetime.datetime) -> None:
    """Start a new session for ``citizen``: whatever the cookie held before is dropped (a new CSRF
    token too), so nothing of an earlier visitor's session carries over."""
    wanted = _session(request).get(_NEXT)
    _session(request).clear()
    _session(request)[_CITIZEN] = {
        "idnr": citizen.idnr_pseudonym,
        "name": citizen.name_pseudonym,
        "assurance": citizen.assurance,
        "auth_time": int(citizen.authenticated_at.timestamp()),
        "method": citizen.method,
        "sid": secrets.token_urlsafe(24),
        "issued": int(now.timestamp()),
    }
    if isinstance(wanted, str):
        _session(request)[_NEXT] = wanted


def sign_out(request: Request) -> None:
    _session(request).clear()


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (pages with forms call this)."""
    token = _session(request).get(_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        _session(request)[_CSRF] = token
    return token


def csrf_valid(request: Request, submitted: str | None) -> bool:
    expected = _session(request).get(_CSRF)
    return isinstance(expected, str) and submitted is not None and hmac.compare_digest(expected, submitted)


def remember_next(request: Request, path: str) -> None:
    """Where to go after signing in (a path of the citizen's pages, checked by the caller)."""
    _session(request)[_NEXT] = path


def take_next(request: Request) -> str | None:
    wanted = _session(request).pop(_NEXT, None)
    return wanted if isinstance(wanted, str) else None


class CitizenSessionMiddleware:
    """Starlette's SessionMiddleware on the citizen's pages only (``/citizen``, ``/preview/``):
    the JSON API and the OOTS endpoint never read or set the cookie."""

    PATHS = ("/citizen", "/preview/")

    def __init__(self, app: ASGIApp, *, secret: str, max_age_seconds: int) -> None:
        self._plain = app
        self._with_session = SessionMiddleware(
            app,
            secret_key=secret,
            session_cookie=COOKIE_NAME,
            max_age=max_age_seconds,
            path="/",
            same_site="lax",
            https_only=True,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith(self.PATHS):
            await self._with_session(scope, receive, send)
        else:
            await self._plain(scope, receive, send)
