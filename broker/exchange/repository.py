"""All exchange queries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
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


def purge_evidence(session: Session, now: datetime) -> int:
    """Drop evidence whose retention (delivered) or preview time (held) has passed.

    The exchange and its log entries stay; only the personal data of the document goes.
    """
    result = session.execute(
        update(Exchange).where(Exchange.evidence.is_not(None), Exchange.expires_at <= now).values(evidence=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
