"""Every rollout query: conformance runs, and what the exchanges say about an authority's service
of an evidence type (the index ``ix_exchanges_authority_outcomes`` serves each of them)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, not_, select
from sqlalchemy.orm import Session

from broker.clock import as_utc
from broker.db.models import ConformanceRun, Exchange

# The states an exchange routed to an authority ends in because of the authority's answer (a
# refusal after routing is the citizen's, at the preview).
ENDED = ("delivered", "failed", "expired")


def _is_error() -> ColumnElement[bool]:
    """An ended exchange the authority failed: expired, or failed for another reason than the
    register's answer that it holds no such subject or several (a correct answer)."""
    return and_(
        Exchange.state.in_(("failed", "expired")),
        not_(func.coalesce(Exchange.reason, "").like("subject.%")),
    )


def _of(authority_id: str, evidence_type_id: str) -> ColumnElement[bool]:
    return and_(Exchange.authority_id == authority_id, Exchange.evidence_type_id == evidence_type_id)


def last_delivered(session: Session, authority_id: str, evidence_type_id: str) -> datetime | None:
    found = session.scalar(
        select(func.max(Exchange.updated_at)).where(_of(authority_id, evidence_type_id), Exchange.state == "delivered")
    )
    return None if found is None else as_utc(found)


@dataclass(frozen=True)
class Window:
    """The exchanges of an authority and evidence type that ended since a moment."""

    ended: int
    errors: int
    # 95th percentile (linear interpolation, as PostgreSQL's percentile_cont) of the time from
    # receipt to the end, of exchanges without a preview (a preview waits for the citizen).
    p95_seconds: float | None


def window(session: Session, authority_id: str, evidence_type_id: str, since: datetime) -> Window:
    ended = and_(_of(authority_id, evidence_type_id), Exchange.state.in_(ENDED), Exchange.updated_at >= since)
    counted = session.execute(
        select(func.count(), func.coalesce(func.sum(case((_is_error(), 1), else_=0)), 0)).where(ended)
    ).one()
    timed = and_(ended, Exchange.preview.is_(False))
    p95: float | None
    if session.get_bind().dialect.name == "postgresql":
        interval = session.scalar(
            select(func.percentile_cont(0.95).within_group(Exchange.updated_at - Exchange.created_at)).where(timed)
        )
        p95 = None if interval is None else interval.total_seconds()
    else:
        # SQLite has no percentile: the embedded database's windows are small enough to sort here.
        rows = session.execute(select(Exchange.created_at, Exchange.updated_at).where(timed)).all()
        p95 = percentile(sorted((end - start).total_seconds() for start, end in rows), 0.95)
    return Window(int(counted[0]), int(counted[1]), p95)


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The value at ``fraction`` of the sorted values, interpolated between neighbours (as
    PostgreSQL's ``percentile_cont``); None for no values."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def daily(session: Session, authority_id: str, evidence_type_id: str, since: datetime) -> dict[date, tuple[int, int]]:
    """Day (UTC) → (exchanges that ended, of them errors) of the authority and evidence type."""
    if session.get_bind().dialect.name == "postgresql":
        day: ColumnElement[Any] = func.date(func.timezone("UTC", Exchange.updated_at))
    else:
        day = func.date(Exchange.updated_at)  # stored as UTC text: its first 10 characters
    rows = session.execute(
        select(day, func.count(), func.coalesce(func.sum(case((_is_error(), 1), else_=0)), 0))
        .where(_of(authority_id, evidence_type_id), Exchange.state.in_(ENDED), Exchange.updated_at >= since)
        .group_by(day)
    ).all()
    return {_as_date(found): (int(count), int(errors)) for found, count, errors in rows}


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def last_passes(session: Session) -> dict[str, datetime]:
    """Authority id → when its latest passed conformance run ended."""
    rows = session.execute(
        select(ConformanceRun.authority_id, func.max(ConformanceRun.finished_at))
        .where(ConformanceRun.passed.is_(True))
        .group_by(ConformanceRun.authority_id)
    ).all()
    return {authority: as_utc(finished) for authority, finished in rows}


def add_run(session: Session, run: ConformanceRun) -> None:
    session.add(run)
