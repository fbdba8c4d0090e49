"""Consent artefacts as the API shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from broker.exchange.schemas import SubjectIn
from broker.schemas_common import ApiModel, Moment

# More uses than any one consent needs; well inside the 32-bit column that counts them.
MAX_CONSENT_USES = 10_000


class ConsentIn(ApiModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    subject: SubjectIn
    evidence_types: list[str] = Field(min_length=1, max_length=20)
    purpose: str = Field(min_length=1, max_length=300)
    valid_from: Moment | None = None
    valid_until: Moment
    max_uses: int | None = Field(default=None, ge=1, le=MAX_CONSENT_USES)


class ConsentOut(BaseModel):
    id: str
    evidence_types: list[str]
    purpose: str
    valid_from: datetime
    valid_until: datetime
    max_uses: int | None
    uses: int
    revoked_at: datetime | None
    created_at: datetime
