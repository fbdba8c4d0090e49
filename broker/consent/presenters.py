"""Consents as the API shows them."""

from __future__ import annotations

from broker.consent.schemas import ConsentOut
from broker.db.models import Consent


def consent_out(consent: Consent) -> ConsentOut:
    return ConsentOut.model_validate(consent, from_attributes=True)
