"""All consent queries."""

from __future__ import annotations

from sqlalchemy.orm import Session

from broker.db.models import Consent


def get(session: Session, consent_id: str) -> Consent | None:
    return session.get(Consent, consent_id)


def add(session: Session, consent: Consent) -> Consent:
    session.add(consent)
    return consent
