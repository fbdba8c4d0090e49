"""Clients as the admin API takes and shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from broker.clients.service import MAX_TOKEN_LIFETIME_DAYS, NAME_PATTERN, ClientStatus, Role
from broker.schemas_common import ApiModel, AwareMoment


class TokenLifetimeIn(ApiModel):
    """When a token issued now expires: at most one of the two; neither: never."""

    # What the service checks, stated in the contract: not both (null counts as not given).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "not": {
                "required": ["expires_at", "expires_in_days"],
                "properties": {"expires_at": {"type": "string"}, "expires_in_days": {"type": "integer"}},
            }
        },
    )

    expires_at: AwareMoment | None = None
    expires_in_days: int | None = Field(default=None, ge=1, le=MAX_TOKEN_LIFETIME_DAYS)


class ClientIn(TokenLifetimeIn):
    name: str = Field(pattern=NAME_PATTERN, max_length=200)
    role: Role
    # As `broker clients add --allow`: EVIDENCE_TYPE or EVIDENCE_TYPE=PURPOSE (requesters).
    allow: list[Annotated[str, Field(min_length=1, max_length=600)]] = Field(default_factory=list, max_length=100)
    agent: str | None = Field(default=None, min_length=1, max_length=200)
    authority: str | None = Field(default=None, min_length=1, max_length=100)
    # As `broker clients add --callback-origin` (requesters): https://host[:port].
    callback_origins: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=20
    )


class ClientOut(BaseModel):
    name: str
    role: str
    status: ClientStatus
    # As given to `--allow`: EVIDENCE_TYPE (any purpose) or EVIDENCE_TYPE=PURPOSE.
    allow: list[str]
    agent: str | None
    authority: str | None
    callback_origins: list[str]
    created_at: datetime
    expires_at: datetime | None
    removed_at: datetime | None


class ClientListOut(BaseModel):
    clients: list[ClientOut]


class ClientTokenOut(BaseModel):
    client: ClientOut
    token: str = Field(description="The bearer token; shown only in this answer (the broker keeps a hash)")
