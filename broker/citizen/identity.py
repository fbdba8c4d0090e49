"""Who the signed-in citizen is, as far as the broker needs to know: pure rules, no I/O.

A sign-in yields claims (OpenID Connect) or a chosen demo resident (development). The broker
keeps none of them: it computes the citizen's subject pseudonyms from them at once and keeps
only those, with the level of assurance and the time of the authentication, in the signed
session cookie. A citizen may have two pseudonyms, one over the IDNr and one over the name
triple (see :mod:`broker.keys.pseudonym`): an exchange requested by IDNr and one requested by
name are both theirs; :meth:`Citizen.is_subject` says how namesakes are told apart.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from adapters.identity import idnr_of_person_identifier, is_valid_idnr
from adapters.protocol import Subject
from broker.registry.schemas import ASSURANCE_LEVELS, AssuranceLevel

# How far an identity provider's clock may run ahead of the broker's.
CLOCK_SKEW = datetime.timedelta(seconds=60)

# The eIDAS levels of assurance as OpenID Providers state them in ``acr`` (the eIDAS LoA URIs);
# an operator maps other values (an OIDC bridge's own names) with BROKER_OIDC_ACR_LEVELS.
EIDAS_ACR_LEVELS: dict[str, AssuranceLevel] = {
    "http://eidas.europa.eu/LoA/low": "low",
    "http://eidas.europa.eu/LoA/substantial": "substantial",
    "http://eidas.europa.eu/LoA/high": "high",
}


class ClaimsUnusable(ValueError):
    """The identity provider's claims do not identify a person by the broker's rules."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class ClaimMapping:
    """Which claims carry the broker's subject attributes (names of claims; empty: not given)."""

    family_name: str = "family_name"
    given_name: str = "given_name"
    birth_date: str = "birthdate"
    birth_place: str = "place_of_birth"
    idnr: str = ""
    # An eIDAS PersonIdentifier ("XX/DE/<IDNr>"); it yields an IDNr only when it carries a German one.
    person_identifier: str = ""


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    if not name:
        return None
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ClaimsUnusable("citizen.claims_invalid", f"The claim {name!r} is not a usable text.")
    return value.strip()


def subject_of_claims(claims: Mapping[str, Any], mapping: ClaimMapping) -> Subject:
    """The broker's subject from an ID token's claims; raises :class:`ClaimsUnusable`."""
    idnr = _text(claims, mapping.idnr)
    if idnr is not None:
        idnr = idnr.replace(" ", "")
        if not is_valid_idnr(idnr):
            raise ClaimsUnusable("citizen.claims_invalid", f"The claim {mapping.idnr!r} is no valid IDNr.")
    identifier = _text(claims, mapping.person_identifier)
    if idnr is None and identifier is not None:
        idnr = idnr_of_person_identifier(identifier)
    birth_date: datetime.date | None = None
    if (text := _text(claims, mapping.birth_date)) is not None:
        try:
            birth_date = datetime.date.fromisoformat(text)
        except ValueError:
            raise ClaimsUnusable(
                "citizen.claims_invalid", f"The claim {mapping.birth_date!r} is no date (YYYY-MM-DD)."
            ) from None
    subject = Subject(
        idnr=idnr,
        family_name=_text(claims, mapping.family_name),
        given_name=_text(claims, mapping.given_name),
        birth_date=birth_date,
        birth_place=_text(claims, mapping.birth_place),
    )
    if subject.idnr is None and not (subject.family_name and subject.given_name and subject.birth_date):
        raise ClaimsUnusable(
            "citizen.claims_incomplete",
            "The identity provider stated neither an IDNr nor family name, given name and birth date.",
        )
    return subject


def pseudonyms_of(subject: Subject, pseudonym: Callable[[Subject], str]) -> tuple[str | None, str | None]:
    """The citizen's two possible pseudonyms: (over the IDNr, over the name triple); None where
    the sign-in does not state what it needs."""
    by_idnr = pseudonym(Subject(idnr=subject.idnr)) if subject.idnr else None
    by_name = None
    if subject.family_name and subject.given_name and subject.birth_date:
        triple = Subject(family_name=subject.family_name, given_name=subject.given_name, birth_date=subject.birth_date)
        by_name = pseudonym(triple)
    return by_idnr, by_name


def assurance_of_acr(acr: object, levels: Mapping[str, AssuranceLevel]) -> AssuranceLevel | None:
    """The eIDAS level an ``acr`` value states, or None for values the broker does not know."""
    return levels.get(acr) if isinstance(acr, str) else None


def at_least(level: AssuranceLevel | None, required: AssuranceLevel) -> bool:
    return level is not None and ASSURANCE_LEVELS.index(level) >= ASSURANCE_LEVELS.index(required)


@dataclass(frozen=True)
class Citizen:
    """The signed-in citizen: pseudonyms, level of assurance and when they authenticated."""

    # Over the IDNr (when the sign-in states one) and over the name triple (when it states one).
    idnr_pseudonym: str | None
    name_pseudonym: str | None
    assurance: AssuranceLevel | None
    authenticated_at: datetime.datetime
    # "oidc" or "development" (the demo sign-in, which the pages mark with a banner).
    method: str
    # The session this sign-in started (its sign-out ends every copy of the cookie), and when.
    session_id: str = ""
    signed_in_at: datetime.datetime | None = None

    @property
    def pseudonyms(self) -> frozenset[str]:
        return frozenset(p for p in (self.idnr_pseudonym, self.name_pseudonym) if p is not None)

    def is_subject(self, subject_pseudonym: str | None, stated_idnr_pseudonym: str | None, *, confirmed: bool) -> bool:
        """Whether an exchange (or consent) on ``subject_pseudonym`` is about this citizen.

        Asked by IDNr: the IDNr decides. Asked by name: the name triple, and where the citizen's
        sign-in states an IDNr, the IDNr the evidence states (``stated_idnr_pseudonym``) must be
        theirs, so that a namesake (same names, same birth date) is told apart. ``confirmed``
        demands that evidence (to see or release it); without it, evidence that states no IDNr
        (or none yet) leaves the name triple to decide (a listing of the cockpit). A sign-in
        that states no IDNr cannot tell namesakes apart: the name triple is all it has.
        """
        if subject_pseudonym is None:
            return False
        if subject_pseudonym == self.idnr_pseudonym:
            return True
        if subject_pseudonym != self.name_pseudonym:
            return False
        if self.idnr_pseudonym is None:
            return True
        if stated_idnr_pseudonym is None:
            return not confirmed
        return stated_idnr_pseudonym == self.idnr_pseudonym


def refusal(
    citizen: Citizen,
    subject_pseudonym: str | None,
    stated_idnr_pseudonym: str | None,
    required: AssuranceLevel,
    now: datetime.datetime,
    max_age: datetime.timedelta,
    *,
    confirmed: bool = True,
) -> str | None:
    """Why this citizen may not see or decide about evidence on this subject now (a reason code),
    or None (``confirmed``: see :meth:`Citizen.is_subject`).

    Checked in this order: an old authentication only asks for a new one, so it comes first;
    the subject last, so that a stranger learns no more than that it is not theirs. An
    authentication stated to lie in the future counts as old: nothing vouches for it."""
    age = now - citizen.authenticated_at
    if age > max_age or age < -CLOCK_SKEW:
        return "citizen.reauthenticate"
    if not at_least(citizen.assurance, required):
        return "citizen.assurance_too_low"
    if not citizen.is_subject(subject_pseudonym, stated_idnr_pseudonym, confirmed=confirmed):
        return "citizen.not_subject"
    return None
