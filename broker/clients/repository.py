"""All client queries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Row, bindparam, select, update
from sqlalchemy.orm import Session

from broker.db.models import Client, ClientPermission


def by_token_hash(session: Session, token_hash: str) -> Client | None:
    return session.scalars(select(Client).where(Client.token_hash == token_hash, Client.disabled.is_(False))).first()


# Built once: constructing the statement cost as much as running it on this hot path.
_STANDING = select(Client.disabled, Client.expires_at).where(
    Client.token_hash == bindparam("token_hash"), Client.removed_at.is_(None)
)


def standing(connection: Connection, token_hash: str) -> Row[bool, datetime | None] | None:
    """What every authenticated request reads fresh: one lookup on the unique token-hash index.

    On a bare connection: an ORM session would cost about three times as much on this hot path.
    """
    return connection.execute(_STANDING, {"token_hash": token_hash}).first()


def by_name(session: Session, name: str) -> Client | None:
    return session.scalars(select(Client).where(Client.name == name)).first()


def permissions(session: Session, client_id: int) -> list[ClientPermission]:
    return list(session.scalars(select(ClientPermission).where(ClientPermission.client_id == client_id)).all())


def add(session: Session, client: Client, grants: list[tuple[str, str | None]]) -> Client:
    session.add(client)
    session.flush()
    for evidence_type, purpose in grants:
        session.add(ClientPermission(client_id=client.id, evidence_type_id=evidence_type, purpose=purpose))
    return client


def name_of(session: Session, client_id: int) -> str:
    """A client's name as the log records it; a removed client keeps a stable stand-in."""
    name = session.scalar(select(Client.name).where(Client.id == client_id))
    return name if name is not None else f"client-{client_id}"


def callback_origins(session: Session, client_id: int) -> list[str]:
    return list(session.scalar(select(Client.callback_origins).where(Client.id == client_id)) or [])


def get(session: Session, client_id: int) -> Client | None:
    return session.get(Client, client_id)


def all_clients(session: Session) -> list[Client]:
    return list(session.scalars(select(Client).order_by(Client.name)).all())


def grants_of(session: Session, client_ids: list[int]) -> dict[int, list[ClientPermission]]:
    found: dict[int, list[ClientPermission]] = {client_id: [] for client_id in client_ids}
    query = select(ClientPermission).where(ClientPermission.client_id.in_(client_ids)).order_by(ClientPermission.id)
    for permission in session.scalars(query):
        found[permission.client_id].append(permission)
    return found


# Lifecycle changes are conditional UPDATEs: of two concurrent changes (two admins, or an admin
# and the command line) exactly one wins and is logged, on either database. The statements'
# session synchronisation updates the loaded client when it wins.


def set_disabled(session: Session, client: Client, disabled: bool) -> bool:
    """Set the flag of a client not removed; False if it was so already."""
    result = session.execute(
        update(Client)
        .where(Client.id == client.id, Client.disabled.is_(not disabled), Client.removed_at.is_(None))
        .values(disabled=disabled)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def replace_token(session: Session, client: Client, token_hash: str, expires_at: datetime | None) -> bool:
    """Give the client a new token; False if its token changed (or it was removed) since it was read."""
    result = session.execute(
        update(Client)
        .where(Client.id == client.id, Client.token_hash == client.token_hash, Client.removed_at.is_(None))
        .values(token_hash=token_hash, expires_at=expires_at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_removed(session: Session, client: Client, now: datetime) -> bool:
    """Remove the client; False if it was removed already."""
    result = session.execute(
        update(Client)
        .where(Client.id == client.id, Client.removed_at.is_(None))
        # Unique like a hash, but a presented token's hash (64 hex digits) never equals it.
        .values(removed_at=now, token_hash=f"removed:{client.id}")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
