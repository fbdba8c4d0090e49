"""All queries of the citizens' sign-outs (the only table of the citizen's side)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from broker.db.models import CitizenSignOut


def record_sign_out(session: Session, session_id: str, until: datetime) -> None:
    session.merge(CitizenSignOut(session_id=session_id, until=until))


def is_signed_out(session: Session, session_id: str) -> bool:
    return session.scalar(select(CitizenSignOut.session_id).where(CitizenSignOut.session_id == session_id)) is not None


def purge_sign_outs(session: Session, now: datetime) -> None:
    """Forget sign-outs of sessions that have ended anyway."""
    session.execute(delete(CitizenSignOut).where(CitizenSignOut.until < now))
