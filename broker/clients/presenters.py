"""Clients as the admin API shows them (never a token hash)."""

from __future__ import annotations

from datetime import datetime

from broker.clients.schemas import ClientOut
from broker.clients.service import status_of
from broker.clock import as_utc
from broker.db.models import Client, ClientPermission


def client_out(client: Client, grants: list[ClientPermission], now: datetime) -> ClientOut:
    return ClientOut(
        name=client.name,
        role=client.role,
        status=status_of(client, now),
        allow=[g.evidence_type_id if g.purpose is None else f"{g.evidence_type_id}={g.purpose}" for g in grants],
        agent=client.agent_id,
        authority=client.authority_id,
        callback_origins=list(client.callback_origins),
        created_at=as_utc(client.created_at),
        expires_at=None if client.expires_at is None else as_utc(client.expires_at),
        removed_at=None if client.removed_at is None else as_utc(client.removed_at),
    )
