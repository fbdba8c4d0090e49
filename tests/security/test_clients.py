"""Client lifecycle: disable, enable, rotate, expire and remove a client, by command line and
admin API; each change takes effect at once in every broker process and is a log entry.

Before this, only `broker clients add` existed, and each process cached a token's client for 30 s,
so a disabled client kept working for up to half a minute.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from broker.db.models import Client, Exchange
from broker.db.session import make_engine, make_session_factory
from tests.conftest import SHARED_DIR, LiveBroker, start_broker, stop_process
from tests.specimen import MELDE, request_body

AUTHORITY = "melderegister-13003"


@pytest.fixture(scope="module")
def second_broker(live_broker: LiveBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """Another serving process on the same database (and keys), as a scaled-out deployment runs."""
    env = {"BROKER_KEYS_DIR": str(live_broker.keys_dir), "BROKER_SCHEMA_PATH": str(SHARED_DIR / "oots" / "xsd")}
    process, broker = start_broker(live_broker.database_url, tmp_path_factory.mktemp("second"), env)
    try:
        yield broker
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def auditor(live_broker: LiveBroker) -> str:
    return live_broker.add_client("auditor")


@pytest.fixture(scope="module")
def admin(live_broker: LiveBroker) -> tuple[str, str]:
    """An admin client: (name, token)."""
    name = unique("admin")
    return name, add(live_broker, name, "admin")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def cli(broker: LiveBroker, *args: str) -> subprocess.CompletedProcess[str]:
    """`broker clients …` as an operator runs it."""
    command = [sys.executable, "-m", "broker.cli", "clients", *args]
    return subprocess.run(command, env=broker.env, capture_output=True, text=True, timeout=60)


def add(broker: LiveBroker, name: str, role: str, *options: str) -> str:
    done = cli(broker, "add", name, "--role", role, *options)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def refusal(broker: LiveBroker, token: str) -> str | None:
    """The reason a requester's real evidence request is refused with, or None if it is delivered."""
    with broker.client(token) as client:
        answer = client.post("/v1/evidence-requests", json=request_body())
    if answer.status_code == 200:
        return None
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    return str(answer.json()["reason"])


def log_of(broker: LiveBroker, auditor: str, name: str, count: int) -> list[dict[str, Any]]:
    """The client events the log holds for ``name``, once ``count`` of them are integrated."""
    deadline = time.monotonic() + 15
    with broker.client(auditor) as client:
        while True:
            answer = client.get("/v1/audit/entries", params={"requester": name, "limit": 1000})
            assert answer.status_code == 200, answer.text
            entries = [e["entry"] for e in answer.json()["entries"] if e["entry"]["event"].startswith("client_")]
            if len(entries) >= count or time.monotonic() > deadline:
                return entries
            time.sleep(0.2)


def test_disable_takes_effect_at_once_in_every_process(
    live_broker: LiveBroker, second_broker: LiveBroker, auditor: str
) -> None:
    name = unique("portal")
    token = add(live_broker, name, "requester", "--allow", MELDE)
    brokers = (live_broker, second_broker)
    # Both processes have now authenticated the token (and, before, cached its client for 30 s).
    assert [refusal(b, token) for b in brokers] == [None, None]

    disabled = cli(live_broker, "disable", name)
    assert disabled.returncode == 0, disabled.stderr
    assert [refusal(b, token) for b in brokers] == ["auth.client_disabled"] * 2

    enabled = cli(live_broker, "enable", name)
    assert enabled.returncode == 0, enabled.stderr
    assert [refusal(b, token) for b in brokers] == [None, None]

    entries = log_of(live_broker, auditor, name, 3)
    assert [(e["event"], e["actor"]) for e in entries] == [
        ("client_added", "cli"),
        ("client_disabled", "cli"),
        ("client_enabled", "cli"),
    ]
    # Ids and codes only: nothing of the client but its name.
    assert all(e["exchange"] is None and e["subject"] is None and e["purpose"] is None for e in entries)


def test_rotate_token_refuses_the_old_token_at_once(
    live_broker: LiveBroker, second_broker: LiveBroker, auditor: str
) -> None:
    name = unique("portal")
    old = add(live_broker, name, "requester", "--allow", MELDE)
    brokers = (live_broker, second_broker)
    assert [refusal(b, old) for b in brokers] == [None, None]

    rotated = cli(live_broker, "rotate-token", name)
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip().splitlines()[-1]
    assert new.startswith("bo_") and new != old
    assert [refusal(b, old) for b in brokers] == ["auth.invalid_token"] * 2
    assert [refusal(b, new) for b in brokers] == [None, None]
    assert [e["event"] for e in log_of(live_broker, auditor, name, 2)] == ["client_added", "client_token_rotated"]


