"""All consent queries."""

from __future__ import annotations

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from broker.db.models import Consent


def get(session: Session, consent_id: str) -> Consent | None:
    return session.get(Consent, consent_id)


def add(session: Session, consent: Consent) -> Consent:
    session.add(consent)
    return consent


def count_use(session: Session, consent_id: str) -> bool:
    """Count one use of a consent that is not used up; False if it is (or was meanwhile)."""
    result = session.execute(
        update(Consent)
        .where(Consent.id == consent_id, or_(Consent.max_uses.is_(None), Consent.uses < Consent.max_uses))
        .values(uses=Consent.uses + 1)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
