"""Changing the registry at run time through the admin API, and loading TOML from the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import LiveBroker

MELDE = "urn:de:nachweis:meldebescheinigung"


def test_admin_adds_a_route_that_the_next_request_uses(live_broker: LiveBroker) -> None:
    admin = live_broker.add_client("admin")
    requester = live_broker.add_client("requester", MELDE)
    with live_broker.client(admin) as client:
        assert client.get("/v1/admin/registry").json()["routes"]
        authority = {
            "id": "melderegister-test-amt",
            "name": "Amt Test",
            "ars": "130769999",
            "register_kind": "melderegister",
        }
        assert client.put(f"/v1/admin/registry/authorities/{authority['id']}", json=authority).status_code == 200
        route = {"evidence_type": MELDE, "ars_prefix": "130769999", "authority": authority["id"]}
        assert client.put("/v1/admin/registry/routes", json=route).status_code == 200
        bad = client.put("/v1/admin/registry/routes", json={**route, "authority": "nobody"})
        assert bad.status_code == 422 and bad.json()["reason"] == "authority.unknown"
    body = {
        "evidence_type": MELDE,
        "jurisdiction": "130769999001",
        "subject": {"family_name": "Niemand", "given_name": "Nora", "birth_date": "1980-01-01"},
        "purpose": "Wohngeldantrag",
        "legal_basis": "§ 23 WoGG",
        "explicit_request": True,
    }
    with live_broker.client(requester) as client:
        # Every process re-reads the registry within 5 s; this process was invalidated at once.
        answer = client.post("/v1/evidence-requests", json=body)
    assert answer.json()["exchange"]["authority"] == "melderegister-test-amt"
    with live_broker.client(admin) as client:
        gone = client.delete("/v1/admin/registry/routes", params={"evidence_type": MELDE, "ars_prefix": "130769999"})
        assert gone.status_code == 204


def test_requesters_may_not_change_the_registry(live_broker: LiveBroker) -> None:
    requester = live_broker.add_client("requester", MELDE)
    with live_broker.client(requester) as client:
        assert client.get("/v1/admin/registry").status_code == 403


def test_registry_load_refuses_a_broken_file(live_broker: LiveBroker, tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[[routes]]\nevidence_type = "urn:x"\nars_prefix = "13"\nauthority = "a"\n')
    done = subprocess.run(
        [sys.executable, "-m", "broker.cli", "registry", "load", str(broken)],
        env=live_broker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "unknown evidence type" in done.stderr


def test_an_empty_put_is_refused_and_a_replacement_can_be_rolled_back(live_broker: LiveBroker) -> None:
    admin = live_broker.add_client("admin")
    with live_broker.client(admin) as client:
        current = client.get("/v1/admin/registry")
        etag = current.headers["etag"]
        # This answered 200 and emptied the registry.
        nothing = client.put("/v1/admin/registry", json={}, headers={"If-Match": etag})
        empty: dict[str, list[object]] = {section: [] for section in current.json()}
        emptied = client.put("/v1/admin/registry", json=empty, headers={"If-Match": etag})
        assert client.get("/v1/admin/registry").headers["etag"] == etag
        changed = current.json()
        changed["purposes"].append({"id": "rollback-test", "name": "Rollback-Test", "leika_key": None})
        replaced = client.put("/v1/admin/registry", json=changed, headers={"If-Match": etag})
        assert replaced.status_code == 200, replaced.text
        unconditional = client.post("/v1/admin/registry/rollback")
        stale = client.post("/v1/admin/registry/rollback", headers={"If-Match": etag})
        restored = client.post("/v1/admin/registry/rollback", headers={"If-Match": replaced.headers["etag"]})
        after = client.get("/v1/admin/registry")
    assert (nothing.status_code, nothing.json()["reason"]) == (422, "registry.sections_missing")
    assert [e["field"] for e in nothing.json()["errors"]] == list(current.json())
    assert (emptied.status_code, emptied.json()["reason"]) == (422, "registry.empty_refused")
    assert (unconditional.status_code, unconditional.json()["reason"]) == (428, "registry.if_match_required")
    assert (stale.status_code, stale.json()["reason"]) == (412, "registry.etag_mismatch")
    assert restored.status_code == 200, restored.text
    assert restored.headers["etag"] == after.headers["etag"] == etag
    assert after.json() == current.json()
