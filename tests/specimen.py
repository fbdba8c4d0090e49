"""The demo data the tests request: evidence type ids and the specimen citizen of the contract."""

from __future__ import annotations

from typing import Any

MELDE = "urn:de:nachweis:meldebescheinigung"
GEBURT = "urn:de:nachweis:geburtsurkunde"
GEWERBE = "urn:de:nachweis:gewerbeanmeldung"
ERIKA = {"family_name": "Mustermann", "given_name": "Erika", "birth_date": "1964-08-12"}
ERIKA_IDNR = "12345678995"


def request_body(evidence_type: str = MELDE, **overrides: Any) -> dict[str, Any]:
    """A valid /v1/evidence-requests body for Erika Mustermann in Schwerin, with overrides."""
    body: dict[str, Any] = {
        "evidence_type": evidence_type,
        "jurisdiction": "13004",
        "subject": dict(ERIKA),
        "purpose": "Wohngeldantrag",
        "legal_basis": "§ 23 WoGG",
        "explicit_request": True,
    }
    body.update(overrides)
    return body
