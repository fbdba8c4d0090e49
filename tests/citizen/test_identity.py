"""The pure rules of who the signed-in citizen is: claims → subject → pseudonyms, acr → level,
and who may see and decide about evidence."""

from __future__ import annotations

import datetime

import pytest

from adapters.protocol import Subject
from broker.citizen.identity import (
    EIDAS_ACR_LEVELS,
    Citizen,
    ClaimMapping,
    ClaimsUnusable,
    assurance_of_acr,
    pseudonyms_of,
    refusal,
    subject_of_claims,
)
from broker.keys.pseudonym import subject_pseudonym

ERIKA_CLAIMS = {"family_name": "Mustermann", "given_name": "Erika", "birthdate": "1964-08-12"}
SECRET = bytes(range(32))
NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)
FIVE_MINUTES = datetime.timedelta(minutes=5)


def pseudonym(subject: Subject) -> str:
    return subject_pseudonym(
        SECRET,
        idnr=subject.idnr,
        family_name=subject.family_name,
        given_name=subject.given_name,
        birth_date=subject.birth_date,
    )


def test_standard_claims_give_the_name_triple() -> None:
    subject = subject_of_claims({**ERIKA_CLAIMS, "place_of_birth": "Schwerin"}, ClaimMapping())
    assert subject == Subject(
        family_name="Mustermann", given_name="Erika", birth_date=datetime.date(1964, 8, 12), birth_place="Schwerin"
    )


@pytest.mark.parametrize(
    ("claims", "mapping", "idnr"),
    [
        ({"idnr": "12345678995"}, ClaimMapping(idnr="idnr"), "12345678995"),
        ({"idnr": "123 4567 8995"}, ClaimMapping(idnr="idnr"), "12345678995"),
        # An eIDAS PersonIdentifier carries an IDNr only when the identifier is a German one.
        ({"pid": "DK/DE/12345678995"}, ClaimMapping(person_identifier="pid"), "12345678995"),
        ({"pid": "DE/DK/12345678995"}, ClaimMapping(person_identifier="pid"), None),
        ({"pid": "DK/DE/12345678990"}, ClaimMapping(person_identifier="pid"), None),  # wrong check digit
        # A claim the mapping does not name is not read.
        ({"idnr": "12345678995"}, ClaimMapping(), None),
    ],
)
def test_the_idnr_comes_from_the_claims_the_mapping_names(
    claims: dict[str, str], mapping: ClaimMapping, idnr: str | None
) -> None:
    assert subject_of_claims({**ERIKA_CLAIMS, **claims}, mapping).idnr == idnr


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"family_name": "Mustermann", "given_name": "Erika"}, "citizen.claims_incomplete"),
        ({**ERIKA_CLAIMS, "birthdate": "12.08.1964"}, "citizen.claims_invalid"),
        ({**ERIKA_CLAIMS, "family_name": ["Mustermann"]}, "citizen.claims_invalid"),
        ({**ERIKA_CLAIMS, "family_name": "x" * 201}, "citizen.claims_invalid"),
        ({**ERIKA_CLAIMS, "idnr": "12345678990"}, "citizen.claims_invalid"),
    ],
)
def test_claims_that_identify_nobody_are_refused(claims: dict[str, object], reason: str) -> None:
    with pytest.raises(ClaimsUnusable) as refused:
        subject_of_claims(claims, ClaimMapping(idnr="idnr"))
    assert refused.value.reason == reason


def test_a_citizen_with_an_idnr_has_both_pseudonyms() -> None:
    with_idnr = subject_of_claims({**ERIKA_CLAIMS, "idnr": "12345678995"}, ClaimMapping(idnr="idnr"))
    by_idnr, by_name = pseudonyms_of(with_idnr, pseudonym)
    assert by_idnr == subject_pseudonym(SECRET, idnr="12345678995")
    assert pseudonyms_of(subject_of_claims(ERIKA_CLAIMS, ClaimMapping()), pseudonym) == (None, by_name)
    assert by_name == subject_pseudonym(SECRET, family_name="Mustermann", given_name="Erika", birth_date="1964-08-12")


