"""All client queries."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.db.models import Client, ClientPermission


def by_token_hash(session: Session, token_hash: str) -> Client | None:
    return session.scalars(select(Client).where(Client.token_hash == token_hash, Client.disabled.is_(False))).first()


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


def get(session: Session, client_id: int) -> Client | None:
    return session.get(Client, client_id)
