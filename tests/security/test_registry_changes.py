"""Registry changes are validated, explicit and audited: routing decides where personal data flows.

Before this, ``public_key_pem: "not a pem"`` was accepted, ``PUT /v1/admin/registry/routes``
silently replaced a route, and nobody could tell afterwards who had changed what. Now every field
is validated on write, replacing what exists needs its ETag (``If-Match``: 428 without, 412 when
it changed meanwhile), and every change — admin API, ``broker registry load``, ``broker adapters
connect`` — is a ``registry_changed`` log entry naming who changed what, with the digests of the
whole registry before and after. Real processes, both databases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from sqlalchemy import create_engine, select

from broker.db.models import LogEntry
from broker.demo.seed import DEMO_REGISTRY
from tests.conftest import LiveBroker
from tests.specimen import MELDE

# Every entry key a registry change leaves null: it concerns no exchange, subject or requester.
EXCHANGE_KEYS = (
    "exchange",
    "requester",
    "authority",
    "evidence_type",
    "purpose",
    "legal_basis",
    "consent",
    "outcome",
    "reason",
    "request_digest",
    "evidence_digest",
    "subject",
)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def named_admin(broker: LiveBroker) -> tuple[str, str]:
    """An admin client created through the CLI; returns its name and token."""
    name = f"admin-{uuid.uuid4().hex[:8]}"
    done = cli(broker.env, "clients", "add", name, "--role", "admin")
    assert done.returncode == 0, done.stderr
    return name, done.stdout.strip().splitlines()[-1]


def changes(database_url: str) -> list[dict[str, Any]]:
    """The registry_changed entries, oldest first."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        bodies = connection.execute(
            select(LogEntry.body).where(LogEntry.event == "registry_changed").order_by(LogEntry.seq)
        ).scalars()
        found = [json.loads(body) for body in bodies]
    engine.dispose()
    return found


def etag(answer: httpx.Response) -> str:
    tag = answer.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 66, tag
    return tag


def public_key(key: Ed25519PrivateKey | None = None) -> str:
    public = (key or Ed25519PrivateKey.generate()).public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def rsa_public_key() -> str:
    public = generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def new_authority(**changes: Any) -> dict[str, Any]:
    """A new Melderegister authority for a Gemeinde of its own (Thüringen: no demo authority there)."""
    return {
        "id": f"registry-test-{uuid.uuid4().hex[:8]}",
        "name": "Meldebehörde Registry-Test",
        "ars": f"16{uuid.uuid4().int % 10**10:010d}",
        "register_kind": "melderegister",
        "binding": "pull",
        "public_key_pem": public_key(),
        **changes,
    }


@pytest.fixture(scope="module")
def admin(live_broker: LiveBroker) -> tuple[str, str]:
    return named_admin(live_broker)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"public_key_pem": "not a pem"}, "public_key_pem"),
        ({"public_key_pem": "rsa"}, "public_key_pem"),
        ({"binding": "http_push", "endpoint_url": "file:///etc/passwd"}, "endpoint_url"),
        ({"binding": "http_push", "endpoint_url": "gopher://127.0.0.1:70/x"}, "endpoint_url"),
        ({"binding": "http_push", "endpoint_url": "https:///no-host"}, "endpoint_url"),
        ({"ars": "1300"}, "ars"),  # between two levels of the Regionalschlüssel
        ({"ars": "99001"}, "ars"),  # no Land has the key 99
    ],
    ids=["not-a-pem", "rsa-key", "file-url", "gopher-url", "no-host", "ars-between-levels", "ars-no-land"],
)
def test_authority_fields_are_validated(
    live_broker: LiveBroker, admin: tuple[str, str], changes: dict[str, Any], field: str
) -> None:
    if changes.get("public_key_pem") == "rsa":
        changes = {"public_key_pem": rsa_public_key()}
    authority = new_authority(**changes)
    with live_broker.client(admin[1]) as client:
        answer = client.put(f"/v1/admin/registry/authorities/{authority['id']}", json=authority)
        assert answer.status_code == 422, answer.text
        assert field in [e["field"] for e in answer.json()["errors"]]
        assert client.get(f"/v1/admin/registry/authorities/{authority['id']}").status_code == 404


