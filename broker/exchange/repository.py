"""All exchange queries."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from broker.db.models import Exchange
from broker.exchange.lifecycle import State


def get(session: Session, exchange_id: str) -> Exchange | None:
    return session.get(Exchange, exchange_id)


def by_idempotency_key(session: Session, requester_id: int, key: str) -> Exchange | None:
    return session.scalars(
        select(Exchange).where(Exchange.requester_id == requester_id, Exchange.idempotency_key == key)
    ).first()


def lock(session: Session, exchange_id: str) -> Exchange | None:
    """The exchange, its row locked until the transaction ends (PostgreSQL; SQLite locks the database)."""
    return session.scalars(select(Exchange).where(Exchange.id == exchange_id).with_for_update()).first()


def of_subjects(session: Session, pseudonyms: Collection[str], limit: int) -> Sequence[Exchange]:
    """The newest exchanges about any of these subject pseudonyms (a citizen's cockpit)."""
    if not pseudonyms:
        return []
    return session.scalars(
        select(Exchange)
        .where(Exchange.subject_pseudonym.in_(sorted(pseudonyms)))
        .order_by(Exchange.created_at.desc(), Exchange.id)
        .limit(limit)
    ).all()


def hidden_from_subject(
    session: Session,
    pseudonyms: Collection[str],
    *,
    withheld_since: Mapping[str, datetime],
    namesake: tuple[str, str] | None,
) -> set[str]:
    """Ids of the exchanges about these pseudonyms that their subject may not be shown (all of
    them, however many): those on a legal basis in ``withheld_since`` (basis id → the moment
    after which its exchanges are still withheld), and, for ``namesake`` = (name pseudonym, IDNr
    pseudonym), those asked by that name whose evidence stated another IDNr."""
    conditions = [
        and_(Exchange.legal_basis == basis, Exchange.created_at > since) for basis, since in withheld_since.items()
    ]
    if namesake is not None:
        by_name, idnr = namesake
        conditions.append(
            and_(
                Exchange.subject_pseudonym == by_name,
                Exchange.subject_idnr_pseudonym.is_not(None),
                Exchange.subject_idnr_pseudonym != idnr,
            )
        )
    if not pseudonyms or not conditions:
        return set()
    found = session.scalars(
        select(Exchange.id).where(Exchange.subject_pseudonym.in_(sorted(pseudonyms)), or_(*conditions))
    )
    return set(found)


def state(session: Session, exchange_id: str) -> str | None:
    return session.scalar(select(Exchange.state).where(Exchange.id == exchange_id))


def overdue(session: Session, created_before: datetime, limit: int) -> Sequence[Exchange]:
    """Exchanges still waiting for their authority that were created before the cut-off, locked."""
    return session.scalars(
        select(Exchange)
        .where(Exchange.state == State.ROUTED, Exchange.created_at < created_before)
        .order_by(Exchange.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def purge_evidence(session: Session, now: datetime) -> int:
    """Drop evidence whose retention (delivered) or preview time (held) has passed.

    The exchange and its log entries stay; only the personal data of the document goes.
    """
    result = session.execute(
        update(Exchange).where(Exchange.evidence.is_not(None), Exchange.expires_at <= now).values(evidence=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
