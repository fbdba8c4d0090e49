"""Sends due callbacks: signed ``POST``s of the ended exchange to the requester's ``callback_url``.

One slow receiver delays only its own requester. The ``callbacks`` job (``broker.background``,
a thread of its own, apart from the sweeps that expire exchanges and purge evidence) takes due
deliveries and hands them to an event loop that sends them side by side: at most
``concurrency`` at once in a process, at most ``per_requester`` to one requester, each attempt
cut off after ``timeout_seconds`` whatever the receiver does (a receiver that accepts and never
answers, or trickles bytes, holds one slot of its own requester for that long). The answer's
status is all that is read, never its body. A requester with all its slots busy is skipped, so
its other due callbacks wait in the outbox, not in front of anybody else's.

Every call goes through the egress policy (``broker.egress``): the address is checked when the
connection is made. Each attempt is recorded in its own short transaction after the HTTP call:
no transaction stays open across the network.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx

from adapters.http_push import DestinationRefused
from broker.callbacks import service
from broker.callbacks.signing import requester_secret, sign
from broker.clock import Clock
from broker.db.models import Exchange
from broker.db.session import Database
from broker.egress import EgressPolicy, GuardedTransport
from broker.exchange import repository as exchanges
from broker.exchange.presenters import exchange_out
from broker.keys.store import KeyStore
from broker.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class DueCallback:
    exchange_id: str
    requester_id: int
    url: str
    body: bytes


def callback_body(exchange: Exchange) -> bytes:
    """The document GET /v1/evidence-requests/{id} gives, as ``{"type": "exchange.ended", "exchange": …}``."""
    document = {"type": "exchange.ended", "exchange": exchange_out(exchange).model_dump(mode="json", exclude_none=True)}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class CallbackSender:
    def __init__(
        self,
        database: Database,
        keys: KeyStore,
        clock: Clock,
        egress: EgressPolicy,
        *,
        timeout_seconds: float,
        max_attempts: int,
        concurrency: int,
        per_requester: int,
        on_free: Callable[[], None],
    ) -> None:
        self._database = database
        self._keys = keys
        self._clock = clock
        self._egress = egress
        self._timeout = timeout_seconds
        self._max_attempts = max_attempts
        self._concurrency = concurrency
        self._per_requester = per_requester
        # Told when a send ends, so that what waited for its slot goes out now, not next round.
        self._on_free = on_free
        # A taken delivery is offered again only after the attempt could have ended.
        self._lease = timedelta(seconds=timeout_seconds * 2 + 5)
        self._lock = threading.Lock()
        self._in_flight: Counter[int] = Counter()  # requester id → sends under way
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.AsyncClient | None = None

    def send_due(self) -> int:
        """One round: start sending what is due and has a free slot; returns how many were started."""
        with self._lock:
            in_flight = Counter(self._in_flight)
        room = self._concurrency - in_flight.total()
        if room <= 0:
            return 0
        due = self._take(room, in_flight)
        if not due:
            return 0
        with self._lock:
            self._in_flight.update(callback.requester_id for callback in due)
        loop = self._start()
        master = self._keys.callback_secret()
        for callback in due:
            asyncio.run_coroutine_threadsafe(self._send(callback, master), loop)
        return len(due)

    def _take(self, room: int, in_flight: Counter[int]) -> list[DueCallback]:
        now = self._clock.now()
        taken = []
        with self._database.unit_of_work() as session:
            for exchange_id in service.take_due(session, now, self._lease, room, in_flight, self._per_requester):
                exchange = exchanges.get(session, exchange_id)
                if exchange is None or not exchange.callback_url:
                    service.give_up(session, exchange_id, "the exchange or its callback URL is gone", now)
                    continue
                body = callback_body(exchange)
                taken.append(DueCallback(exchange.id, exchange.requester_id, exchange.callback_url, body))
        return taken

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="callback-sender", daemon=True).start()
                self._loop = loop
            return self._loop

    def _client(self) -> httpx.AsyncClient:
        # Created on the loop's thread, where it is used.
        if self._http is None:
            limits = httpx.Limits(max_connections=self._concurrency)
            self._http = httpx.AsyncClient(
                transport=GuardedTransport(self._egress, limits=limits),
                timeout=self._timeout,
                follow_redirects=False,
                trust_env=False,
            )
        return self._http

    async def _post(self, callback: DueCallback, master: bytes) -> int:
        headers = {"Content-Type": "application/json"}
        headers |= sign(requester_secret(master, callback.requester_id), callback.body)
        request = self._client().build_request("POST", callback.url, content=callback.body, headers=headers)
        # Only the status counts: the body is never read, so no receiver can make the broker hold it.
        response = await self._client().send(request, stream=True)
        await response.aclose()
        return response.status_code

    async def _send(self, callback: DueCallback, master: bytes) -> None:
        try:
            error: str | None = None
            try:
                status = await asyncio.wait_for(self._post(callback, master), self._timeout)
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except DestinationRefused as refused:
                error = f"refused by the egress policy ({refused.reason})"
            except TimeoutError:
                error = f"no answer within {self._timeout:g} s"
            except httpx.HTTPError as failure:
                error = type(failure).__name__
            # The database is not the loop's business: the attempt is recorded on a worker thread.
            await asyncio.to_thread(self._record, callback.exchange_id, error)
            log.info("callback_sent", exchange=callback.exchange_id, error=error)
        except Exception as failure:  # a lost record is sent again after its lease; the loop goes on
            log.warning("callback_failed", exchange=callback.exchange_id, error_type=type(failure).__name__)
        finally:
            with self._lock:
                self._in_flight[callback.requester_id] -= 1
                if self._in_flight[callback.requester_id] <= 0:
                    del self._in_flight[callback.requester_id]
            self._on_free()

    def _record(self, exchange_id: str, error: str | None) -> None:
        with self._database.unit_of_work() as session:
            service.record_attempt(session, exchange_id, error, self._clock.now(), self._max_attempts)

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        # Sends still under way are dropped: their deliveries stay leased and go out again later.
        asyncio.run_coroutine_threadsafe(self._shut_down(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)

    async def _shut_down(self) -> None:
        sends = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in sends:
            task.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
