"""Remote exchanges in a serving process: push calls, and waiting for answers from push or pull.

The request that creates an exchange commits it ``routed`` (with its pull task, if any) before
anything goes over the network; then:

* push: a worker thread calls the authority and ends the exchange in a second transaction;
* pull: the authority's adapter takes the task and posts its answer to any broker process,
  which ends the exchange in that request's transaction.

Meanwhile the request waits up to ``sync_timeout_seconds`` for the end and answers with it, or
with 202 and the exchange URL. Exchanges ended later reach the requester through polling or
the signed callback. Expiring exchanges nobody answered is the sweeps' job (``broker.exchange.sweeps``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from sqlalchemy.orm import Session

from adapters.protocol import AdapterOutcome, EvidenceQuery
from broker.db.session import Database
from broker.exchange import lifecycle
from broker.exchange import repository as exchanges
from broker.exchange.dependencies import ExchangeDependencies
from broker.exchange.dispatch import Adapters
from broker.exchange.service import ExchangeResult
from broker.logging import get_logger
from broker.ops import metrics
from broker.problems import Problem
from broker.registry.schemas import AuthoritySpec
from broker.seal.sealer import SignerUnavailable
from broker.tasks import service

log = get_logger(__name__)

# How often a waiting request looks at the database for an answer another process received.
POLL_SECONDS = 0.2
# Seals tried for a pushed answer before its exchange ends failed (see _finish_pushed).
SEAL_ATTEMPTS = 2


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
    def __init__(
        self,
        database: Database,
        deps: ExchangeDependencies,
        adapters: Adapters,
        *,
        sync_timeout_seconds: float,
        push_workers: int,
        on_ended: Callable[[], None],
    ) -> None:
        self._database = database
        self._deps = deps
        self._adapters = adapters
        self._window = sync_timeout_seconds
        self._pool = ThreadPoolExecutor(max_workers=push_workers, thread_name_prefix="push")
        # Called after any exchange ended in this process (and is committed): wakes the callback sender.
        self._on_ended = on_ended
        self.waiters = Waiters()

    def begin(self, session: Session, result: ExchangeResult) -> None:
        """In the routed transaction: a pull exchange gets its task (committed together)."""
        query = result.pending
        if query is None:
            return
        authority = self._deps.registry.get().authorities[query.authority_id]
        if authority.binding == "pull":
            service.enqueue(session, query, self._deps.clock.now())

    def settle(self, result: ExchangeResult, window: float | None = None) -> ExchangeResult:
        """After the commit: start the call, wait up to the synchronous window (or ``window``, the
        OOTS gateway's T1), answer with the state."""
        query = result.pending
        if query is None:
            return result
        window = self._window if window is None else window
        event = self.waiters.register(query.request_id)
        try:
            authority = self._deps.registry.get().authorities[query.authority_id]
            if authority.binding == "http_push":
                future = self._pool.submit(self._push, authority, query)
                with contextlib.suppress(FutureTimeout):
                    future.result(timeout=window)
            else:
                self._wait(query.request_id, event, window)
        finally:
            self.waiters.release(query.request_id)
        with self._database.read() as session:
            exchange = exchanges.get(session, query.request_id)
        assert exchange is not None
        return ExchangeResult(exchange, lifecycle.problem_of(exchange))

    def _wait(self, exchange_id: str, event: threading.Event, window: float) -> None:
        deadline = time.monotonic() + window
        while (remaining := deadline - time.monotonic()) > 0:
            if event.wait(min(POLL_SECONDS, remaining)):
                return
            with self._database.read() as session:
                if lifecycle.is_terminal(exchanges.state(session, exchange_id)):
                    return

    def _push(self, authority: AuthoritySpec, query: EvidenceQuery) -> None:
        try:
            with metrics.authority_call(authority.id, authority.binding) as call:
                outcome = call.outcome = self._adapters.push(authority).fetch(query)
        except Exception as error:  # a fault of ours must still end the exchange
            log.error("push_error", exchange=query.request_id, error_type=type(error).__name__)
            outcome = AdapterOutcome.failure("authority.error", f"the push call failed ({type(error).__name__})")
        self._finish_pushed(query, outcome)

    def _finish_pushed(self, query: EvidenceQuery, outcome: AdapterOutcome) -> None:
        """End the exchange with the authority's outcome, on a thread nobody answers for.

        A failed signer is started afresh by the next seal, so a seal that met one is tried once
        more. If that fails too, the exchange ends ``failed`` (503 ``seal.unavailable``) at once:
        the authority has answered and the exchange was acknowledged, so it must not stay
        ``routed`` until the expiry sweep, nor its waiting request answer as if nothing had been done.
        """
        for _ in range(SEAL_ATTEMPTS):
            try:
                self.finish(query, outcome)
                return
            except SignerUnavailable:
                log.warning("seal_unavailable", exchange=query.request_id)
        problem = Problem(
            503, "seal.unavailable", "The broker could not seal the authority's evidence; ask for it again later."
        )
        with self._database.unit_of_work() as session:
            failed = service.fail(session, self._deps, query.request_id, problem)
        if failed is not None:
            self.ended(query.request_id)

    def finish(self, query: EvidenceQuery, outcome: AdapterOutcome) -> None:
        """End the routed exchange of a push call with its outcome, in a transaction of its own."""
        with self._database.unit_of_work() as session:
            finished = service.finish(session, self._deps, query.request_id, outcome, query.subject)
        if finished is not None:
            self.ended(query.request_id)

    def ended(self, exchange_id: str) -> None:
        """An exchange ended in this process (and is committed): wake its waiter and the callback sender."""
        self.waiters.notify(exchange_id)
        self._on_ended()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=False)
