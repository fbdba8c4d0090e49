"""`broker demo seed` is deterministic and covers what the demo needs."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from adapters.registers.models import BirthRecord, BusinessRegistration, Resident
from broker.db.migrate import upgrade
from broker.db.models import Authority
from broker.db.session import make_engine, make_session_factory, unit_of_work
from broker.demo.seed import seed


def snapshot_rows(session) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    return [
        (r.register_id, r.idnr, r.family_name, r.given_name, r.birth_date, r.street)
        for r in session.scalars(select(Resident).order_by(Resident.id)).all()
    ]


def test_seed_is_deterministic_and_complete(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with unit_of_work(sessions) as session:
        first = seed(session)
    with sessions() as session:
        rows_first = snapshot_rows(session)
    with unit_of_work(sessions) as session:
        second = seed(session)
    with sessions() as session:
        rows_second = snapshot_rows(session)
        erika = session.scalars(select(Resident).where(Resident.family_name == "Mustermann")).one()
        erika_birth = session.scalars(select(BirthRecord).where(BirthRecord.family_name == "Mustermann")).one()
        aemter = session.scalar(select(func.count()).select_from(Authority).where(Authority.ars.like("_________")))
        businesses = session.scalar(select(func.count()).select_from(BusinessRegistration))
    engine.dispose()

    assert first == second
    assert [r[1:] for r in rows_first] == [r[1:] for r in rows_second]
    assert first.residents >= 10_000
    assert aemter == 114
    assert businesses and businesses > 100
    assert (erika.given_name, erika.birth_date, erika.birth_place, erika.municipality) == (
        "Erika",
        date(1964, 8, 12),
        "Schwerin",
        "Schwerin",
    )
    assert erika.municipality_ars.startswith("13004")
    assert erika_birth.register_id == "standesamt-13004"
