"""Sends due callbacks: signed ``POST``s of the ended exchange to the requester's ``callback_url``.

Runs in its own background thread (``broker.background``), so a slow receiver never holds up
the sweeps that expire exchanges and purge evidence. Each attempt is recorded in its own short
transaction after the HTTP call: no transaction stays open across the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import httpx

from broker.callbacks import service
from broker.callbacks.signing import requester_secret, sign
from broker.clock import Clock
from broker.db.models import Exchange
from broker.db.session import Database
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
        self, database: Database, keys: KeyStore, clock: Clock, timeout_seconds: float, max_attempts: int
    ) -> None:
        self._database = database
        self._keys = keys
        self._clock = clock
        self._timeout = timeout_seconds
        self._max_attempts = max_attempts
        # A taken delivery is offered again only after the attempt could have ended.
        self._lease = timedelta(seconds=timeout_seconds * 2 + 5)
        self._http: httpx.Client | None = None

    def send_due(self, limit: int = 50) -> int:
        """One round: send what is due now; returns how many were attempted."""
        due = self._take(limit)
        if not due:
            return 0
        if self._http is None:
            self._http = httpx.Client(timeout=self._timeout, follow_redirects=False, trust_env=False)
        master = self._keys.callback_secret()
        for callback in due:
            headers = {"Content-Type": "application/json"}
            headers |= sign(requester_secret(master, callback.requester_id), callback.body)
            error: str | None = None
            try:
                response = self._http.post(callback.url, content=callback.body, headers=headers)
                if not 200 <= response.status_code < 300:
                    error = f"HTTP {response.status_code}"
            except httpx.HTTPError as failure:
                error = type(failure).__name__
            with self._database.unit_of_work() as session:
                service.record_attempt(session, callback.exchange_id, error, self._clock.now(), self._max_attempts)
            log.info("callback_sent", exchange=callback.exchange_id, error=error)
        return len(due)

    def _take(self, limit: int) -> list[DueCallback]:
        now = self._clock.now()
        taken = []
        with self._database.unit_of_work() as session:
            for exchange_id in service.take_due(session, now, self._lease, limit):
                exchange = exchanges.get(session, exchange_id)
                if exchange is None or not exchange.callback_url:
                    service.give_up(session, exchange_id, "the exchange or its callback URL is gone", now)
                    continue
                body = callback_body(exchange)
                taken.append(DueCallback(exchange.id, exchange.requester_id, exchange.callback_url, body))
        return taken

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
