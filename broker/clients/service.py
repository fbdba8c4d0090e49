"""Clients of the broker and their bearer tokens. Only a hash of each token is stored.

A client's lifecycle (added, disabled, enabled, token rotated, removed) is recorded in the
provenance log. A removed client keeps its row, name and grants, so the exchanges that refer to
it and the log entries that name it stay readable; its token hash is replaced by a value no token
hashes to, and its name is never given to another client.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.audit.service import EntryFacts, record
from broker.clients import repository
from broker.clock import as_utc
from broker.db.models import Client
from broker.egress import STRICT, EgressPolicy, EgressRefused, origin
from broker.registry import repository as registry_repository

Role = Literal["requester", "adapter", "auditor", "admin", "metrics"]
ROLES: tuple[Role, ...] = ("requester", "adapter", "auditor", "admin", "metrics")


# Names appear in the log and in URLs: identifiers, not free text.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
# The actor recorded for changes made on the command line (the API records the admin's name).
CLI_ACTOR = "cli"
# Longer lifetimes are typos; a token that should never expire gets no expiry.
MAX_TOKEN_LIFETIME_DAYS = 3650


class ClientError(ValueError):
    """A refused client change; ``status`` and ``reason`` are what the admin API answers."""

    def __init__(self, message: str, status: int = 422, reason: str = "client.invalid") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ClientStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    EXPIRED = "expired"
    REMOVED = "removed"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as the hot path sees it (no ORM object outlives its session)."""

    id: int
    name: str
    role: str
    agent_id: str | None
    authority_id: str | None
    # (evidence type id, purpose id); purpose None allows any registered purpose.
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
    *,
    expires_at: datetime | None = None,
    callback_origins: Sequence[str] = (),
    egress: EgressPolicy = STRICT,
    actor: str,
    now: datetime,
) -> str:
    """Create a client; returns its bearer token, which is shown only this once.

    ``callback_origins`` (requesters) must pass the ``egress`` policy as it stands now; the
    broker checks every callback again when it connects.
    """
    if not re.fullmatch(NAME_PATTERN, name):
        raise ClientError(f"client name {name!r}: letters, digits, '.', '_' and '-' only (at most 200)")
    if role not in ROLES:
        raise ClientError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    existing = repository.by_name(session, name)
    if existing is not None and existing.removed_at is not None:
        raise ClientError(
            f"a removed client was named {name!r}; names are not reused, so the log stays unambiguous",
            409,
            "client.exists",
        )
    if existing is not None:
        raise ClientError(f"a client named {name!r} exists already", 409, "client.exists")
    if grants and role != "requester":
        raise ClientError("--allow applies to requesters only")
    # Stored by registry id, once each (two names of one purpose are one grant).
    grants = list(dict.fromkeys(_registered_grant(session, grant) for grant in grants))
    if agent_id is not None and (":" not in agent_id or agent_id.startswith(":") or agent_id.endswith(":")):
        raise ClientError(f"--agent {agent_id!r}: expected SCHEME:ID, e.g. 0096:DK22233223")
    if role == "adapter" and authority_id is None:
        raise ClientError("an adapter client needs --authority ID: the authority it answers for")
    if authority_id is not None and role != "adapter":
        raise ClientError("--authority applies to adapters only")
    if authority_id is not None and not registry_repository.authority_exists(session, authority_id):
        raise ClientError(f"--authority: no authority {authority_id!r} in the registry", reason="authority.unknown")
    if callback_origins and role != "requester":
        raise ClientError("--callback-origin applies to requesters only")
    origins = [_callback_origin(url, egress) for url in callback_origins]
    _check_expiry(expires_at, now)
    token = new_token()
    client = Client(
        name=name,
        role=role,
        token_hash=hash_token(token),
        agent_id=agent_id,
        authority_id=authority_id,
        callback_origins=sorted(set(origins)),
        created_at=now,
        expires_at=expires_at,
        disabled=False,
    )
    try:
        repository.add(session, client, grants)
    except IntegrityError as error:  # the name was taken by a concurrent request since the check above
        raise ClientError(f"a client named {name!r} exists already", 409, "client.exists") from error
    _log(session, "client_added", client, actor, now)
    return token


def _registered_grant(session: Session, grant: tuple[str, str | None]) -> tuple[str, str | None]:
    """A grant as it is stored: a registered evidence type, and the id of a registered purpose
    (named by its id or exact name), or None for any registered purpose."""
    evidence_type, purpose = grant
    if not registry_repository.evidence_type_exists(session, evidence_type):
        raise ClientError(
            f"--allow: no evidence type {evidence_type!r} in the registry", reason="evidence_type.unknown"
        )
    if purpose is None:
        return evidence_type, None
    purpose_id = registry_repository.purpose_id(session, purpose)
    if purpose_id is None:
        raise ClientError(
            f"--allow {evidence_type}={purpose}: no such purpose in the registry (give its id or exact name)",
            reason="purpose.unknown",
        )
    return evidence_type, purpose_id


