"""Consents as the API shows them, with the link that sends the citizen to decide."""

from __future__ import annotations

from datetime import datetime

from broker.clock import as_utc
from broker.consent.schemas import ConsentOut
from broker.db.models import Consent

PATH = "/v1/consents"
# Where the citizen signs in, sees the request and grants or declines it (the citizen pages).
APPROVAL_PATH = "/citizen/consents"


def href(consent_id: str) -> str:
    return f"{PATH}/{consent_id}"


def approval_path(consent_id: str) -> str:
    return f"{APPROVAL_PATH}/{consent_id}"


def _utc(moment: datetime | None) -> datetime | None:
    return as_utc(moment) if moment is not None else None


def consent_out(consent: Consent, base: str) -> ConsentOut:
    """``base``: the broker's address as citizens reach it (the approval link goes to them)."""
    return ConsentOut(
        id=consent.id,
        state=consent.state,
        evidence_types=list(consent.evidence_types),
        purpose=consent.purpose,
        legal_basis=consent.legal_basis,
        valid_from=as_utc(consent.valid_from),
        valid_until=as_utc(consent.valid_until),
        max_uses=consent.max_uses,
        uses=consent.uses,
        revoked_at=_utc(consent.revoked_at),
        created_at=as_utc(consent.created_at),
        decided_at=_utc(consent.decided_at),
        artefact=consent.artefact,
        links={"self": href(consent.id), "approval": base.rstrip("/") + approval_path(consent.id)},
    )
