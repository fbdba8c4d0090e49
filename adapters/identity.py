"""Identity attributes: IDNr check digits and the name normalisation used for matching."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def idnr_check_digit(first_ten: str) -> int:
    """Check digit of the Identifikationsnummer (ISO/IEC 7064 MOD 11,10, as for the Steuer-IdNr)."""
    product = 10
    for char in first_ten:
        total = (int(char) + product) % 10
        if total == 0:
            total = 10
        product = (total * 2) % 11
    check = 11 - product
    return 0 if check == 10 else check


def is_valid_idnr(idnr: str) -> bool:
    return (
        len(idnr) == 11
        and idnr.isascii()
        and idnr.isdigit()
        and idnr[0] != "0"
        and idnr_check_digit(idnr[:10]) == int(idnr[10])
    )


def idnr_of_person_identifier(identifier: str) -> str | None:
    """The German IDNr in an eIDAS PersonIdentifier (``XX/DE/<11 digits>``), or None.

    Other states' identifiers are pseudonyms of their eIDs and no register key here.
    """
    parts = identifier.split("/")
    if len(parts) == 3 and parts[1].upper() == "DE" and is_valid_idnr(parts[2]):
        return parts[2]
    return None


def name_key(name: str) -> str:
    """Casefolded, accent-free and single-spaced, so that 'Müller', 'MÜLLER ' and 'Muller' share a key.

    Registers are keyed the same way, so a requester's spelling of case and accents does not matter.
    """
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", stripped).strip()


def given_names_match(requested: str, registered_key: str) -> bool:
    """The requested given name(s) must equal the registered ones, or be the first of them."""
    wanted = name_key(requested)
    return wanted == registered_key or registered_key.split(" ")[0] == wanted