def _callback_origin(url: str, egress: EgressPolicy) -> str:
    try:
        egress.check_url(url)
        return origin(url)
    except EgressRefused as refusal:
        message = f"--callback-origin {url!r}: {refusal.detail}"
        raise ClientError(message, reason="callback_origin.not_allowed") from None


def new_token() -> str:
    return "bo_" + secrets.token_urlsafe(32)


def principal_for_token(session: Session, token: str) -> Principal | None:
    client = repository.by_token_hash(session, hash_token(token))
    if client is None:
        return None
    grants = frozenset((p.evidence_type_id, p.purpose) for p in repository.permissions(session, client.id))
    return Principal(client.id, client.name, client.role, client.agent_id, client.authority_id, grants)


# --- lifecycle ------------------------------------------------------------------------------


def status_of(client: Client, now: datetime) -> ClientStatus:
    if client.removed_at is not None:
        return ClientStatus.REMOVED
    return _standing(client.disabled, client.expires_at, now)


def token_standing(connection: Connection, token_hash: str, now: datetime) -> ClientStatus | None:
    """Whether the token's client may act now (None: no client has this token)."""
    row = repository.standing(connection, token_hash)
    return None if row is None else _standing(row.disabled, row.expires_at, now)


def _standing(disabled: bool, expires_at: datetime | None, now: datetime) -> ClientStatus:
    if disabled:
        return ClientStatus.DISABLED
    if expires_at is not None and as_utc(expires_at) <= now:
        return ClientStatus.EXPIRED
    return ClientStatus.ACTIVE


def expiry(now: datetime, days: int | None, at: datetime | None) -> datetime | None:
    """When a token issued now expires, from a lifetime in days or a moment (at most one given)."""
    if days is not None and at is not None:
        raise ClientError("give the token's lifetime in days or its expiry moment, not both")
    if days is not None:
        if not 1 <= days <= MAX_TOKEN_LIFETIME_DAYS:
            raise ClientError(f"a token lifetime of {days} days: expected 1 to {MAX_TOKEN_LIFETIME_DAYS}")
        return now + timedelta(days=days)
    return at


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise ClientError("the expiry moment needs a time zone, e.g. 2027-06-30T00:00:00Z")
    if expires_at <= now:
        raise ClientError(f"the expiry moment {expires_at.isoformat()} is not in the future")


def named(session: Session, name: str) -> Client:
    client = repository.by_name(session, name)
    if client is None:
        raise ClientError(f"no client named {name!r}", 404, "client.not_found")
    return client


def _present(session: Session, name: str) -> Client:
    """The client ``name`` that may still change: a removed one stays as it was."""
    client = named(session, name)
    if client.removed_at is not None:
        raise ClientError(f"client {name!r} was removed", 409, "client.removed")
    return client


def disable(session: Session, name: str, *, actor: str, now: datetime) -> Client:
    """Refuse the client's token from now on, in every serving process (see clients/auth.py)."""
    client = _present(session, name)
    if repository.set_disabled(session, client, True):
        _log(session, "client_disabled", client, actor, now)
    return client


def enable(session: Session, name: str, *, actor: str, now: datetime) -> Client:
    """Accept a disabled client's token again (an expired token stays expired)."""
    client = _present(session, name)
    if repository.set_disabled(session, client, False):
        _log(session, "client_enabled", client, actor, now)
    return client


def rotate_token(
    session: Session, name: str, *, expires_at: datetime | None, actor: str, now: datetime
) -> tuple[Client, str]:
    """Replace the client's token (the old one is refused at once); returns the new one, shown only now."""
    client = _present(session, name)
    _check_expiry(expires_at, now)
    token = new_token()
    if not repository.replace_token(session, client, hash_token(token), expires_at):
        raise ClientError(f"client {name!r} changed meanwhile; try again", 409, "client.changed")
    _log(session, "client_token_rotated", client, actor, now)
    return client, token


def remove(session: Session, name: str, *, actor: str, now: datetime) -> Client:
    """Remove the client for good: its token never works again; its exchanges and log entries stay."""
    client = named(session, name)
    if repository.mark_removed(session, client, now):
        _log(session, "client_removed", client, actor, now)
    return client


def _log(session: Session, event: str, client: Client, actor: str, now: datetime) -> None:
    facts = EntryFacts(event=event, time=now, requester=client.name, authority=client.authority_id, actor=actor)
    record(session, facts)
