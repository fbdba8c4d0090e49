"""Bearer-token authentication. Tokens resolve to a :class:`Principal`, cached briefly per process."""

from __future__ import annotations

import threading
import time

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from broker.clients.service import Principal, hash_token, principal_for_token
from broker.problems import Problem

# A disabled client or changed permission takes effect in every process within this time.
PRINCIPAL_TTL_SECONDS = 30.0


class PrincipalCache:
    def __init__(self, sessions: sessionmaker[Session], ttl: float = PRINCIPAL_TTL_SECONDS) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def resolve(self, token: str) -> Principal | None:
        key = hash_token(token)
        cached = self._entries.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        with self._sessions() as session:
            principal = principal_for_token(session, token)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), principal)
        return principal


def authenticate(request: Request, cache: PrincipalCache, *roles: str) -> Principal:
    return authenticate_header(request.headers.get("authorization", ""), cache, *roles)


def authenticate_header(header: str, cache: PrincipalCache, *roles: str) -> Principal:
    """The principal of an ``Authorization`` header's bearer token, of one of ``roles``; raises the refusal."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "auth.required", "Send a bearer token in the Authorization header.")
    principal = cache.resolve(token.strip())
    if principal is None:
        raise Problem(401, "auth.invalid_token", "The bearer token is unknown or revoked.")
    if roles and principal.role not in roles:
        raise Problem(403, "auth.wrong_role", f"This endpoint is for the role(s) {', '.join(roles)}.")
    return principal
