"""All preview queries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broker.db.models import Preview


def add(session: Session, preview: Preview) -> Preview:
    session.add(preview)
    return preview


def by_token_hash(session: Session, token_hash: str) -> Preview | None:
    return session.scalars(select(Preview).where(Preview.token_hash == token_hash)).first()


def for_exchange(session: Session, exchange_id: str) -> Preview | None:
    return session.scalars(select(Preview).where(Preview.exchange_id == exchange_id)).first()


def settle(session: Session, preview: Preview, state: str, now: datetime) -> bool:
    """Move a pending preview to ``state``; False if another request settled it first.

    A conditional UPDATE rather than read-then-write, so that two concurrent decisions on one
    token (double click, two tabs, two broker processes) cannot both win on either database.
    The statement's session synchronisation updates ``preview`` itself when it wins.
    """
    result = session.execute(
        update(Preview).where(Preview.id == preview.id, Preview.state == "pending").values(state=state, decided_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(preview)
        return False
    return True
