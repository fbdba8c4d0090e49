"""Every query of the key fingerprints table, and the one question asked of the log about keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from broker.db.models import Checkpoint, KeyFingerprint, LogEntry


def recorded(session: Session) -> Sequence[KeyFingerprint]:
    """Oldest first, so the last row of a purpose is the newest."""
    return session.scalars(select(KeyFingerprint).order_by(KeyFingerprint.id)).all()


def add(session: Session, purpose: str, fingerprint: str, key_id: str | None, how: str, now: datetime) -> None:
    session.add(KeyFingerprint(purpose=purpose, fingerprint=fingerprint, key_id=key_id, how=how, recorded_at=now))
    session.flush()


def keys_in_use(session: Session) -> bool:
    """Whether the database holds what keys made: a signed checkpoint, or a subject's pseudonym in the log."""
    signed = session.scalar(select(exists().where(Checkpoint.tree_size.isnot(None))))
    pseudonymised = session.scalar(select(exists().where(LogEntry.subject_pseudonym.isnot(None))))
    return bool(signed or pseudonymised)
