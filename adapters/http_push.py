"""The HTTP push binding: the broker calls the authority's endpoint and gets a signed answer.

Wire protocol (see ``adapters/signing.py`` for the signatures, ``adapters/wire.py`` for answers):
``POST <endpoint_url>`` with the :class:`EvidenceQuery` as JSON, signed by the broker; the
authority answers ``200`` with a signed answer (evidence XML, or a JSON outcome). Anything
else — another status, no or a wrong signature, an answer that is not of the protocol — ends
the exchange ``failed`` with a reason code that names the fault.

Retries: only a failure to *connect* (nothing of the request reached the authority) is retried,
with exponential backoff, inside the authority's time budget. Once the request may have been
sent — a timeout, a dropped connection, any response, even a 5xx — it is not repeated: asking a
register for evidence is not idempotent for the register (it may issue a numbered document,
charge a fee, or record the access), so a repeat could duplicate an effect.

Timeouts: ``timeout_seconds`` of the authority bounds the whole call, connection attempts,
backoff, sending and reading together; the call is cancelled at that deadline even if the
authority keeps trickling bytes (httpx's own timeouts bound each read, not the total).

Circuit breaker (one per authority, in-process state): after ``failure_threshold`` consecutive
availability failures (unreachable, timeout, broken connection, 5xx) the breaker opens and calls
fail at once with ``authority.unavailable`` for ``reset_seconds``; then one trial call is let
through (half-open): success closes the breaker, failure opens it again. Each broker process
keeps its own breakers: they protect that process's threads and the authority from a pile-up,
and need no coordination. Wrong answers (bad signature, garbage) do not trip the breaker: the
authority is up, and every such answer ends its exchange with its own reason.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.protocol import AdapterOutcome, EvidenceQuery
from adapters.signing import SignatureError, SignedMessage, content_digest, load_public_key, sign, verify
from adapters.wire import JSON, MAX_ANSWER_BYTES, GarbageAnswer, XmlCheck, decode_answer

T = TypeVar("T")

# Builds the push client's transport from its connection limits and TLS options (httpx's
# ``verify``/``cert``): the broker passes one that enforces its egress policy.
TransportFactory = Callable[[httpx.Limits, dict[str, Any]], httpx.AsyncBaseTransport]


class DestinationRefused(httpx.TransportError):
    """An injected transport refused to call where the URL points (the broker's egress policy): nothing was sent."""

    def __init__(self, reason: str, detail: str, request: httpx.Request | None = None) -> None:
        super().__init__(f"{reason}: {detail}", request=request)
        self.reason = reason


class CircuitBreaker:
    def __init__(self, failure_threshold: int = 5, reset_seconds: float = 30.0) -> None:
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half_open" if time.monotonic() - self._opened_at >= self.reset_seconds else "open"

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if time.monotonic() - self._opened_at < self.reset_seconds or self._trial_running:
                return False
            self._trial_running = True  # half-open: exactly one trial call at a time
            return True

    def succeeded(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_running = False
            if self._opened_at is not None or self._failures >= self.failure_threshold:
                self._opened_at = time.monotonic()

    def released(self) -> None:
        """A call that said nothing about availability (e.g. a badly signed answer) ended."""
        with self._lock:
            self._trial_running = False


class Breakers:
    """The breakers of one process, one per authority id."""

    def __init__(self, failure_threshold: int = 5, reset_seconds: float = 30.0) -> None:
        self._settings = (failure_threshold, reset_seconds)
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_authority(self, authority_id: str) -> CircuitBreaker:
        with self._lock:
            breaker = self._breakers.get(authority_id)
            if breaker is None:
                breaker = self._breakers[authority_id] = CircuitBreaker(*self._settings)
            return breaker

    def states(self) -> dict[str, str]:
        """The state of each breaker made so far, by authority id (for metrics)."""
        with self._lock:
            breakers = dict(self._breakers)
        return {authority_id: breaker.state for authority_id, breaker in breakers.items()}


@dataclass(frozen=True)
class TlsSettings:
    """Optional mutual TLS towards authorities: the broker's client certificate and the CAs it trusts."""

    client_cert: str | None = None  # PEM file with the certificate (and the key, unless client_key)
    client_key: str | None = None
    ca_bundle: str | None = None  # PEM file of CAs for the authorities' server certificates

    def httpx_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.ca_bundle:
            options["verify"] = self.ca_bundle
        if self.client_cert:
            options["cert"] = (self.client_cert, self.client_key) if self.client_key else self.client_cert
        return options


class PushTransport:
    """One event loop thread and one pooled async HTTP client for all push calls of a process.

    The async client lets a call be cancelled at its deadline wherever it is; callers stay
    synchronous and block on the result. Its transport is the caller's: the broker's decides
    where a call may go (``broker.egress``).
    """

    def __init__(self, transport: TransportFactory, tls: TlsSettings | None = None, max_connections: int = 100) -> None:
        self._tls = tls or TlsSettings()
        self._max_connections = max_connections
        self._transport = transport
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="push-transport", daemon=True).start()
                self._loop = loop
            return self._loop

    def _http(self) -> httpx.AsyncClient:
        # Created on the loop's thread, where it is used.
        if self._client is None:
            transport = self._transport(httpx.Limits(max_connections=self._max_connections), self._tls.httpx_options())
            self._client = httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
        return self._client

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._start()).result()

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[httpx.Response, bytes]:
        """The response and, for a 200, its body: read up to MAX_ANSWER_BYTES, the call cut off beyond.

        Raises :class:`GarbageAnswer` for an answer too large or content-encoded (a compressed
        answer could inflate far beyond the limit within one chunk; the request asks for identity).
        """
        async with self._http().stream("POST", url, content=body, headers=headers, timeout=timeout) as response:
            if response.status_code != 200:
                return response, b""  # the status alone decides; whatever follows is not read
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
                raise GarbageAnswer(f"the answer announces {declared} bytes, over the limit of {MAX_ANSWER_BYTES}")
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding != "identity":
                raise GarbageAnswer(f"the answer is content-encoded ({encoding}); answers are sent as they are")
            content = bytearray()
            async for chunk in response.aiter_raw():
                content += chunk
                if len(content) > MAX_ANSWER_BYTES:
                    raise GarbageAnswer(f"the answer exceeds {MAX_ANSWER_BYTES} bytes; reading stopped there")
            return response, bytes(content)

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.aclose(), loop).result(timeout=5)
            self._client = None
        loop.call_soon_threadsafe(loop.stop)


