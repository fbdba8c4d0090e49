"""All provenance-log queries."""

from __future__ import annotations

from sqlalchemy.orm import Session

from broker.db.models import LogEntry


def queue(session: Session, entry: LogEntry) -> LogEntry:
    session.add(entry)
    return entry
