"""All queries of the pull queue and of remote exchanges (tasks, their exchanges, expiry)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from broker.db.models import AdapterTask, Client, Exchange


def add(session: Session, task: AdapterTask) -> AdapterTask:
    session.add(task)
    return task


def lock(session: Session, task_id: str) -> AdapterTask | None:
    return session.scalars(select(AdapterTask).where(AdapterTask.id == task_id).with_for_update()).first()


def claimable(session: Session, authority_id: str, now: datetime, limit: int) -> Sequence[AdapterTask]:
    """Pending tasks of an authority and leased ones whose lease ran out, oldest first, locked.

    SKIP LOCKED lets concurrent pollers of one authority take different tasks (PostgreSQL);
    SQLite serialises writers anyway.
    """
    return session.scalars(
        select(AdapterTask)
        .where(
            AdapterTask.authority_id == authority_id,
            or_(
                AdapterTask.state == "pending",
                (AdapterTask.state == "leased") & (AdapterTask.lease_until < now),
            ),
        )
        .order_by(AdapterTask.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def has_claimable(session: Session, authority_id: str, now: datetime) -> bool:
    return (
        session.scalar(
            select(AdapterTask.id)
            .where(
                AdapterTask.authority_id == authority_id,
                or_(
                    AdapterTask.state == "pending",
                    (AdapterTask.state == "leased") & (AdapterTask.lease_until < now),
                ),
            )
            .limit(1)
        )
        is not None
    )


def open_for_exchange(session: Session, exchange_id: str) -> Sequence[AdapterTask]:
    return session.scalars(
        select(AdapterTask)
        .where(AdapterTask.exchange_id == exchange_id, AdapterTask.state.in_(("pending", "leased")))
        .with_for_update()
    ).all()


def lock_exchange(session: Session, exchange_id: str) -> Exchange | None:
    return session.scalars(select(Exchange).where(Exchange.id == exchange_id).with_for_update()).first()


def exchange_state(session: Session, exchange_id: str) -> str | None:
    return session.scalar(select(Exchange.state).where(Exchange.id == exchange_id))


def overdue_exchanges(session: Session, created_before: datetime, limit: int) -> Sequence[Exchange]:
    """Exchanges still waiting for their authority that were created before the cut-off, locked."""
    return session.scalars(
        select(Exchange)
        .where(Exchange.state == "routed", Exchange.created_at < created_before)
        .order_by(Exchange.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def client(session: Session, client_id: int) -> Client | None:
    return session.get(Client, client_id)
