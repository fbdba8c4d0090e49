"""Deterministic synthetic register data: residents, their births, some businesses, and the
specimen citizen of the public contract.

Running it again gives exactly the same rows (fixed random seed, register tables replaced).
Which authorities keep which register comes from the caller (the broker's demo registry), as
plain data: the registers know nothing of the broker.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from adapters.identity import idnr_check_digit, name_key
from adapters.registers.models import BirthRecord, BusinessRegistration, Resident

RESIDENTS_PER_MELDEREGISTER = 90

FAMILY_NAMES = [
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
    "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Braun", "Zimmermann", "Krüger",
    "Hartmann", "Lange", "Werner", "Krause", "Lehmann", "Köhler", "Peters", "Jansen", "Möller", "Voß",
]  # fmt: skip
GIVEN_NAMES = [
    ("Anna", "w"), ("Maria", "w"), ("Sophie", "w"), ("Lena", "w"), ("Katharina", "w"), ("Jana", "w"),
    ("Sabine", "w"), ("Petra", "w"), ("Ulrike", "w"), ("Greta", "w"), ("Paul", "m"), ("Lukas", "m"),
    ("Jonas", "m"), ("Felix", "m"), ("Thomas", "m"), ("Michael", "m"), ("Jürgen", "m"), ("Stefan", "m"),
    ("Ole", "m"), ("Hannes", "m"), ("Kim", "d"), ("Alex", "x"),
]  # fmt: skip
STREETS = ["Hauptstraße", "Dorfstraße", "Schulstraße", "Am See", "Lindenallee", "Bahnhofstraße", "Kirchweg"]
ACTIVITIES = ["Tischlerei", "Friseursalon", "Softwareentwicklung", "Hofladen", "Fahrradreparatur", "Café"]

# The specimen citizen of the public contract.
ERIKA = {
    "idnr": "12345678995",
    "family_name": "Mustermann",
    "given_name": "Erika",
    "birth_name": "Gabler",
    "birth_date": date(1964, 8, 12),
    "birth_place": "Schwerin",
}
# Two residents who share name and birth date in one register: the ambiguous-match case.
TWINS_REGISTER = "melderegister-13004"
TWINS = {
    "family_name": "Schulz",
    "given_name": "Jan",
    "birth_date": date(1990, 1, 1),
    "birth_place": "Schwerin",
}


class RegisterAuthority(NamedTuple):
    """An authority that keeps a register: ``register_kind`` is melderegister | standesamt | gewerberegister."""

    id: str
    register_kind: str
    ars: str
    name: str


@dataclass(frozen=True)
class RegisterCounts:
    residents: int
    births: int
    businesses: int


def make_idnr(rng: random.Random) -> str:
    first_ten = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(9))
    return first_ten + str(idnr_check_digit(first_ten))


def seed_registers(session: Session, authorities: Sequence[RegisterAuthority]) -> RegisterCounts:
    """Replace the register tables' rows with the synthetic data for ``authorities``.

    The rows depend on the order of ``authorities`` (one random stream walks them in turn); the
    authority ``TWINS_REGISTER`` must be among them.
    """
    for model in (Resident, BirthRecord, BusinessRegistration):
        session.execute(delete(model))

    rng = random.Random(20261124)
    by_register: dict[str, list[RegisterAuthority]] = {a.register_kind: [] for a in authorities}
    for authority in authorities:
        by_register[authority.register_kind].append(authority)
    standesamt_of = {a.ars[:5]: a for a in by_register.get("standesamt", [])}
    gewerbe_of = {a.ars[:5]: a for a in by_register.get("gewerberegister", [])}

    residents: list[dict[str, Any]] = []
    births: list[dict[str, Any]] = []
    businesses: list[dict[str, Any]] = []
    used_idnrs = {ERIKA["idnr"]}

    def add_person(person: dict[str, Any], melde: RegisterAuthority, sex: str, gemeinde: str, town: str) -> None:
        kreis = melde.ars[:5]
        keys = {
            "family_name_key": name_key(person["family_name"]),
            "given_name_key": name_key(person["given_name"]),
        }
        residents.append(
            {
                **person,
                **keys,
                "register_id": melde.id,
                "street": rng.choice(STREETS),
                "house_number": str(rng.randint(1, 120)),
                "postal_code": f"{17000 + (int(kreis[-2:]) * 331 + int(gemeinde[-3:])) % 2900:05d}",
                "municipality": town,
                "municipality_ars": gemeinde,
                "moved_in": person["birth_date"] + timedelta(days=rng.randint(6570, 12000)),
            }
        )
        standesamt = standesamt_of.get(kreis)
        if standesamt is not None:
            births.append(
                {
                    **{k: person[k] for k in ("idnr", "family_name", "given_name", "birth_date", "birth_place")},
                    **keys,
                    "register_id": standesamt.id,
                    "entry_number": f"G {person['birth_date'].year}/{len(births) + 1:05d}",
                    "sex": sex,
                    "mother_name": f"{rng.choice(GIVEN_NAMES[:10])[0]} {person['birth_name'] or person['family_name']}",
                    "father_name": f"{rng.choice(GIVEN_NAMES[10:20])[0]} {person['family_name']}",
                }
            )
        gewerbe = gewerbe_of.get(kreis)
        if gewerbe is not None and rng.random() < 0.06:
            activity = rng.choice(ACTIVITIES)
            businesses.append(
                {
                    **{k: person[k] for k in ("idnr", "family_name", "given_name", "birth_date", "birth_place")},
                    **keys,
                    "register_id": gewerbe.id,
                    "registration_number": f"GA-{kreis}-{len(businesses) + 1:05d}",
                    "trade_name": f"{activity} {person['family_name']}",
                    "activity": activity,
                    "business_address": f"{rng.choice(STREETS)} {rng.randint(1, 60)}, {town}",
                    "municipality_ars": gemeinde,
                    "registered_on": person["birth_date"] + timedelta(days=rng.randint(7000, 15000)),
                }
            )

    for melde in by_register.get("melderegister", []):
        prefix = melde.ars[:9]
        for n in range(RESIDENTS_PER_MELDEREGISTER):
            given, sex = rng.choice(GIVEN_NAMES)
            gemeinde_no = rng.randint(1, 4)
            gemeinde = prefix + (f"{gemeinde_no:03d}" if prefix[5:] != "0000" else "000")
            town = melde.name.removeprefix("Bürgeramt ").removeprefix("Amt ") + (
                f" - Gemeinde {gemeinde_no}" if prefix[5:] != "0000" else ""
            )
            idnr = make_idnr(rng)
            while idnr in used_idnrs:
                idnr = make_idnr(rng)
            used_idnrs.add(idnr)
            person = {
                "idnr": idnr,
                "family_name": rng.choice(FAMILY_NAMES),
                "given_name": given if n % 5 else f"{given} {rng.choice(GIVEN_NAMES)[0]}",
                "birth_name": None,
                "birth_date": date(1940, 1, 1) + timedelta(days=rng.randint(0, 30000)),
                "birth_place": town,
            }
            add_person(person, melde, sex, gemeinde, town)

    schwerin = next(a for a in authorities if a.id == TWINS_REGISTER)
    add_person(dict(ERIKA), schwerin, "w", "130040000000", "Schwerin")
    for _ in range(2):
        add_person({**TWINS, "idnr": make_idnr(rng), "birth_name": None}, schwerin, "m", "130040000000", "Schwerin")

    for model, rows in ((Resident, residents), (BirthRecord, births), (BusinessRegistration, businesses)):
        for start in range(0, len(rows), 2000):
            session.execute(insert(model), rows[start : start + 2000])
    return RegisterCounts(len(residents), len(births), len(businesses))
