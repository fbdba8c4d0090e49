"""/v1/admin/clients: the clients of the broker and their tokens (admin role).

The same changes as `broker clients …`, logged with the acting admin's name. A token is shown
only in the answer that issues it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from sqlalchemy.orm import Session

from broker.clients import repository, service
from broker.clients.presenters import client_out
from broker.clients.schemas import ClientIn, ClientListOut, ClientOut, ClientTokenOut, TokenLifetimeIn
from broker.clients.service import NAME_PATTERN, ClientError
from broker.db.models import Client
from broker.deps import Admin, ClockDep, Db, Egress
from broker.problems import Problem, problem_responses

router = APIRouter(prefix="/v1/admin/clients", tags=["clients"], responses=problem_responses(401, 403, 404, 409, 422))

ClientName = Annotated[str, PathParam(pattern=NAME_PATTERN, max_length=200)]


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        raise Problem(error.status, error.reason, str(error)) from None


def _out(session: Session, client: Client, now: datetime) -> ClientOut:
    return client_out(client, repository.permissions(session, client.id), now)


def _not_self(name: str, admin_name: str) -> None:
    # Locking oneself out by API is a slip; another admin or the command line can do it.
    if name == admin_name:
        raise Problem(409, "client.self", "An admin cannot disable or remove its own client.")


@router.get("", response_model=ClientListOut)
def list_clients(_: Admin, db: Db, clock: ClockDep) -> ClientListOut:
    now = clock.now()
    with db.read() as session:
        found = repository.all_clients(session)
        grants = repository.grants_of(session, [c.id for c in found])
        return ClientListOut(clients=[client_out(c, grants[c.id], now) for c in found])


@router.get("/{name}", response_model=ClientOut)
def get_client(name: ClientName, _: Admin, db: Db, clock: ClockDep) -> ClientOut:
    with _refusals(), db.read() as session:
        return _out(session, service.named(session, name), clock.now())


@router.post("", status_code=201, response_model=ClientTokenOut)
def create_client(body: ClientIn, admin: Admin, db: Db, clock: ClockDep, egress: Egress) -> ClientTokenOut:
    now = clock.now()
    with _refusals(), db.unit_of_work() as session:
        token = service.add_client(
            session,
            body.name,
            body.role,
            [service.parse_grant(grant) for grant in body.allow],
            agent_id=body.agent,
            authority_id=body.authority,
            expires_at=service.expiry(now, body.expires_in_days, body.expires_at),
            callback_origins=body.callback_origins,
            egress=egress,
            actor=admin.name,
            now=now,
        )
        return ClientTokenOut(client=_out(session, service.named(session, body.name), now), token=token)


@router.post("/{name}/disable", response_model=ClientOut)
def disable_client(name: ClientName, admin: Admin, db: Db, clock: ClockDep) -> ClientOut:
    _not_self(name, admin.name)
    now = clock.now()
    with _refusals(), db.unit_of_work() as session:
        return _out(session, service.disable(session, name, actor=admin.name, now=now), now)


@router.post("/{name}/enable", response_model=ClientOut)
def enable_client(name: ClientName, admin: Admin, db: Db, clock: ClockDep) -> ClientOut:
    now = clock.now()
    with _refusals(), db.unit_of_work() as session:
        return _out(session, service.enable(session, name, actor=admin.name, now=now), now)


@router.post("/{name}/rotate-token", response_model=ClientTokenOut)
def rotate_token(
    name: ClientName, admin: Admin, db: Db, clock: ClockDep, body: TokenLifetimeIn | None = None
) -> ClientTokenOut:
    lifetime = body or TokenLifetimeIn()
    now = clock.now()
    with _refusals(), db.unit_of_work() as session:
        expires_at = service.expiry(now, lifetime.expires_in_days, lifetime.expires_at)
        client, token = service.rotate_token(session, name, expires_at=expires_at, actor=admin.name, now=now)
        return ClientTokenOut(client=_out(session, client, now), token=token)


@router.delete("/{name}", response_model=ClientOut)
def remove_client(name: ClientName, admin: Admin, db: Db, clock: ClockDep) -> ClientOut:
    _not_self(name, admin.name)
    now = clock.now()
    with _refusals(), db.unit_of_work() as session:
        return _out(session, service.remove(session, name, actor=admin.name, now=now), now)
