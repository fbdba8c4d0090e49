"""The callback outbox: a callback is queued with the end of its exchange, due ones go to the sender.

Never commits; the caller's unit of work does. :mod:`broker.exchange.lifecycle` queues one
callback when an exchange with a ``callback_url`` reaches a terminal state. Delivery is at least
once: the sender takes a delivery by moving its ``due_at`` forward (a lease), so a crashed
sender's callbacks are sent again later, and receivers drop duplicates by exchange id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from broker.callbacks import repository
from broker.db.models import CallbackDelivery, Exchange

# Backoff after a failed attempt: 2, 4, 8, … seconds, at most this long.
MAX_BACKOFF_SECONDS = 300
# Due deliveries looked at in one round: the requesters with a free slot among them get a turn;
# the next round (woken as soon as a send ends) looks again, without those that are now busy.
SCAN_LIMIT = 200


def enqueue(session: Session, exchange: Exchange, now: datetime) -> bool:
    """Queue the callback of an ended exchange; False if it asked for none."""
    if not exchange.callback_url:
        return False
    # No relationship ties this row to its exchange, so the flush would not know the exchange row must come first.
    session.flush()
    repository.add(
        session,
        CallbackDelivery(exchange_id=exchange.id, state="pending", attempts=0, due_at=now, created_at=now),
    )
    return True


def take_due(
    session: Session, now: datetime, lease: timedelta, limit: int, in_flight: Mapping[int, int], per_requester: int
) -> list[str]:
    """Lease up to ``limit`` due deliveries for one attempt each; returns their exchange ids.

    ``in_flight`` counts the sends under way per requester id: no requester gets more than
    ``per_requester`` at once, and the due deliveries of a requester with none left are not
    even looked at, so they cannot crowd out the others'.
    """
    sending = Counter(in_flight)
    busy = [requester for requester, count in sending.items() if count >= per_requester]
    taken: list[str] = []
    for exchange_id, requester_id in repository.due(session, now, SCAN_LIMIT, busy):
        if len(taken) >= limit:
            break
        if sending[requester_id] >= per_requester:
            continue
        repository.lease(session, exchange_id, now + lease)
        sending[requester_id] += 1
        taken.append(exchange_id)
    return taken


def give_up(session: Session, exchange_id: str, why: str, now: datetime) -> None:
    repository.settle(session, exchange_id, "failed", error=why[:200], at=now)


def record_attempt(session: Session, exchange_id: str, error: str | None, now: datetime, max_attempts: int) -> None:
    delivery = repository.lock(session, exchange_id)
    if delivery is None or delivery.state != "pending":
        return
    if error is None:
        repository.settle(session, exchange_id, "delivered", error=None, at=now)
    elif delivery.attempts >= max_attempts:
        repository.settle(session, exchange_id, "failed", error=error[:200], at=now)
    else:
        backoff = timedelta(seconds=min(MAX_BACKOFF_SECONDS, 2**delivery.attempts))
        repository.retry_at(session, exchange_id, now + backoff, error[:200])
