"""ASGI middleware: request ids and access logs, body size limits, the request guard, Prometheus metrics."""

from __future__ import annotations

import time
import traceback
import urllib.parse
import uuid
from pathlib import Path

import structlog
from prometheus_client import Counter, Histogram
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.clients.auth import AUTHENTICATED_PRINCIPAL, PrincipalCache, authenticate_header
from broker.logging import get_logger
from broker.problems import MAX_LISTED_ERRORS, Problem, problem_response, unexpected_problem
from broker.schemas_common import control_character_in

log = get_logger("broker.access")
# Where the broker's and the adapters' code lives, to tell own frames from libraries' in tracebacks.
_PROJECT_DIR = str(Path(__file__).resolve().parents[1])

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
    """Gives every request an id (echoed as X-Request-Id), binds it to every log line, logs one access line.

    It is the outermost middleware of the app, so it also answers what nothing inside handled:
    an exception becomes a complete problem response here (503 for storage failures, else 500),
    with the request id, logged with it, and never reaches Starlette's ServerErrorMiddleware or
    uvicorn — both treat an escaping exception as a broken connection and close it, which reset
    the client's next request on the same keep-alive connection.
    """

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
        response_started = False
        body_pending = _has_body(scope)

        async def receive_tracked() -> Message:
            nonlocal body_pending
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_pending = False
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            try:
                await self.app(scope, receive_tracked, send_with_id)
            except Exception as error:
                if response_started:
                    # Part of an answer is on the wire: no complete answer can follow, so the
                    # server has to close the connection; the log line still says why.
                    _log_unexpected(error, scope, status)
                    raise
                problem = unexpected_problem(error)
                _log_unexpected(error, scope, problem.status, problem.reason)
                response = problem_response(problem, scope["path"])
                if body_pending:
                    # The rest of the request's body was never read: the connection cannot carry
                    # another request, so the client is told it ends with this answer.
                    response.headers["Connection"] = "close"
                await response(scope, receive_tracked, send_with_id)
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


def _log_unexpected(error: Exception, scope: Scope, status: int, reason: str | None = None) -> None:
    """One line per unexpected error, with the request id (bound in the context) and where it was raised.

    Only the type and the innermost frame are logged, never the message or a traceback with its
    values: a driver's message can quote the parameters of a statement, i.e. personal data.
    """
    route = getattr(scope.get("route"), "path", "unmatched")
    where = _raised_where(error)
    if status == 503 and reason is not None:
        # What could not serve (storage_unavailable, seal_unavailable): the environment's failure,
        # which the broker recovers from by itself; a warning, not an error.
        event = f"{reason.partition('.')[0]}_unavailable"
        log.warning(event, reason=reason, error_type=type(error).__name__, route=route, where=where)
    else:
        log.error("unhandled_error", error_type=type(error).__name__, route=route, where=where, status=status)


def _raised_where(error: BaseException) -> str:
    """``file:line in function`` of the innermost frame of the project's own code (the line that
    called into a library is what one needs to look at), else of the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if _PROJECT_DIR in f.filename and "/.venv/" not in f.filename] or frames
    if not own:
        return "unknown"
    frame = own[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


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