def test_routes_and_documents_are_validated(live_broker: LiveBroker, admin: tuple[str, str]) -> None:
    with live_broker.client(admin[1]) as client:
        current = client.get("/v1/admin/registry")
        route = {"evidence_type": MELDE, "ars_prefix": "1300", "authority": "melderegister-13004"}
        bad_prefix = client.put("/v1/admin/registry/routes", json=route)
        document = current.json()
        document["evidence_types"][0]["subject"]["family_name"] = "/m:Meldebescheinigung["
        bad_path = client.put("/v1/admin/registry", json=document, headers={"If-Match": etag(current)})
        document["evidence_types"][0]["subject"] = None
        no_subject = client.put("/v1/admin/registry", json=document, headers={"If-Match": etag(current)})
        unchanged = client.get("/v1/admin/registry")
    assert bad_prefix.status_code == 422 and [e["field"] for e in bad_prefix.json()["errors"]] == ["ars_prefix"]
    for refused in (bad_path, no_subject):
        assert refused.status_code == 422, refused.text
        assert "subject" in refused.text
    assert etag(unchanged) == etag(current)


# --- explicit replacement -----------------------------------------------------------------------


def test_replacing_a_route_needs_its_etag(live_broker: LiveBroker, admin: tuple[str, str]) -> None:
    first, second = new_authority(), new_authority()
    route = {"evidence_type": MELDE, "ars_prefix": first["ars"], "authority": first["id"]}
    where = {"evidence_type": MELDE, "ars_prefix": first["ars"]}
    with live_broker.client(admin[1]) as client:
        for authority in (first, second):
            assert client.put(f"/v1/admin/registry/authorities/{authority['id']}", json=authority).status_code == 200
        created = client.put("/v1/admin/registry/routes", json=route)
        assert created.status_code == 200, created.text
        moved = {**route, "authority": second["id"]}
        silent = client.put("/v1/admin/registry/routes", json=moved)
        stale = client.put("/v1/admin/registry/routes", json=moved, headers={"If-Match": '"' + "0" * 64 + '"'})
        still = client.get("/v1/admin/registry/routes", params=where)
        replaced = client.put("/v1/admin/registry/routes", json=moved, headers={"If-Match": etag(still)})
        now = client.get("/v1/admin/registry/routes", params=where)
        again = client.put("/v1/admin/registry/routes", json=route, headers={"If-Match": etag(still)})
    assert (silent.status_code, silent.json()["reason"]) == (428, "registry.if_match_required")
    assert (stale.status_code, stale.json()["reason"]) == (412, "registry.etag_mismatch")
    assert still.json()["authority"] == first["id"] and etag(still) == etag(created)
    assert replaced.status_code == 200 and now.json()["authority"] == second["id"]
    assert etag(now) == etag(replaced) != etag(still)
    assert (again.status_code, again.json()["reason"]) == (412, "registry.etag_mismatch")  # the old ETag is spent


def test_replacing_an_authority_needs_its_etag(live_broker: LiveBroker, admin: tuple[str, str]) -> None:
    authority = new_authority()
    path = f"/v1/admin/registry/authorities/{authority['id']}"
    with live_broker.client(admin[1]) as client:
        assert client.put(path, json=authority, headers={"If-Match": "*"}).status_code == 412  # nothing to match
        assert client.put(path, json=authority).status_code == 200
        changed = {**authority, "name": "Meldebehörde Registry-Test (umgezogen)"}
        silent = client.put(path, json=changed)
        current = client.get(path)
        replaced = client.put(path, json=changed, headers={"If-Match": etag(current)})
        after = client.get(path)
    assert (silent.status_code, silent.json()["reason"]) == (428, "registry.if_match_required")
    assert current.json()["name"] == authority["name"]
    assert replaced.status_code == 200 and after.json()["name"] == changed["name"]


