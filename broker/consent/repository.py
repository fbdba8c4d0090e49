"""All consent queries."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from broker.db.models import Consent


def get(session: Session, consent_id: str) -> Consent | None:
    return session.get(Consent, consent_id)


def add(session: Session, consent: Consent) -> Consent:
    session.add(consent)
    return consent


def of_subjects(session: Session, pseudonyms: Collection[str]) -> list[Consent]:
    """Every consent about any of these subject pseudonyms, newest first."""
    if not pseudonyms:
        return []
    query = (
        select(Consent)
        .where(Consent.subject_pseudonym.in_(sorted(pseudonyms)))
        .order_by(Consent.created_at.desc(), Consent.id)
    )
    return list(session.scalars(query))


def decide(
    session: Session,
    consent: Consent,
    state: str,
    now: datetime,
    artefact: str | None,
    citizen_idnr_pseudonym: str | None = None,
) -> bool:
    """Move a requested, unwithdrawn consent to ``state``; False if another decision or the
    requester's withdrawal came first.

    A conditional UPDATE rather than read-then-write, so that two decisions at once (two tabs,
    two broker processes) cannot both win on either database; the statement's session
    synchronisation updates ``consent`` itself when it wins.
    """
    result = session.execute(
        update(Consent)
        .where(Consent.id == consent.id, Consent.state == "requested", Consent.revoked_at.is_(None))
        .values(state=state, decided_at=now, artefact=artefact, citizen_idnr_pseudonym=citizen_idnr_pseudonym)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(consent)
        return False
    return True


def citizen_idnr_pseudonym(session: Session, consent_id: str) -> str | None:
    return session.scalar(select(Consent.citizen_idnr_pseudonym).where(Consent.id == consent_id))


def revoke(session: Session, consent: Consent, now: datetime) -> bool:
    """Mark a consent revoked; False if it was already (by either side, in any process), so that
    a revocation is recorded once."""
    result = session.execute(
        update(Consent).where(Consent.id == consent.id, Consent.revoked_at.is_(None)).values(revoked_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(consent)
        return False
    return True


def count_use(session: Session, consent_id: str) -> bool:
    """Count one use of a granted, unrevoked consent that is not used up; False if it is not (or
    was meanwhile revoked or used up: the condition is evaluated on the row as it stands)."""
    result = session.execute(
        update(Consent)
        .where(
            Consent.id == consent_id,
            Consent.state == "granted",
            Consent.revoked_at.is_(None),
            or_(Consent.max_uses.is_(None), Consent.uses < Consent.max_uses),
        )
        .values(uses=Consent.uses + 1)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
