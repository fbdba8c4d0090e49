"""Clients of the broker and their bearer tokens. Only a hash of each token is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.orm import Session

from broker.clients import repository
from broker.db.models import Client

Role = Literal["requester", "adapter", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("requester", "adapter", "auditor", "admin")


class ClientError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as the hot path sees it (no ORM object outlives its session)."""

    id: int
    name: str
    role: str
    agent_id: str | None
    authority_id: str | None
    # (evidence type, purpose); purpose None allows any purpose.
    grants: frozenset[tuple[str, str | None]]

    def may_request(self, evidence_type: str, purpose: str) -> bool:
        return (evidence_type, None) in self.grants or (evidence_type, purpose) in self.grants


def hash_token(token: str) -> str:
    # Tokens carry 256 bits of randomness, so a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def parse_grant(text: str) -> tuple[str, str | None]:
    evidence_type, sep, purpose = text.partition("=")
    if not evidence_type or (sep and not purpose):
        raise ClientError(f"--allow {text!r}: expected EVIDENCE_TYPE or EVIDENCE_TYPE=PURPOSE")
    return evidence_type, purpose or None


def add_client(
    session: Session,
    name: str,
    role: str,
    grants: list[tuple[str, str | None]],
    agent_id: str | None = None,
    authority_id: str | None = None,
) -> str:
    """Create a client; returns its bearer token, which is shown only this once."""
    if role not in ROLES:
        raise ClientError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if repository.by_name(session, name) is not None:
        raise ClientError(f"a client named {name!r} exists already")
    if grants and role != "requester":
        raise ClientError("--allow applies to requesters only")
    if agent_id is not None and (":" not in agent_id or agent_id.startswith(":") or agent_id.endswith(":")):
        raise ClientError(f"--agent {agent_id!r}: expected SCHEME:ID, e.g. 0096:DK22233223")
    if role == "adapter" and authority_id is None:
        raise ClientError("an adapter client needs --authority ID: the authority it answers for")
    token = "bo_" + secrets.token_urlsafe(32)
    client = Client(
        name=name,
        role=role,
        token_hash=hash_token(token),
        agent_id=agent_id,
        authority_id=authority_id,
        created_at=datetime.now(UTC),
    )
    repository.add(session, client, grants)
    return token


def principal_for_token(session: Session, token: str) -> Principal | None:
    client = repository.by_token_hash(session, hash_token(token))
    if client is None:
        return None
    grants = frozenset((p.evidence_type_id, p.purpose) for p in repository.permissions(session, client.id))
    return Principal(client.id, client.name, client.role, client.agent_id, client.authority_id, grants)
