"""The demo register tables (Melderegister, Geburtenregister, Gewerberegister).

Their own metadata, apart from the broker's production schema: they are the authorities' data,
which the reference authority server keeps in a database of its own. The broker's single Alembic
history still creates them next to its own tables, for the in-process reference adapters.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Index, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The same convention as the broker's tables (broker/db/models.py): the migrations name
# constraints and indexes by it, for both sets of tables alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class RegisterBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RegisterEntry:
    """The identity every demo register keeps; the reference adapters match subjects on it."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    register_id: Mapped[str] = mapped_column(String(100))
    idnr: Mapped[str | None] = mapped_column(String(11))
    family_name: Mapped[str] = mapped_column(String(200))
    given_name: Mapped[str] = mapped_column(String(200))
    # Casefolded, accent-stripped forms used for matching.
    family_name_key: Mapped[str] = mapped_column(String(200))
    given_name_key: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date] = mapped_column(Date)
    birth_place: Mapped[str] = mapped_column(String(200))


class Resident(RegisterEntry, RegisterBase):
    """A Melderegister entry."""

    __tablename__ = "residents"
    __table_args__ = (
        Index("ix_residents_match", "register_id", "family_name_key", "birth_date"),
        Index("ix_residents_idnr", "register_id", "idnr"),
    )

    birth_name: Mapped[str | None] = mapped_column(String(200))
    street: Mapped[str] = mapped_column(String(200))
    house_number: Mapped[str] = mapped_column(String(20))
    postal_code: Mapped[str] = mapped_column(String(5))
    municipality: Mapped[str] = mapped_column(String(200))
    municipality_ars: Mapped[str] = mapped_column(String(12))
    moved_in: Mapped[date] = mapped_column(Date)


class BirthRecord(RegisterEntry, RegisterBase):
    """A Geburtenregister entry of a Standesamt."""

    __tablename__ = "birth_records"
    __table_args__ = (
        Index("ix_birth_records_match", "register_id", "family_name_key", "birth_date"),
        Index("ix_birth_records_idnr", "idnr"),
    )

    entry_number: Mapped[str] = mapped_column(String(50))
    sex: Mapped[str] = mapped_column(String(1))
    mother_name: Mapped[str] = mapped_column(String(300))
    father_name: Mapped[str | None] = mapped_column(String(300))


class BusinessRegistration(RegisterEntry, RegisterBase):
    """A Gewerberegister entry (Gewerbeanmeldung)."""

    __tablename__ = "business_registrations"
    __table_args__ = (
        Index("ix_business_match", "register_id", "family_name_key", "birth_date"),
        Index("ix_business_registrations_idnr", "idnr"),
    )

    registration_number: Mapped[str] = mapped_column(String(50))
    trade_name: Mapped[str] = mapped_column(String(300))
    activity: Mapped[str] = mapped_column(String(500))
    business_address: Mapped[str] = mapped_column(String(300))
    municipality_ars: Mapped[str] = mapped_column(String(12))
    registered_on: Mapped[date] = mapped_column(Date)