def test_replacing_the_registry_needs_its_etag(live_broker: LiveBroker, admin: tuple[str, str]) -> None:
    with live_broker.client(admin[1]) as client:
        current = client.get("/v1/admin/registry")
        document = current.json()
        document["purposes"].append({"id": f"test-{uuid.uuid4().hex[:8]}", "name": f"Testzweck {uuid.uuid4().hex}"})
        silent = client.put("/v1/admin/registry", json=document)
        stale = client.put("/v1/admin/registry", json=document, headers={"If-Match": '"' + "f" * 64 + '"'})
        replaced = client.put("/v1/admin/registry", json=document, headers={"If-Match": etag(current)})
        after = client.get("/v1/admin/registry")
    assert (silent.status_code, silent.json()["reason"]) == (428, "registry.if_match_required")
    assert (stale.status_code, stale.json()["reason"]) == (412, "registry.etag_mismatch")
    assert replaced.status_code == 200, replaced.text
    assert etag(after) == etag(replaced) != etag(current)
    assert {**document["purposes"][-1], "leika_key": None} in after.json()["purposes"]


# --- audit --------------------------------------------------------------------------------------


def test_every_admin_change_is_logged_with_who_what_and_digests(live_broker: LiveBroker) -> None:
    name, token = named_admin(live_broker)  # of its own: its entries are this test's only
    authority = new_authority()
    route = {"evidence_type": MELDE, "ars_prefix": authority["ars"], "authority": authority["id"]}
    where = {"evidence_type": MELDE, "ars_prefix": authority["ars"]}
    with live_broker.client(token) as client:
        before = etag(client.get("/v1/admin/registry"))
        assert client.put(f"/v1/admin/registry/authorities/{authority['id']}", json=authority).status_code == 200
        middle = etag(client.get("/v1/admin/registry"))
        assert client.put("/v1/admin/registry/routes", json=route).status_code == 200
        after = etag(client.get("/v1/admin/registry"))
        assert client.delete("/v1/admin/registry/routes", params=where).status_code == 204
        gone = etag(client.get("/v1/admin/registry"))
    mine = [e for e in changes(live_broker.database_url) if e["actor"] == name]
    assert [(e["change"], e["registry_before"], e["registry_after"]) for e in mine] == [
        (f"authorities/{authority['id']}", before[1:-1], middle[1:-1]),
        (f"routes/{MELDE}/{authority['ars']}", middle[1:-1], after[1:-1]),
        (f"routes/{MELDE}/{authority['ars']}", after[1:-1], gone[1:-1]),
    ]
    assert all(e[key] is None for e in mine for key in EXCHANGE_KEYS)


def test_command_line_changes_are_logged(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "BROKER_DATABASE_URL": database_url, "BROKER_KEYS_DIR": str(tmp_path)}
    assert cli(env, "db", "upgrade").returncode == 0
    loaded = cli(env, "registry", "load", str(DEMO_REGISTRY))
    assert loaded.returncode == 0, loaded.stderr
    assert cli(env, "registry", "load", str(DEMO_REGISTRY)).returncode == 0  # the same again: no change
    key_file = tmp_path / "authority.pub"
    key_file.write_text(public_key())
    connected = cli(env, "adapters", "connect", "standesamt-13004", "--binding", "pull", "--public-key", str(key_file))
    assert connected.returncode == 0, connected.stderr
    entries = changes(database_url)
    assert [(e["actor"], e["change"]) for e in entries] == [
        ("cli", "registry"),
        ("cli", "authorities/standesamt-13004"),
    ]
    loaded_entry, connected_entry = entries
    assert connected_entry["registry_before"] == loaded_entry["registry_after"] != loaded_entry["registry_before"]
    assert all(e[key] is None for e in entries for key in EXCHANGE_KEYS)
