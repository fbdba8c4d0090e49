import datetime
import hashlib
import hmac
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.keys.pseudonym import normalise_identity, subject_pseudonym

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
ERIKA = {"family_name": "Mustermann", "given_name": "Erika", "birth_date": "1964-08-12"}


def test_format() -> None:
    assert re.fullmatch(r"ps1:[0-9a-f]{64}", subject_pseudonym(SECRET, **ERIKA))


def test_known_answer_from_the_documented_canonical_form() -> None:
    # What an auditor computes by hand from the module docstring.
    canonical = b"ps1\nname\nmustermann\nerika\n1964-08-12"
    expected = "ps1:" + hmac.new(SECRET, canonical, hashlib.sha256).hexdigest()
    assert normalise_identity(**ERIKA) == canonical.decode()
    assert subject_pseudonym(SECRET, **ERIKA) == expected

    idnr_canonical = b"ps1\nidnr\n12345678903"
    assert subject_pseudonym(SECRET, idnr="12 345 678 903") == (
        "ps1:" + hmac.new(SECRET, idnr_canonical, hashlib.sha256).hexdigest()
    )


@pytest.mark.parametrize(
    ("family_name", "given_name", "birth_date"),
    [
        ("MUSTERMANN", "ERIKA", "1964-08-12"),
        ("  mustermann ", "\terika\n", " 1964-08-12 "),
        ("Mustermann", "Erika", datetime.date(1964, 8, 12)),
        ("mUsTeRmAnN", "eRiKa", "1964-08-12"),
    ],
)
def test_stable_under_case_whitespace_and_date_form(
    family_name: str, given_name: str, birth_date: str | datetime.date
) -> None:
    assert subject_pseudonym(
        SECRET, family_name=family_name, given_name=given_name, birth_date=birth_date
    ) == subject_pseudonym(SECRET, **ERIKA)


def test_stable_under_unicode_normalisation_and_case_folding() -> None:
    composed = "M\u00fcller"  # ü as one code point
    decomposed = "Mu\u0308ller"  # u + combining diaeresis
    assert unicodedata.normalize("NFC", decomposed) == composed and decomposed != composed
    base = {"given_name": "Anna  Maria", "birth_date": "1990-01-31"}
    assert subject_pseudonym(SECRET, family_name=composed, **base) == subject_pseudonym(
        SECRET, family_name=decomposed.upper(), **base
    )
    # casefold, not lower: ß and SS are the same name in capitals.
    assert subject_pseudonym(SECRET, family_name="Weiß", **base) == subject_pseudonym(
        SECRET, family_name="WEISS", **base
    )
    # Non-breaking and other Unicode spaces collapse like ASCII ones.
    assert subject_pseudonym(SECRET, family_name="von\u00a0Bülow", **base) == subject_pseudonym(
        SECRET, family_name="von Bülow", **base
    )


def test_different_people_and_secrets_differ() -> None:
    erika = subject_pseudonym(SECRET, **ERIKA)
    assert subject_pseudonym(SECRET, **{**ERIKA, "given_name": "Max"}) != erika
    assert subject_pseudonym(SECRET, **{**ERIKA, "birth_date": "1964-08-13"}) != erika
    assert subject_pseudonym(SECRET, **{**ERIKA, "family_name": "Musterfrau"}) != erika
    assert subject_pseudonym(OTHER_SECRET, **ERIKA) != erika
    # Transliteration is deliberately not applied: these are two registered names.
    assert subject_pseudonym(SECRET, **{**ERIKA, "family_name": "Müller"}) != subject_pseudonym(
        SECRET, **{**ERIKA, "family_name": "Mueller"}
    )
    # Field boundaries matter: moving a word between family and given name is another person.
    assert subject_pseudonym(
        SECRET, family_name="Maria Mustermann", given_name="Erika", birth_date="1964-08-12"
    ) != subject_pseudonym(SECRET, family_name="Mustermann", given_name="Erika Maria", birth_date="1964-08-12")


def test_idnr_takes_precedence_over_the_name_triple() -> None:
    by_idnr = subject_pseudonym(SECRET, idnr="12345678903")
    assert subject_pseudonym(SECRET, idnr="12345678903", **ERIKA) == by_idnr
    assert subject_pseudonym(SECRET, idnr=" 12 345 678 903 ") == by_idnr
    assert subject_pseudonym(SECRET, idnr="12345678904") != by_idnr
    assert by_idnr != subject_pseudonym(SECRET, **ERIKA)
    # An empty IDNr field means "no IDNr", not an invalid one.
    assert subject_pseudonym(SECRET, idnr="", **ERIKA) == subject_pseudonym(SECRET, **ERIKA)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"idnr": "1234567890"},
        {"idnr": "1234567890X"},
        {"idnr": "١٢٣٤٥٦٧٨٩٠٣"},  # non-ASCII digits
        {"family_name": "Mustermann", "given_name": "Erika"},
        {"family_name": "Mustermann", "given_name": "Erika", "birth_date": "12.08.1964"},
        {"family_name": "Mustermann", "given_name": "Erika", "birth_date": "1964-02-30"},
        {"family_name": "   ", "given_name": "Erika", "birth_date": "1964-08-12"},
        {"family_name": "Muster\x00mann", "given_name": "Erika", "birth_date": "1964-08-12"},
        {
            "family_name": "Mustermann",
            "given_name": "Erika",
            "birth_date": datetime.datetime(1964, 8, 12, tzinfo=datetime.UTC),
        },
    ],
)
def test_invalid_identities_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        subject_pseudonym(SECRET, **kwargs)  # type: ignore[arg-type]


def test_short_secret_is_rejected() -> None:
    with pytest.raises(ValueError):
        subject_pseudonym(b"short", **ERIKA)


_spaces = st.text(alphabet=" \t\n\u00a0\u2003", max_size=3)


@given(
    pad=st.tuples(_spaces, _spaces, _spaces, _spaces),
    upper=st.booleans(),
    nfd=st.booleans(),
)
def test_presentation_never_changes_the_pseudonym(pad: tuple[str, str, str, str], upper: bool, nfd: bool) -> None:
    family, given_name = "Müller-Lüdenscheidt", "Jürgen Karl"

    def present(name: str) -> str:
        name = name.upper() if upper else name
        return unicodedata.normalize("NFD", name) if nfd else name

    given_spaced = given_name.replace(" ", " " + pad[2] + pad[3])
    assert subject_pseudonym(
        SECRET,
        family_name=pad[0] + present(family) + pad[1],
        given_name=present(given_spaced),
        birth_date="1970-05-01",
    ) == subject_pseudonym(SECRET, family_name=family, given_name=given_name, birth_date="1970-05-01")
