"""Consents as the API takes and shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from broker.exchange.schemas import SubjectIn
from broker.schemas_common import ApiModel, Moment

# More uses than any one consent needs; well inside the 32-bit column that counts them.
MAX_CONSENT_USES = 10_000


class ConsentIn(ApiModel):
    """A requester's consent request: what it asks the citizen to allow, why, for how long and how often."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    subject: SubjectIn
    evidence_types: list[str] = Field(min_length=1, max_length=20)
    # A registered purpose (id or exact name) and, optionally, a registered legal basis (id or
    # exact citation) that covers every evidence type: the citizen sees why they are asked.
    purpose: str = Field(min_length=1, max_length=300)
    legal_basis: str | None = Field(default=None, min_length=1, max_length=300)
    valid_from: Moment | None = None
    valid_until: Moment
    max_uses: int | None = Field(default=None, ge=1, le=MAX_CONSENT_USES)


class ConsentOut(BaseModel):
    id: str
    # requested (awaiting the citizen) | granted | declined; only a granted, unrevoked consent
    # authorises exchanges.
    state: str
    evidence_types: list[str]
    purpose: str
    legal_basis: str | None
    valid_from: datetime
    valid_until: datetime
    max_uses: int | None
    uses: int
    revoked_at: datetime | None
    created_at: datetime
    decided_at: datetime | None
    # The signed grant (compact JWS; verify with the JWKS at /.well-known/broker-keys), once granted.
    artefact: str | None
    # "self" (relative, like the API's other links) and "approval": the absolute address where
    # the citizen signs in and grants or declines.
    links: dict[str, str]
