"""All queries on the demo register tables (Melderegister, Geburtenregister, Gewerberegister)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session

from adapters.identity import given_names_match, name_key
from adapters.protocol import Subject
from adapters.registers.models import RegisterEntry

Record = TypeVar("Record", bound=RegisterEntry)


def find_matches(session: Session, model: type[Record], register_id: str, subject: Subject) -> Sequence[Record]:
    """Every entry of one register that matches the subject.

    With an IDNr the IDNr decides, and any names given must agree with the entry; without one,
    family name, given name and birth date must all match (birth place narrows further if given).
    Either way the lookup is one of the register's indexes (``ix_*_idnr``, ``ix_*_match``).
    """
    params: dict[str, object] = {"register_id": register_id}
    if subject.idnr:
        query = _candidates(model, by_idnr=True)
        params["idnr"] = subject.idnr
    elif subject.family_name and subject.given_name and subject.birth_date:
        query = _candidates(model, by_idnr=False)
        params.update(family_name_key=name_key(subject.family_name), birth_date=subject.birth_date)
    else:
        return []
    candidates = session.scalars(query, params).all()
    return [c for c in candidates if _agrees(c, subject)]


# A register's candidate lookups (see _candidates), by register table and key.
_CANDIDATES: dict[tuple[type[RegisterEntry], bool], Select[Any]] = {}


def _candidates(model: type[RegisterEntry], *, by_idnr: bool) -> Select[Any]:
    """A register's candidates by IDNr, or by normalised family name and birth date, with the values
    as parameters: built once, where building the statement per request cost more than its run."""
    query = _CANDIDATES.get((model, by_idnr))
    if query is None:
        query = select(model).where(model.register_id == bindparam("register_id"))
        if by_idnr:
            query = query.where(model.idnr == bindparam("idnr"))
        else:
            query = query.where(
                model.family_name_key == bindparam("family_name_key"), model.birth_date == bindparam("birth_date")
            )
        _CANDIDATES[(model, by_idnr)] = query
    return query


def _agrees(record: RegisterEntry, subject: Subject) -> bool:
    if subject.family_name and name_key(subject.family_name) != record.family_name_key:
        return False
    if subject.given_name and not given_names_match(subject.given_name, record.given_name_key):
        return False
    if subject.birth_date and subject.birth_date != record.birth_date:
        return False
    return not (subject.birth_place and name_key(subject.birth_place) != name_key(record.birth_place))


def sample_subjects(session: Session, model: type[Record], register_id: str) -> tuple[Subject | None, Subject | None]:
    """A subject that matches exactly one entry of the register, and one that matches several.

    For the conformance kit: name + birth date triples, as a requester without IDNr gives them.
    """
    triple = (model.family_name_key, model.given_name_key, model.birth_date)
    counts = (
        select(*triple, func.count().label("n"))
        .where(model.register_id == register_id)
        .group_by(*triple)
        .order_by(*triple)
    )
    known = ambiguous = None
    for row in session.execute(counts.having(func.count() == 1).limit(1)):
        known = _subject_of(session, model, register_id, row)
    for row in session.execute(counts.having(func.count() > 1).limit(1)):
        ambiguous = _subject_of(session, model, register_id, row)
    return known, ambiguous


def _subject_of(session: Session, model: type[Record], register_id: str, row: Any) -> Subject:
    record = session.scalars(
        select(model).where(
            model.register_id == register_id,
            model.family_name_key == row.family_name_key,
            model.given_name_key == row.given_name_key,
            model.birth_date == row.birth_date,
        )
    ).first()
    assert record is not None
    return Subject(family_name=record.family_name, given_name=record.given_name, birth_date=record.birth_date)