@pytest.mark.parametrize(
    ("acr", "level"),
    [
        ("http://eidas.europa.eu/LoA/high", "high"),
        ("http://eidas.europa.eu/LoA/substantial", "substantial"),
        ("http://eidas.europa.eu/LoA/low", "low"),
        ("http://eidas.europa.eu/LoA/HIGH", None),
        ("STORK-QAA-Level-4", None),
        (None, None),
        (4, None),
    ],
)
def test_the_level_of_assurance_comes_from_acr(acr: object, level: str | None) -> None:
    assert assurance_of_acr(acr, EIDAS_ACR_LEVELS) == level


def citizen(assurance: str | None = "high", age: datetime.timedelta = datetime.timedelta()) -> Citizen:
    return Citizen(None, "ps1:erika", assurance, NOW - age, "oidc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("who", "subject", "required", "reason"),
    [
        (citizen(), "ps1:erika", "high", None),
        (citizen("substantial"), "ps1:erika", "substantial", None),
        (citizen(), "ps1:someone-else", "low", "citizen.not_subject"),
        (citizen(), None, "low", "citizen.not_subject"),
        (citizen("substantial"), "ps1:erika", "high", "citizen.assurance_too_low"),
        (citizen(None), "ps1:erika", "low", "citizen.assurance_too_low"),
        (citizen(age=FIVE_MINUTES), "ps1:erika", "high", None),
        (citizen(age=FIVE_MINUTES + datetime.timedelta(seconds=1)), "ps1:erika", "high", "citizen.reauthenticate"),
        # An old sign-in is asked to renew first, before the stranger learns anything.
        (citizen("low", FIVE_MINUTES * 2), "ps1:someone-else", "high", "citizen.reauthenticate"),
    ],
)
def test_who_may_see_and_decide(who: Citizen, subject: str | None, required: str, reason: str | None) -> None:
    assert refusal(who, subject, None, required, NOW, FIVE_MINUTES) == reason  # type: ignore[arg-type]


def test_an_authentication_in_the_future_counts_as_old() -> None:
    ahead = citizen(age=-datetime.timedelta(minutes=2))
    assert refusal(ahead, "ps1:erika", None, "low", NOW, FIVE_MINUTES) == "citizen.reauthenticate"
    slightly = citizen(age=-datetime.timedelta(seconds=30))  # within the clock skew allowed
    assert refusal(slightly, "ps1:erika", None, "low", NOW, FIVE_MINUTES) is None


ALEX = Citizen("ps1:idnr-alex", "ps1:name-alex-lehmann-1964-11-03", "high", NOW, "oidc")
NAMESAKE_IDNR = "ps1:idnr-the-other-alex"


@pytest.mark.parametrize(
    ("subject", "stated_idnr", "confirmed", "is_his"),
    [
        # Asked by IDNr: the IDNr decides.
        ("ps1:idnr-alex", None, True, True),
        (NAMESAKE_IDNR, None, True, False),
        # Asked by name: the IDNr the evidence states must be his.
        (ALEX.name_pseudonym, "ps1:idnr-alex", True, True),
        (ALEX.name_pseudonym, NAMESAKE_IDNR, True, False),
        (ALEX.name_pseudonym, NAMESAKE_IDNR, False, False),
        # Evidence that states no IDNr (or none yet): not enough to see or release it, but listed.
        (ALEX.name_pseudonym, None, True, False),
        (ALEX.name_pseudonym, None, False, True),
        ("ps1:someone-else", None, False, False),
    ],
)
def test_a_namesake_is_told_apart_by_the_idnr_the_evidence_states(
    subject: str, stated_idnr: str | None, confirmed: bool, is_his: bool
) -> None:
    assert ALEX.is_subject(subject, stated_idnr, confirmed=confirmed) is is_his


def test_a_sign_in_without_an_idnr_has_only_the_name_to_go_by() -> None:
    by_name = Citizen(None, ALEX.name_pseudonym, "high", NOW, "oidc")
    assert by_name.is_subject(ALEX.name_pseudonym, NAMESAKE_IDNR, confirmed=True)
    assert not by_name.is_subject("ps1:idnr-alex", None, confirmed=True)
