"""Bearer-token authentication. Tokens resolve to a :class:`Principal`.

Whether a token may act (its client not disabled or removed, the token not expired or rotated
away) is read from the database on every request: one lookup on the unique token-hash index, so
a change made by any process (CLI or admin API) takes effect at once everywhere. Only what never
changes for a token (name, role, grants) is cached per process.
"""

from __future__ import annotations

import threading
import time

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from broker.clients.service import ClientStatus, Principal, hash_token, principal_for_token, token_standing
from broker.clock import Clock
from broker.db.session import Database
from broker.problems import Problem

# A cached principal is reloaded after this long, so a grant changed in the database by hand
# (no command changes one) is picked up too.
PRINCIPAL_TTL_SECONDS = 30.0


class PrincipalCache:
    def __init__(self, database: Database, clock: Clock, ttl: float = PRINCIPAL_TTL_SECONDS) -> None:
        self._database = database
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Principal]] = {}

    def resolve(self, token: str) -> Principal | None:
        """The token's principal, None if no client has it; raises the refusal of a disabled client or expired token."""
        key = hash_token(token)
        # Every request asks this: a single read, no transaction around it on PostgreSQL (one
        # round trip) and no write lock on SQLite.
        with self._database.single_reads.connect() as connection:
            standing = token_standing(connection, key, self._clock.now())
        if standing is None:
            return None
        if standing is ClientStatus.DISABLED:
            raise Problem(401, "auth.client_disabled", "This client is disabled.")
        if standing is ClientStatus.EXPIRED:
            raise Problem(401, "auth.token_expired", "The bearer token has expired; ask for a new one.")
        cached = self._entries.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        with self._database.read() as session:
            principal = principal_for_token(session, token)
        if principal is None:  # changed since the lookup above; nothing to keep
            return None
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), principal)
        return principal


# Where the request guard (broker/middleware.py), which authenticates requests with a body before
# the body is read, leaves the principal in the request's state, so the token is looked up once.
AUTHENTICATED_PRINCIPAL = "authenticated_principal"


async def authenticate(request: Request, cache: PrincipalCache, *roles: str) -> Principal:
    """The request's principal, of one of ``roles``; raises the refusal. The token lookup reads the
    database, in the thread pool; a principal the request guard found costs no thread hop."""
    principal: Principal | None = request.scope.get("state", {}).get(AUTHENTICATED_PRINCIPAL)
    if principal is None:
        return await run_in_threadpool(authenticate_header, request.headers.get("authorization", ""), cache, *roles)
    return _of_role(principal, roles)


def authenticate_header(header: str, cache: PrincipalCache, *roles: str) -> Principal:
    """The principal of an ``Authorization`` header's bearer token, of one of ``roles``; raises the refusal."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "auth.required", "Send a bearer token in the Authorization header.")
    principal = cache.resolve(token.strip())
    if principal is None:
        raise Problem(401, "auth.invalid_token", "The bearer token is unknown or revoked.")
    return _of_role(principal, roles)


def _of_role(principal: Principal, roles: tuple[str, ...]) -> Principal:
    if roles and principal.role not in roles:
        raise Problem(403, "auth.wrong_role", f"This endpoint is for the role(s) {', '.join(roles)}.")
    return principal
