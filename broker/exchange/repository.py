"""All exchange queries."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.db.models import Exchange


def get(session: Session, exchange_id: str) -> Exchange | None:
    return session.get(Exchange, exchange_id)


def by_idempotency_key(session: Session, requester_id: int, key: str) -> Exchange | None:
    return session.scalars(
        select(Exchange).where(Exchange.requester_id == requester_id, Exchange.idempotency_key == key)
    ).first()


def add(session: Session, exchange: Exchange) -> Exchange:
    session.add(exchange)
    return exchange
