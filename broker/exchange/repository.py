"""All exchange queries."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broker.db.models import Exchange
from broker.exchange.lifecycle import State


def get(session: Session, exchange_id: str) -> Exchange | None:
    return session.get(Exchange, exchange_id)


def by_idempotency_key(session: Session, requester_id: int, key: str) -> Exchange | None:
    return session.scalars(
        select(Exchange).where(Exchange.requester_id == requester_id, Exchange.idempotency_key == key)
    ).first()


def lock(session: Session, exchange_id: str) -> Exchange | None:
    """The exchange, its row locked until the transaction ends (PostgreSQL; SQLite locks the database)."""
    return session.scalars(select(Exchange).where(Exchange.id == exchange_id).with_for_update()).first()


def of_subjects(session: Session, pseudonyms: Collection[str], limit: int) -> Sequence[Exchange]:
    """The newest exchanges about any of these subject pseudonyms (a citizen's cockpit)."""
    if not pseudonyms:
        return []
    return session.scalars(
        select(Exchange)
        .where(Exchange.subject_pseudonym.in_(sorted(pseudonyms)))
        .order_by(Exchange.created_at.desc(), Exchange.id)
        .limit(limit)
    ).all()


def state(session: Session, exchange_id: str) -> str | None:
    return session.scalar(select(Exchange.state).where(Exchange.id == exchange_id))


def overdue(session: Session, created_before: datetime, limit: int) -> Sequence[Exchange]:
    """Exchanges still waiting for their authority that were created before the cut-off, locked."""
    return session.scalars(
        select(Exchange)
        .where(Exchange.state == State.ROUTED, Exchange.created_at < created_before)
        .order_by(Exchange.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def purge_evidence(session: Session, now: datetime) -> int:
    """Drop evidence whose retention (delivered) or preview time (held) has passed.

    The exchange and its log entries stay; only the personal data of the document goes.
    """
    result = session.execute(
        update(Exchange).where(Exchange.evidence.is_not(None), Exchange.expires_at <= now).values(evidence=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
