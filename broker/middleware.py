"""ASGI middleware: request ids and access logs, body size limits, the request guard, Prometheus metrics."""

from __future__ import annotations

import time
import urllib.parse
import uuid

import structlog
from prometheus_client import Counter, Histogram
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.clients.auth import AUTHENTICATED_PRINCIPAL, PrincipalCache, authenticate_header
from broker.logging import get_logger
from broker.problems import MAX_LISTED_ERRORS, Problem, problem_response
from broker.schemas_common import control_character_in

log = get_logger("broker.access")

REQUESTS = Counter("broker_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("broker_http_request_seconds", "HTTP request latency", ["method", "route"])


class BodyTooLarge(HTTPException):
    """Raised while the body is read; answered 413 by the problem handlers, wherever a route reads it."""

    def __init__(self, max_bytes: int) -> None:
        # The rest of the body is never read, so the connection cannot carry another request.
        super().__init__(413, _too_large(max_bytes), headers={"Connection": "close"})


def _too_large(max_bytes: int) -> str:
    return f"The request body exceeds {max_bytes} bytes."


class RequestContextMiddleware:
    """Gives every request an id (echoed as X-Request-Id), binds it to every log line, logs one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            # The route template, never the raw path: paths could carry identifiers.
            route_name = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - started
            REQUESTS.labels(scope["method"], route_name, str(status)).inc()
            LATENCY.labels(scope["method"], route_name).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                route=route_name,
                status=status,
                ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()


class BodyLimitMiddleware:
    """Refuses bodies over the limit of their path with 413, by Content-Length or while streaming.

    ``max_bytes`` holds everywhere but on paths that start with one of ``large_paths`` (XML
    documents: OOTS requests and authorities' answers), which may send up to ``large_max_bytes``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, large_max_bytes: int, large_paths: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.large_max_bytes = large_max_bytes
        self.large_paths = large_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.large_max_bytes if scope["path"].startswith(self.large_paths) else self.max_bytes
        headers: dict[bytes, bytes] = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(scope, receive, send, Problem(413, "request.too_large", _too_large(limit)))
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


class RequestGuardMiddleware:
    """Refuses, before any route runs, what no route should have to handle.

    * Two ``Authorization`` headers (400 ``auth.duplicate_header``), anywhere: components could
      disagree about which one counts.
    * Control characters in the path or the query (422 ``request.invalid``), anywhere: no
      identifier or filter has them, and the database refuses some (NUL).
    * A body sent to a path under ``bearer_prefix`` (the API) without a valid bearer token (401,
      and the body is never read): FastAPI reads and validates a body before any dependency
      runs, so the routes cannot authenticate first themselves. The principal found is handed
      to the route's own check (:func:`broker.clients.auth.authenticate`), which adds the role.
    """

    def __init__(self, app: ASGIApp, principals: PrincipalCache, bearer_prefix: str) -> None:
        self.app = app
        self.principals = principals
        self.bearer_prefix = bearer_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        names = [name for name, _ in scope["headers"]]
        refusal = _duplicate_authorization(names) or _control_characters(scope)
        if refusal is None and scope["path"].startswith(self.bearer_prefix) and _has_body(scope):
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            try:
                principal = await run_in_threadpool(authenticate_header, header, self.principals)
            except Problem as problem:
                refusal = problem
            else:
                scope.setdefault("state", {})[AUTHENTICATED_PRINCIPAL] = principal
        if refusal is not None:
            await _refuse(scope, receive, send, refusal)
            return
        await self.app(scope, receive, send)


def _duplicate_authorization(header_names: list[bytes]) -> Problem | None:
    if header_names.count(b"authorization") < 2:
        return None
    return Problem(400, "auth.duplicate_header", "Send exactly one Authorization header.")


def _control_characters(scope: Scope) -> Problem | None:
    fields = ["path"] if control_character_in(scope["path"]) else []
    query = urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    for name, value in query:
        if control_character_in(name):
            fields.append("query")  # such a name is the hostile input itself: not echoed
        elif control_character_in(value):
            fields.append(name[:200])
    if not fields:
        return None
    listed = list(dict.fromkeys(fields))[:MAX_LISTED_ERRORS]
    errors = [{"field": field, "message": "must not contain control characters"} for field in listed]
    return Problem(422, "request.invalid", f"Invalid fields: {', '.join(listed)}.", errors=errors)


def _has_body(scope: Scope) -> bool:
    headers: dict[bytes, bytes] = dict(scope["headers"])
    return headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers


async def _refuse(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
    # Answered before the body is read: the connection is closed rather than drained.
    response = problem_response(problem)
    response.headers["Connection"] = "close"
    await response(scope, receive, send)
