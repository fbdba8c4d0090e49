"""All queries of the callback outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session

from broker.db.models import CallbackDelivery, Exchange


def add(session: Session, delivery: CallbackDelivery) -> None:
    session.add(delivery)


def due(session: Session, now: datetime, limit: int, skip_requesters: Sequence[int]) -> Sequence[Row[str, int]]:
    """(exchange id, requester id) of due deliveries, oldest first, none of ``skip_requesters``."""
    query = (
        select(CallbackDelivery.exchange_id, Exchange.requester_id)
        .join(Exchange, Exchange.id == CallbackDelivery.exchange_id)
        .where(CallbackDelivery.state == "pending", CallbackDelivery.due_at <= now)
    )
    if skip_requesters:
        query = query.where(Exchange.requester_id.not_in(skip_requesters))
    return session.execute(
        query.order_by(CallbackDelivery.due_at).limit(limit).with_for_update(skip_locked=True, of=CallbackDelivery)
    ).all()


def lock(session: Session, exchange_id: str) -> CallbackDelivery | None:
    return session.scalars(
        select(CallbackDelivery).where(CallbackDelivery.exchange_id == exchange_id).with_for_update()
    ).first()


def lease(session: Session, exchange_id: str, until: datetime) -> None:
    """Take a delivery for one attempt: it is due again only if the sender does not come back."""
    session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.exchange_id == exchange_id)
        .values(attempts=CallbackDelivery.attempts + 1, due_at=until)
    )


def settle(session: Session, exchange_id: str, state: str, *, error: str | None, at: datetime) -> None:
    """End a delivery: ``delivered`` (at ``at``) or ``failed`` (with the last error)."""
    session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.exchange_id == exchange_id)
        .values(state=state, last_error=error, delivered_at=at if state == "delivered" else None)
    )


def retry_at(session: Session, exchange_id: str, due_at: datetime, error: str) -> None:
    session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.exchange_id == exchange_id)
        .values(due_at=due_at, last_error=error)
    )


def pending_summary(session: Session) -> tuple[int, datetime | None]:
    """How many deliveries wait (pending) and when the oldest of them was queued (state index)."""
    count, oldest = session.execute(
        select(func.count(), func.min(CallbackDelivery.created_at)).where(CallbackDelivery.state == "pending")
    ).one()
    return int(count), oldest