@dataclass(frozen=True)
class RetryPolicy:
    connect_retries: int = 2
    backoff_seconds: float = 0.2  # doubles after each attempt


class HttpPushAdapter:
    """An :class:`~adapters.protocol.EvidenceAdapter` that asks an authority over HTTP."""

    def __init__(
        self,
        authority_id: str,
        endpoint_url: str,
        timeout_seconds: float,
        public_key_pem: str | None,
        signing_key: Ed25519PrivateKey,
        transport: PushTransport,
        breaker: CircuitBreaker,
        check_xml: XmlCheck,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.authority_id = authority_id
        self.endpoint_url = endpoint_url
        self.timeout_seconds = timeout_seconds
        self._public_key_pem = public_key_pem
        self._signing_key = signing_key
        self._transport = transport
        self._breaker = breaker
        self._check_xml = check_xml
        self._retry = retry or RetryPolicy()

    def fetch(self, query: EvidenceQuery) -> AdapterOutcome:
        return self.fetch_raw(json.dumps(query.to_json(), separators=(",", ":")).encode("utf-8"))

    def fetch_raw(self, body: bytes, signing_key: Ed25519PrivateKey | None = None) -> AdapterOutcome:
        """Send ``body`` as a query (the conformance kit sends malformed ones and foreign signatures)."""
        if not self._public_key_pem:
            return AdapterOutcome.failure(
                "authority.no_key", f"authority {self.authority_id} has no registered public key"
            )
        if not self._breaker.allow():
            return AdapterOutcome.failure(
                "authority.unavailable",
                f"circuit open after {self._breaker.failure_threshold} consecutive failures",
            )
        deadline = time.monotonic() + self.timeout_seconds
        try:
            outcome, available = self._transport.run(
                asyncio.wait_for(self._call(body, signing_key, deadline), self.timeout_seconds)
            )
        except TimeoutError:
            outcome, available = self._timeout(), False
        if available is True:
            self._breaker.succeeded()
        elif available is False:
            self._breaker.failed()
        else:
            self._breaker.released()
        return outcome

    def _timeout(self) -> AdapterOutcome:
        return AdapterOutcome.failure(
            "authority.timeout", f"no answer within {self.timeout_seconds:g} s", timed_out=True
        )

    async def _call(
        self, body: bytes, signing_key: Ed25519PrivateKey | None, deadline: float
    ) -> tuple[AdapterOutcome, bool | None]:
        """The outcome, and what it says about the authority's availability (None: nothing)."""
        path = urlsplit(self.endpoint_url).path or "/"
        headers = {"Content-Type": JSON, "Accept": "application/xml, application/json", "Accept-Encoding": "identity"}
        headers |= sign(SignedMessage(JSON, body, method="POST", path=path), signing_key or self._signing_key)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._timeout(), False
            try:
                response, content = await self._transport.post(self.endpoint_url, body, headers, remaining)
                break
            except GarbageAnswer as error:
                # The authority is up; its answer is not one of the protocol.
                return AdapterOutcome.failure("authority.garbage", str(error)), True
            except DestinationRefused as refused:
                # The broker's policy, not the authority: nothing to retry, nothing about its availability.
                detail = f"the broker's egress policy refuses the authority's endpoint ({refused.reason})"
                return AdapterOutcome.failure("authority.egress_refused", detail), None
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                # Nothing reached the authority, so trying again cannot duplicate anything.
                attempt += 1
                pause = self._retry.backoff_seconds * 2 ** (attempt - 1)
                if attempt > self._retry.connect_retries or time.monotonic() + pause >= deadline:
                    return AdapterOutcome.failure(
                        "authority.unreachable", f"cannot connect ({type(error).__name__})"
                    ), False
                await asyncio.sleep(pause)
            except httpx.TimeoutException:
                return self._timeout(), False
            except httpx.HTTPError as error:
                return AdapterOutcome.failure(
                    "authority.connection_lost", f"the connection failed mid-call ({type(error).__name__})"
                ), False
        return self._read(response, content, content_digest(body))

    def _read(
        self, response: httpx.Response, content: bytes, request_digest: str
    ) -> tuple[AdapterOutcome, bool | None]:
        if response.status_code >= 500:
            return AdapterOutcome.failure(
                "authority.server_error", f"the authority answered HTTP {response.status_code}"
            ), False
        if response.status_code != 200:
            return AdapterOutcome.failure(
                "authority.refused", f"the authority refused the request with HTTP {response.status_code}"
            ), None
        content_type = response.headers.get("content-type", "")
        message = SignedMessage(content_type, content, status=200, request_digest=request_digest)
        try:
            assert self._public_key_pem is not None
            verify(message, response.headers, load_public_key(self._public_key_pem))
        except SignatureError as error:
            reason = "authority.unsigned" if error.reason == "signature.missing" else "authority.bad_signature"
            return AdapterOutcome.failure(reason, f"{error.reason}: {error.detail}"), True
        try:
            return decode_answer(content_type, content, self._check_xml), True
        except GarbageAnswer as error:
            return AdapterOutcome.failure("authority.garbage", str(error)), True