def test_an_expired_token_is_refused(live_broker: LiveBroker, admin: tuple[str, str]) -> None:
    name = unique("portal")
    expires_at = datetime.now(UTC) + timedelta(seconds=3)
    with live_broker.client(admin[1]) as client:
        created = client.post(
            "/v1/admin/clients",
            json={"name": name, "role": "requester", "allow": [MELDE], "expires_at": expires_at.isoformat()},
        )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert refusal(live_broker, token) is None
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.3)
    assert refusal(live_broker, token) == "auth.token_expired"
    listed = cli(live_broker, "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith(name + " "))
    assert row[1:3] == ["requester", "expired"]

    # Rotating issues a token with a new lifetime (here: 30 days).
    rotated = cli(live_broker, "rotate-token", name, "--expires-in", "30")
    assert rotated.returncode == 0, rotated.stderr
    assert refusal(live_broker, rotated.stdout.strip().splitlines()[-1]) is None
    with live_broker.client(admin[1]) as client:
        shown = client.get(f"/v1/admin/clients/{name}").json()
    assert shown["status"] == "active"
    lifetime = datetime.fromisoformat(shown["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=29) < lifetime <= timedelta(days=30)


def test_cli_expiry_options(live_broker: LiveBroker) -> None:
    name = unique("portal")
    token = add(live_broker, name, "requester", "--allow", MELDE, "--expires-at", "2099-12-31T00:00:00Z")
    assert refusal(live_broker, token) is None
    listed = cli(live_broker, "list").stdout
    assert any(
        line.split()[:4] == [name, "requester", "active", "2099-12-31T00:00:00Z"] for line in listed.splitlines()
    )
    for options, message in [
        (["--expires-at", "2001-01-01T00:00:00Z"], "is not in the future"),
        (["--expires-at", "2099-12-31T00:00:00"], "needs a time zone"),
        (["--expires-at", "next week"], "expected an ISO 8601 timestamp"),
        (["--expires-in", "0"], "expected 1 to 3650"),
        (["--expires-in", "3", "--expires-at", "2099-12-31T00:00:00Z"], "not both"),
    ]:
        done = cli(live_broker, "add", unique("portal"), "--role", "requester", *options)
        lines = done.stderr.splitlines()
        assert done.returncode == 1 and done.stdout == ""
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], (options, done.stderr)


def test_remove_keeps_the_exchanges_and_the_log_readable(live_broker: LiveBroker, auditor: str) -> None:
    name = unique("portal")
    token = add(live_broker, name, "requester", "--allow", MELDE)
    with live_broker.client(token) as client:
        delivered = client.post("/v1/evidence-requests", json=request_body())
    assert delivered.status_code == 200, delivered.text
    exchange_id = delivered.json()["id"]

    removed = cli(live_broker, "remove", name)
    assert removed.returncode == 0, removed.stderr
    assert refusal(live_broker, token) == "auth.invalid_token"
    again = cli(live_broker, "remove", name)  # removing twice changes nothing
    assert again.returncode == 0, again.stderr

    engine = make_engine(live_broker.database_url)
    with make_session_factory(engine)() as session:
        client_row = session.scalars(select(Client).where(Client.name == name)).one()
        exchange = session.get(Exchange, exchange_id)
        assert exchange is not None and exchange.requester_id == client_row.id and exchange.state == "delivered"
        assert client_row.removed_at is not None and client_row.token_hash == f"removed:{client_row.id}"
    engine.dispose()

    with live_broker.client(auditor) as client:
        entries = client.get("/v1/audit/entries", params={"exchange": exchange_id}).json()["entries"]
    assert entries and {e["entry"]["requester"] for e in entries} == {name}
    assert [e["event"] for e in log_of(live_broker, auditor, name, 2)] == ["client_added", "client_removed"]

    listed = cli(live_broker, "list").stdout
    assert any(line.split()[:3] == [name, "requester", "removed"] for line in listed.splitlines())
    reuse = cli(live_broker, "add", name, "--role", "requester")
    assert reuse.returncode != 0 and "names are not reused" in reuse.stderr
    for command in ("disable", "enable", "rotate-token"):
        done = cli(live_broker, command, name)
        assert done.returncode != 0 and done.stderr.strip() == f"Error: client {name!r} was removed"


@pytest.mark.parametrize("command", ["disable", "enable", "rotate-token", "remove"])
def test_cli_names_an_unknown_client_in_one_line(live_broker: LiveBroker, command: str) -> None:
    done = cli(live_broker, command, "no-such-client")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == "Error: no client named 'no-such-client'\n"


def test_admin_api_manages_clients(live_broker: LiveBroker, admin: tuple[str, str], auditor: str) -> None:
    admin_name, admin_token = admin
    name = unique("adapter")
    with live_broker.client(admin_token) as api:
        created = api.post("/v1/admin/clients", json={"name": name, "role": "adapter", "authority": AUTHORITY})
        assert created.status_code == 201, created.text
        token = created.json()["token"]
        shown = created.json()["client"]
        assert {k: shown[k] for k in ("name", "role", "status", "allow", "agent", "authority", "expires_at")} == {
            "name": name,
            "role": "adapter",
            "status": "active",
            "allow": [],
            "agent": None,
            "authority": AUTHORITY,
            "expires_at": None,
        }
        assert "token_hash" not in shown and shown["removed_at"] is None
        listed = api.get("/v1/admin/clients").json()["clients"]
        assert [c["status"] for c in listed if c["name"] == name] == ["active"]
        assert token not in api.get("/v1/admin/clients").text  # a token is shown only once

        with live_broker.client(token) as adapter:
            assert adapter.get("/v1/adapter/tasks", params={"wait": 0}).status_code == 200

            assert api.post(f"/v1/admin/clients/{name}/disable").json()["status"] == "disabled"
            answer = adapter.get("/v1/adapter/tasks", params={"wait": 0})
            assert (answer.status_code, answer.json()["reason"]) == (401, "auth.client_disabled")
            assert api.post(f"/v1/admin/clients/{name}/enable").json()["status"] == "active"
            assert adapter.get("/v1/adapter/tasks", params={"wait": 0}).status_code == 200

            rotated = api.post(f"/v1/admin/clients/{name}/rotate-token", json={"expires_in_days": 7})
            assert rotated.status_code == 200, rotated.text
            assert adapter.get("/v1/adapter/tasks", params={"wait": 0}).json()["reason"] == "auth.invalid_token"
            token = rotated.json()["token"]

        removed = api.delete(f"/v1/admin/clients/{name}")
        assert (removed.status_code, removed.json()["status"]) == (200, "removed")
        with live_broker.client(token) as adapter:
            assert adapter.get("/v1/adapter/tasks", params={"wait": 0}).json()["reason"] == "auth.invalid_token"
        assert api.get(f"/v1/admin/clients/{name}").json()["status"] == "removed"

    events = [(e["event"], e["actor"], e["authority"]) for e in log_of(live_broker, auditor, name, 5)]
    assert events == [
        ("client_added", admin_name, AUTHORITY),
        ("client_disabled", admin_name, AUTHORITY),
        ("client_enabled", admin_name, AUTHORITY),
        ("client_token_rotated", admin_name, AUTHORITY),
        ("client_removed", admin_name, AUTHORITY),
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "reason"),
    [
        ("GET", "/v1/admin/clients/no-such-client", None, 404, "client.not_found"),
        ("POST", "/v1/admin/clients/no-such-client/disable", None, 404, "client.not_found"),
        ("DELETE", "/v1/admin/clients/no-such-client", None, 404, "client.not_found"),
        ("GET", "/v1/admin/clients/bad%00name", None, 422, "request.invalid"),
        ("POST", "/v1/admin/clients", {"name": "x y", "role": "requester"}, 422, "request.invalid"),
        ("POST", "/v1/admin/clients", {"name": "x", "role": "requester", "token": "mine"}, 422, "request.invalid"),
        ("POST", "/v1/admin/clients", {"name": "x", "role": "superuser"}, 422, "request.invalid"),
        ("POST", "/v1/admin/clients", {"name": "x", "role": "adapter"}, 422, "client.invalid"),
        ("POST", "/v1/admin/clients", {"name": "x", "role": "auditor", "expires_in_days": 10**20}, 422, None),
        (
            "POST",
            "/v1/admin/clients",
            {"name": "x", "role": "auditor", "expires_at": "2001-01-01T00:00:00Z"},
            422,
            "client.invalid",
        ),
        (
            "POST",
            "/v1/admin/clients",
            {"name": "x", "role": "auditor", "expires_in_days": 3, "expires_at": "2099-01-01T00:00:00Z"},
            422,
            "client.invalid",
        ),
        ("POST", "/v1/admin/clients", {"name": "x", "role": "auditor", "expires_at": "2099-01-01T00:00"}, 422, None),
    ],
)
def test_admin_api_refusals(
    live_broker: LiveBroker,
    admin: tuple[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    reason: str | None,
) -> None:
    with live_broker.client(admin[1]) as api:
        answer = api.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    if reason is not None:
        assert answer.json()["reason"] == reason


def test_admin_api_conflicts(live_broker: LiveBroker, admin: tuple[str, str]) -> None:
    admin_name, admin_token = admin
    name = unique("auditor")
    with live_broker.client(admin_token) as api:
        assert api.post("/v1/admin/clients", json={"name": name, "role": "auditor"}).status_code == 201
        duplicate = api.post("/v1/admin/clients", json={"name": name, "role": "auditor"})
        assert (duplicate.status_code, duplicate.json()["reason"]) == (409, "client.exists")
        assert api.delete(f"/v1/admin/clients/{name}").status_code == 200
        gone = api.post(f"/v1/admin/clients/{name}/rotate-token")
        assert (gone.status_code, gone.json()["reason"]) == (409, "client.removed")
        for method, action in (("POST", "/disable"), ("DELETE", "")):
            mine = api.request(method, f"/v1/admin/clients/{admin_name}{action}")
            assert (mine.status_code, mine.json()["reason"]) == (409, "client.self")


def test_admin_api_is_for_admins_only(live_broker: LiveBroker, auditor: str) -> None:
    name = unique("portal")
    add(live_broker, name, "requester", "--allow", MELDE)
    tokens = {
        "requester": live_broker.add_client("requester", MELDE),
        "adapter": live_broker.add_client("adapter", authority=AUTHORITY),
        "auditor": auditor,
    }
    calls = [
        ("GET", "/v1/admin/clients", None),
        ("GET", f"/v1/admin/clients/{name}", None),
        ("POST", "/v1/admin/clients", {"name": unique("x"), "role": "admin"}),
        ("POST", f"/v1/admin/clients/{name}/disable", None),
        ("POST", f"/v1/admin/clients/{name}/enable", None),
        ("POST", f"/v1/admin/clients/{name}/rotate-token", None),
        ("DELETE", f"/v1/admin/clients/{name}", None),
    ]
    for method, path, body in calls:
        with live_broker.client() as anonymous:
            assert anonymous.request(method, path, json=body).status_code == 401
        for role, token in tokens.items():
            with live_broker.client(token) as client:
                answer = client.request(method, path, json=body)
            assert (answer.status_code, answer.json()["reason"]) == (403, "auth.wrong_role"), (role, method, path)
    listed = cli(live_broker, "list").stdout
    assert any(line.split()[:3] == [name, "requester", "active"] for line in listed.splitlines())


def test_concurrent_changes_are_each_logged_once(live_broker: LiveBroker, admin: tuple[str, str], auditor: str) -> None:
    name = unique("portal")
    add(live_broker, name, "requester", "--allow", MELDE)

    def call(path: str) -> httpx.Response:
        with live_broker.client(admin[1]) as api:
            return api.post(path)

    with ThreadPoolExecutor(8) as pool:
        disables = list(pool.map(call, [f"/v1/admin/clients/{name}/disable"] * 8))
        rotations = list(pool.map(call, [f"/v1/admin/clients/{name}/rotate-token"] * 8))
    assert {a.status_code for a in disables} == {200}
    issued = [a.json()["token"] for a in rotations if a.status_code == 200]
    assert issued and all(a.json()["reason"] == "client.changed" for a in rotations if a.status_code != 200)
    with live_broker.client(admin[1]) as api:
        api.post(f"/v1/admin/clients/{name}/enable")
    # Exactly one of the issued tokens is the client's.
    assert sorted(refusal(live_broker, token) or "works" for token in issued) == sorted(
        ["works"] + ["auth.invalid_token"] * (len(issued) - 1)
    )
    events = [e["event"] for e in log_of(live_broker, auditor, name, 3 + len(issued))]
    assert events == ["client_added", "client_disabled", *["client_token_rotated"] * len(issued), "client_enabled"]
