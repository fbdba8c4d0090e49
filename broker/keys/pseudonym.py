"""Keyed subject pseudonyms for the provenance log.

The log must let an auditor answer "what was exchanged about this citizen?" without the log
itself naming anyone. Every subject therefore appears as::

    ps1:<hex(HMAC-SHA256(secret, canonical identity))>

where ``secret`` is the broker's 32-byte pseudonym secret (``KeyStore.pseudonym_secret()``).
Without the secret the pseudonym cannot be reversed or even tested against a guessed identity;
an auditor who is given the secret and a citizen's identity recomputes the same value with
:func:`subject_pseudonym` (or by hand from the rules below).

Canonical identity (UTF-8 encoded, lines separated by a single LF, no trailing LF):

* With an IDNr (the Identifikationsnummer of the IDNrG, 11 digits)::

      ps1
      idnr
      <the 11 digits>

  Spaces inside the IDNr (people write it in groups) are removed; anything but 11 ASCII
  digits is rejected. The check digit is not verified here: that is input validation for the
  API boundary, and a pseudonym must not fail on data a register already accepted.

* Without an IDNr, the name and birth-date triple::

      ps1
      name
      <family name>
      <given names>
      <birth date as YYYY-MM-DD>

  Each name is normalised by: Unicode NFC, then ``str.casefold()``, then NFC again (case
  folding can leave a string un-normalised), then every run of Unicode whitespace becomes one
  space and leading/trailing whitespace is dropped. So "MUSTERMANN", " mustermann " and a
  decomposed "Müller" (u + U+0308) match their plain forms, and casefold makes "Weiß" and
  "WEISS" equal. Deliberately *not* done: transliteration (Müller vs. Mueller are different
  registered names), NFKC (registers keep names in NFC per DIN SPEC 91379 / XÖV, and
  compatibility folding would merge characters that standard keeps apart), reordering or
  dropping given names, unifying hyphens or apostrophes. Birth dates are a ``datetime.date``
  or an ISO 8601 ``YYYY-MM-DD`` string; German ``DD.MM.YYYY`` and partial dates are rejected
  rather than guessed.

Why the IDNr wins when present: it is the one identifier the Registermodernisierung created
for exactly this purpose; it is stable across marriage, name changes and transliteration and
unique where name + birth date is not (two Erika Mustermanns born the same day). The triple is
the fallback for requests that carry no IDNr. Consequence an auditor must know: the same
person gets one pseudonym for IDNr requests and another for name-only requests; to find all
entries about a citizen, compute both. The second line ("idnr" / "name") separates the two
domains so a name triple can never produce the same input as an IDNr.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable

from adapters.protocol import Subject

PREFIX = "ps1:"

_IDNR = re.compile(r"[0-9]{11}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def normalise_name(value: str) -> str:
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).casefold())
    collapsed = " ".join(folded.split())
    if not collapsed:
        raise ValueError("name is empty")
    if any(unicodedata.category(ch) == "Cc" for ch in collapsed):
        raise ValueError("name contains control characters")
    return collapsed


def normalise_idnr(value: str) -> str:
    digits = "".join(value.split())
    if not _IDNR.fullmatch(digits):
        raise ValueError("IDNr must consist of 11 digits")
    return digits


def normalise_birth_date(value: datetime.date | str) -> str:
    if isinstance(value, datetime.datetime):
        # A datetime would silently carry a time zone and time; birth dates are calendar days.
        raise ValueError("birth date must be a date, not a datetime")
    if isinstance(value, datetime.date):
        return value.isoformat()
    text = value.strip()
    if not _ISO_DATE.fullmatch(text):
        raise ValueError("birth date must be given as YYYY-MM-DD")
    return datetime.date.fromisoformat(text).isoformat()


def normalise_identity(
    *,
    idnr: str | None = None,
    family_name: str | None = None,
    given_name: str | None = None,
    birth_date: datetime.date | str | None = None,
) -> str:
    """The canonical identity string the pseudonym is computed over (see the module docstring)."""
    if idnr is not None and idnr.strip():
        return f"ps1\nidnr\n{normalise_idnr(idnr)}"
    if family_name is None or given_name is None or birth_date is None:
        raise ValueError("without an IDNr, family_name, given_name and birth_date are all required")
    return "\n".join(
        (
            "ps1",
            "name",
            normalise_name(family_name),
            normalise_name(given_name),
            normalise_birth_date(birth_date),
        )
    )


def subject_pseudonym(
    secret: bytes,
    *,
    idnr: str | None = None,
    family_name: str | None = None,
    given_name: str | None = None,
    birth_date: datetime.date | str | None = None,
) -> str:
    if len(secret) < 32:
        raise ValueError("pseudonym secret must be at least 32 bytes")
    canonical = normalise_identity(idnr=idnr, family_name=family_name, given_name=given_name, birth_date=birth_date)
    digest = hmac.new(secret, canonical.encode("utf-8"), hashlib.sha256).hexdigest()
    return PREFIX + digest


# Domain separation: the request-digest key is derived from the pseudonym secret, so that a
# digest can never be confused with (or used to test) a pseudonym.
_REQUEST_DIGEST_CONTEXT = b"once-only-broker/request-digest/v1"


class Pseudonymiser:
    """Keyed digests of personal data with the broker's secret (read through ``secret`` when needed):
    subjects' pseudonyms, and the digests of requests that name a subject."""

    def __init__(self, secret: Callable[[], bytes]) -> None:
        self._secret = secret
        # Derived on first use, then kept: the secret never changes while a process runs, and the
        # request path should not derive a key per request.
        self._request_key: bytes | None = None

    def request_digest(self, canonical_request: bytes) -> str:
        """HMAC-SHA256 of a request, hex. Unkeyed, the digest of a request naming "Erika Mustermann,
        1964-08-12" is found by trying names and dates; keyed, not without the secret."""
        if self._request_key is None:
            self._request_key = hmac.new(self._secret(), _REQUEST_DIGEST_CONTEXT, hashlib.sha256).digest()
        return hmac.new(self._request_key, canonical_request, hashlib.sha256).hexdigest()

    def of(self, subject: Subject) -> str:
        return subject_pseudonym(
            self._secret(),
            idnr=subject.idnr,
            family_name=subject.family_name,
            given_name=subject.given_name,
            birth_date=subject.birth_date,
        )
