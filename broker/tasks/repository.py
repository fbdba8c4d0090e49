"""All queries of the pull queue (adapter tasks)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from broker.db.models import AdapterTask


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


def mark_leased(session: Session, task_id: str, until: datetime) -> None:
    session.execute(
        update(AdapterTask)
        .where(AdapterTask.id == task_id)
        .values(state="leased", lease_until=until, attempts=AdapterTask.attempts + 1)
    )


def close_open(session: Session, exchange_id: str, state: str, now: datetime) -> None:
    """End the open (pending or leased) tasks of an exchange; their payload holds the subject, so it goes."""
    session.execute(
        update(AdapterTask)
        .where(AdapterTask.exchange_id == exchange_id, AdapterTask.state.in_(("pending", "leased")))
        .values(state=state, payload=None, lease_until=None, completed_at=now)
        .execution_options(synchronize_session="fetch")
    )


def close(session: Session, task_id: str, state: str, now: datetime) -> None:
    session.execute(
        update(AdapterTask)
        .where(AdapterTask.id == task_id)
        .values(state=state, payload=None, lease_until=None, completed_at=now)
    )


def open_tasks(session: Session, authority_ids: Collection[str]) -> dict[str, tuple[int, datetime | None]]:
    """Per authority: its open (pending or leased) tasks and when the oldest was queued.

    Both columns of the (authority_id, state) index are constrained, so done tasks, however many,
    are never read. Authorities without open tasks are absent.
    """
    if not authority_ids:
        return {}
    rows = session.execute(
        select(AdapterTask.authority_id, func.count(), func.min(AdapterTask.created_at))
        .where(AdapterTask.authority_id.in_(authority_ids), AdapterTask.state.in_(("pending", "leased")))
        .group_by(AdapterTask.authority_id)
    )
    return {authority: (int(count), oldest) for authority, count, oldest in rows}
