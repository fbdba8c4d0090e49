"""Remote exchanges in a serving process: push calls, waiting for pull answers, background sweeps.

The request that creates an exchange commits it ``routed`` (with its pull task, if any) before
anything goes over the network; then:

* push: a worker thread calls the authority and ends the exchange in a second transaction;
* pull: the authority's adapter takes the task and posts its answer to any broker process,
  which ends the exchange in that request's transaction.

Meanwhile the request waits up to ``sync_timeout_seconds`` for the end and answers with it, or
with 202 and the exchange URL. Exchanges ended later reach the requester through polling or
the signed callback. The sweeps expire exchanges nobody answered, drop evidence whose retention
has passed and send due callbacks.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.orm import Session

from adapters.protocol import AdapterOutcome, EvidenceQuery
from broker.callbacks import service as callbacks
from broker.callbacks.signing import requester_secret, sign
from broker.exchange import repository as exchange_repository
from broker.exchange.service import TERMINAL_STATES, ExchangeResult, problem_of
from broker.logging import get_logger
from broker.registry.schemas import AuthoritySpec
from broker.tasks import repository, service

if TYPE_CHECKING:
    from broker.context import BrokerContext

log = get_logger(__name__)

# How often a waiting request looks at the database for an answer another process received.
POLL_SECONDS = 0.2


class Waiters:
    """Wakes requests of this process that wait for an exchange to end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    def register(self, exchange_id: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(exchange_id, threading.Event())

    def release(self, exchange_id: str) -> None:
        with self._lock:
            self._events.pop(exchange_id, None)

    def notify(self, exchange_id: str) -> None:
        with self._lock:
            event = self._events.get(exchange_id)
        if event is not None:
            event.set()


class RemoteExchanges:
    def __init__(self, context: BrokerContext) -> None:
        self._context = context
        self._settings = context.settings
        self._pool = ThreadPoolExecutor(max_workers=self._settings.push_workers, thread_name_prefix="push")
        self.waiters = Waiters()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._callback_http: httpx.Client | None = None

    # --- the request path ----------------------------------------------------------------

    def begin(self, session: Session, result: ExchangeResult) -> None:
        """In the routed transaction: a pull exchange gets its task (committed together)."""
        query = result.pending
        if query is None:
            return
        authority = self._context.registry.get().authorities[query.authority_id]
        if authority.binding == "pull":
            service.enqueue(session, query, self._context.clock.now())

    def settle(self, result: ExchangeResult) -> ExchangeResult:
        """After the commit: start the call, wait up to the synchronous window, answer with the state."""
        query = result.pending
        if query is None:
            return result
        event = self.waiters.register(query.request_id)
        try:
            authority = self._context.registry.get().authorities[query.authority_id]
            window = self._settings.sync_timeout_seconds
            if authority.binding == "http_push":
                future = self._pool.submit(self._push, authority, query)
                with contextlib.suppress(FutureTimeout):
                    future.result(timeout=window)
            else:
                self._wait(query.request_id, event, window)
        finally:
            self.waiters.release(query.request_id)
        with self._context.sessions() as session:
            exchange = exchange_repository.get(session, query.request_id)
        assert exchange is not None
        return ExchangeResult(exchange, problem_of(exchange))

    def _wait(self, exchange_id: str, event: threading.Event, window: float) -> None:
        deadline = time.monotonic() + window
        while (remaining := deadline - time.monotonic()) > 0:
            if event.wait(min(POLL_SECONDS, remaining)):
                return
            with self._context.sessions() as session:
                if repository.exchange_state(session, exchange_id) in TERMINAL_STATES:
                    return

    def _push(self, authority: AuthoritySpec, query: EvidenceQuery) -> None:
        try:
            outcome = self._context.push_adapter(authority).fetch(query)
        except Exception as error:  # a fault of ours must still end the exchange
            log.error("push_error", exchange=query.request_id, error_type=type(error).__name__)
            outcome = AdapterOutcome.failure("authority.error", f"the push call failed ({type(error).__name__})")
        self.finish(query.request_id, outcome)

    def finish(self, exchange_id: str, outcome: AdapterOutcome) -> None:
        deps = self._context.exchange_dependencies()
        with self._context.unit_of_work() as session:
            finished = service.finish(session, deps, exchange_id, outcome)
        self.ended(exchange_id, finished is not None and finished.callback_queued)

    def ended(self, exchange_id: str, callback_queued: bool) -> None:
        """An exchange ended in this process (and is committed): wake its waiter and the sender."""
        self.waiters.notify(exchange_id)
        if callback_queued:
            self._wake.set()

    # --- background sweeps -----------------------------------------------------------------

    def start(self) -> None:
        if self._sweeper is None:
            self._stop.clear()
            self._sweeper = threading.Thread(target=self._sweep_loop, name="remote-sweeps", daemon=True)
            self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=10)
            self._sweeper = None
        self._pool.shutdown(wait=False, cancel_futures=False)
        if self._callback_http is not None:
            self._callback_http.close()

    def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep_once()
            except Exception as error:  # the sweeps must outlive a database hiccup
                log.warning("sweep_failed", error_type=type(error).__name__, error=str(error)[:200])
            self._wake.wait(self._settings.background_interval_seconds)
            self._wake.clear()

    def sweep_once(self) -> None:
        deps = self._context.exchange_dependencies()
        with self._context.unit_of_work() as session:
            expired = service.expire_overdue(session, deps, timedelta(seconds=self._settings.exchange_expiry_seconds))
            purged = exchange_repository.purge_evidence(session, self._context.clock.now())
        if purged:
            log.info("evidence_purged", exchanges=purged)
        for finished in expired:
            log.info("exchange_expired", exchange=finished.exchange.id)
            self.waiters.notify(finished.exchange.id)
        self.send_callbacks()

    def send_callbacks(self) -> None:
        settings = self._settings
        now = self._context.clock.now()
        lease = timedelta(seconds=settings.callback_timeout_seconds * 2 + 5)
        with self._context.unit_of_work() as session:
            due = callbacks.take_due(session, now, lease, limit=50)
        if not due:
            return
        if self._callback_http is None:
            self._callback_http = httpx.Client(
                timeout=settings.callback_timeout_seconds, follow_redirects=False, trust_env=False
            )
        master = self._context.keys.callback_secret()
        for callback in due:
            headers = {"Content-Type": "application/json"}
            headers |= sign(requester_secret(master, callback.requester_id), callback.body)
            error: str | None = None
            try:
                response = self._callback_http.post(callback.url, content=callback.body, headers=headers)
                if not 200 <= response.status_code < 300:
                    error = f"HTTP {response.status_code}"
            except httpx.HTTPError as failure:
                error = type(failure).__name__
            with self._context.unit_of_work() as session:
                callbacks.record_attempt(
                    session, callback.exchange_id, error, self._context.clock.now(), settings.callback_max_attempts
                )
            log.info("callback_sent", exchange=callback.exchange_id, error=error)
