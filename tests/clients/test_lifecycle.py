"""The client lifecycle's rules, in process: what each change does to the token, and its log entry."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from broker.clients import service
from broker.clients.auth import PrincipalCache
from broker.clients.service import ClientError, ClientStatus
from broker.clock import FixedClock
from broker.db.models import Client, LogEntry
from broker.db.session import Database
from broker.problems import Problem

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def add(database: Database, expires_at: datetime | None = None) -> tuple[str, str]:
    name = f"portal-{uuid.uuid4().hex[:8]}"
    with database.unit_of_work() as session:
        token = service.add_client(session, name, "auditor", [], expires_at=expires_at, actor="cli", now=START)
    return name, token


def events(database: Database, name: str) -> list[tuple[str, str | None]]:
    with database.read() as session:
        bodies = session.scalars(select(LogEntry.body).where(LogEntry.requester == name).order_by(LogEntry.seq))
        return [(json.loads(b)["event"], json.loads(b)["actor"]) for b in bodies]


def refusal(cache: PrincipalCache, token: str) -> str | None:
    try:
        return None if cache.resolve(token) is not None else "unknown"
    except Problem as problem:
        return problem.reason


def test_each_change_is_refused_or_accepted_at_once_and_logged(service_database: Database) -> None:
    clock = FixedClock(START)
    cache = PrincipalCache(service_database, clock)
    name, token = add(service_database, expires_at=START + timedelta(days=1))
    assert refusal(cache, token) is None  # now cached in this process

    def change(action: str) -> Client:
        with service_database.unit_of_work() as session:
            found: Client = getattr(service, action)(session, name, actor="admin-1", now=clock.now())
            return found

    change("disable")
    change("disable")  # no change, no second entry
    assert refusal(cache, token) == "auth.client_disabled"
    change("enable")
    assert refusal(cache, token) is None
    clock.advance(timedelta(days=1))
    assert refusal(cache, token) == "auth.token_expired"

    with service_database.unit_of_work() as session:
        _, new = service.rotate_token(session, name, expires_at=None, actor="cli", now=clock.now())
    assert refusal(cache, token) == "unknown" and refusal(cache, new) is None

    removed = change("remove")
    change("remove")
    assert service.status_of(removed, clock.now()) is ClientStatus.REMOVED
    assert refusal(cache, new) == "unknown"
    assert events(service_database, name) == [
        ("client_added", "cli"),
        ("client_disabled", "admin-1"),
        ("client_enabled", "admin-1"),
        ("client_token_rotated", "cli"),
        ("client_removed", "admin-1"),
    ]


def test_a_removed_client_cannot_change_and_its_name_is_not_reused(service_database: Database) -> None:
    name, _ = add(service_database)
    with service_database.unit_of_work() as session:
        service.remove(session, name, actor="cli", now=START)
    with service_database.unit_of_work() as session:
        for action in ("disable", "enable"):
            with pytest.raises(ClientError) as refused:
                getattr(service, action)(session, name, actor="cli", now=START)
            assert (refused.value.status, refused.value.reason) == (409, "client.removed")
        with pytest.raises(ClientError) as reused:
            service.add_client(session, name, "auditor", [], actor="cli", now=START)
        assert (reused.value.status, reused.value.reason) == (409, "client.exists")
        assert "not reused" in str(reused.value)


@pytest.mark.parametrize(
    ("days", "at", "expected"),
    [
        (None, None, None),
        (30, None, START + timedelta(days=30)),
        (None, START + timedelta(hours=1), START + timedelta(hours=1)),
    ],
)
def test_token_expiry(days: int | None, at: datetime | None, expected: datetime | None) -> None:
    assert service.expiry(START, days, at) == expected


@pytest.mark.parametrize(
    ("days", "at", "message"),
    [
        (0, None, "expected 1 to 3650"),
        (3651, None, "expected 1 to 3650"),
        (1, START + timedelta(days=1), "not both"),
    ],
)
def test_token_expiry_refusals(days: int | None, at: datetime | None, message: str) -> None:
    with pytest.raises(ClientError, match=message):
        service.expiry(START, days, at)


@pytest.mark.parametrize("name", ["", "-x", "a b", "tab\there", "nul\x00", "ä", "x" * 201])
def test_names_are_identifiers(service_database: Database, name: str) -> None:
    with service_database.unit_of_work() as session, pytest.raises(ClientError, match="letters, digits"):
        service.add_client(session, name, "auditor", [], actor="cli", now=START)
