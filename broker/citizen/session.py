"""The citizen's session: a signed cookie (Starlette's SessionMiddleware, itsdangerous), no table.

What it holds is all the broker keeps of a sign-in: the citizen's subject pseudonyms, the level
of assurance, when they authenticated and how (:class:`~broker.citizen.identity.Citizen`), and
a random CSRF token that every form of the citizen's pages carries back. The cookie is
``HttpOnly``, ``SameSite=Lax`` and ``Secure`` (browsers keep Secure cookies of http://localhost
and 127.0.0.1 too, so development needs no exception); it is signed with a key derived from the
broker's pseudonym secret and ends after BROKER_CITIZEN_SESSION_MINUTES. Signing out clears it;
an OpenID Connect sign-in's claims never enter it.
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

COOKIE_NAME = "broker_citizen"
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


def current(request: Request) -> Citizen | None:
    """The signed-in citizen, or None (also for a cookie whose content this version cannot read)."""
    data = _session(request).get(_CITIZEN)
    if not isinstance(data, dict):
        return None
    try:
        level = data["assurance"]
        return Citizen(
            pseudonyms=frozenset(str(p) for p in data["pseudonyms"]),
            assurance=assurance_level(level) if isinstance(level, str) else None,
            authenticated_at=datetime.datetime.fromtimestamp(int(data["auth_time"]), tz=datetime.UTC),
            method=str(data["method"]),
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def sign_in(request: Request, citizen: Citizen) -> None:
    """Start a new session for ``citizen``: whatever the cookie held before is dropped (a new CSRF
    token too), so nothing of an earlier visitor's session carries over."""
    wanted = _session(request).get(_NEXT)
    _session(request).clear()
    _session(request)[_CITIZEN] = {
        "pseudonyms": sorted(citizen.pseudonyms),
        "assurance": citizen.assurance,
        "auth_time": int(citizen.authenticated_at.timestamp()),
        "method": citizen.method,
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
