"""All queries on the demo register tables (Melderegister, Geburtenregister, Gewerberegister)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.identity import given_names_match, name_key
from adapters.protocol import Subject
from broker.db.models import BirthRecord, BusinessRegistration, Resident

Record = TypeVar("Record", Resident, BirthRecord, BusinessRegistration)


def find_matches(
    session: Session, model: type[Record], register_id: str, subject: Subject
) -> Sequence[Record]:
    """Every entry of one register that matches the subject.

    With an IDNr the IDNr decides, and any names given must agree with the entry; without one,
    family name, given name and birth date must all match (birth place narrows further if given).
    """
    query = select(model).where(model.register_id == register_id)
    if subject.idnr:
        query = query.where(model.idnr == subject.idnr)
    elif subject.family_name and subject.given_name and subject.birth_date:
        query = query.where(
            model.family_name_key == name_key(subject.family_name), model.birth_date == subject.birth_date
        )
    else:
        return []
    candidates = session.scalars(query).all()
    return [c for c in candidates if _agrees(c, subject)]


def _agrees(record: Resident | BirthRecord | BusinessRegistration, subject: Subject) -> bool:
    if subject.family_name and name_key(subject.family_name) != record.family_name_key:
        return False
    if subject.given_name and not given_names_match(subject.given_name, record.given_name_key):
        return False
    if subject.birth_date and subject.birth_date != record.birth_date:
        return False
    return not (subject.birth_place and name_key(subject.birth_place) != name_key(record.birth_place))
