"""The callback outbox: queue a callback when an exchange ends, hand due ones to the sender.

Never commits; the caller's unit of work does. Delivery is at least once: a sender takes a
delivery by moving its ``due_at`` forward (a lease), so a crashed sender's callbacks are sent
again later, and receivers drop duplicates by exchange id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from broker.callbacks import repository
from broker.db.models import CallbackDelivery, Exchange

# Backoff after a failed attempt: 2, 4, 8, … seconds, at most this long.
MAX_BACKOFF_SECONDS = 300


@dataclass(frozen=True)
class DueCallback:
    exchange_id: str
    requester_id: int
    url: str
    body: bytes


def enqueue(session: Session, exchange: Exchange, now: datetime) -> bool:
    if not exchange.callback_url:
        return False
    repository.add(
        session,
        CallbackDelivery(exchange_id=exchange.id, state="pending", attempts=0, due_at=now, created_at=now),
    )
    return True


def body_of(exchange: Exchange) -> bytes:
    from broker.exchange.routes import exchange_out  # the same document GET /v1/evidence-requests/{id} gives

    document = {"type": "exchange.ended", "exchange": exchange_out(exchange).model_dump(mode="json", exclude_none=True)}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def take_due(session: Session, now: datetime, lease: timedelta, limit: int) -> list[DueCallback]:
    taken = []
    for delivery in repository.due(session, now, limit):
        exchange = repository.exchange(session, delivery.exchange_id)
        if exchange is None or not exchange.callback_url:
            delivery.state = "failed"
            delivery.last_error = "the exchange or its callback URL is gone"
            continue
        delivery.attempts += 1
        delivery.due_at = now + lease
        taken.append(DueCallback(exchange.id, exchange.requester_id, exchange.callback_url, body_of(exchange)))
    return taken


def record_attempt(session: Session, exchange_id: str, error: str | None, now: datetime, max_attempts: int) -> None:
    delivery = repository.lock(session, exchange_id)
    if delivery is None or delivery.state != "pending":
        return
    if error is None:
        delivery.state = "delivered"
        delivery.delivered_at = now
        delivery.last_error = None
        return
    delivery.last_error = error[:200]
    if delivery.attempts >= max_attempts:
        delivery.state = "failed"
    else:
        delivery.due_at = now + timedelta(seconds=min(MAX_BACKOFF_SECONDS, 2**delivery.attempts))


def state_of(session: Session, exchange_id: str) -> CallbackDelivery | None:
    return repository.get(session, exchange_id)
