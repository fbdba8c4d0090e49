"""All queries of the callback outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.db.models import CallbackDelivery, Exchange


def add(session: Session, delivery: CallbackDelivery) -> None:
    session.merge(delivery)


def due(session: Session, now: datetime, limit: int) -> Sequence[CallbackDelivery]:
    return session.scalars(
        select(CallbackDelivery)
        .where(CallbackDelivery.state == "pending", CallbackDelivery.due_at <= now)
        .order_by(CallbackDelivery.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def lock(session: Session, exchange_id: str) -> CallbackDelivery | None:
    return session.scalars(
        select(CallbackDelivery).where(CallbackDelivery.exchange_id == exchange_id).with_for_update()
    ).first()


def get(session: Session, exchange_id: str) -> CallbackDelivery | None:
    return session.get(CallbackDelivery, exchange_id)


def exchange(session: Session, exchange_id: str) -> Exchange | None:
    return session.get(Exchange, exchange_id)
