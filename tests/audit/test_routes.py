"""The audit API through a real broker process on loopback (SQLite and PostgreSQL): receipts,
checkpoints and proofs that the pure verifiers accept, the auditors' entry listing, the JWKS."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
import rfc8785

from broker.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from broker.audit.note import Checkpoint, Verifier, open_checkpoint
from broker.keys.store import KeyStore
from tests.conftest import LiveBroker
from tests.specimen import MELDE, request_body


def b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


@pytest.fixture(scope="module")
def requester(live_broker: LiveBroker) -> str:
    return live_broker.add_client("requester", MELDE)


@pytest.fixture(scope="module")
def auditor(live_broker: LiveBroker) -> str:
    return live_broker.add_client("auditor")


@pytest.fixture
def verifiers(live_broker: LiveBroker) -> list[Verifier]:
    # Fetched per test: other tests may rotate the shared broker's keys (retired ones stay listed).
    with live_broker.client() as client:
        answer = client.get("/v1/audit/keys")
    assert answer.status_code == 200
    return [Verifier.from_vkey(line) for line in answer.text.splitlines()]


def deliver(broker: LiveBroker, token: str) -> dict[str, Any]:
    body = request_body()
    with broker.client(token) as client:
        answer = client.post("/v1/evidence-requests", json=body)
    assert answer.status_code == 200, answer.text
    exchange: dict[str, Any] = answer.json()
    assert exchange["state"] == "delivered"
    return exchange


def wait_for_receipt(broker: LiveBroker, token: str, exchange_id: str) -> dict[str, Any]:
    """The background integrator (every 0.5 s) gives the delivery entry its index and proof."""
    deadline = time.monotonic() + 30
    with broker.client(token) as client:
        while time.monotonic() < deadline:
            receipt: dict[str, Any] = client.get(f"/v1/evidence-requests/{exchange_id}").json().get("receipt", {})
            if "inclusion_proof" in receipt:
                return receipt
            time.sleep(0.1)
    pytest.fail("the delivery entry was not integrated in time")


def checkpoint(broker: LiveBroker, verifiers: list[Verifier]) -> Checkpoint:
    with broker.client() as client:
        answer = client.get("/v1/audit/checkpoint")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    parsed, _signers = open_checkpoint(answer.text, verifiers)
    return parsed


def test_delivered_exchange_carries_a_receipt_that_proves_inclusion(
    live_broker: LiveBroker, requester: str, auditor: str, verifiers: list[Verifier]
) -> None:
    exchange = deliver(live_broker, requester)
    assert "leaf_hash" in exchange["receipt"]  # known at once; the index follows on integration
    receipt = wait_for_receipt(live_broker, requester, exchange["id"])
    assert receipt["leaf_hash"] == exchange["receipt"]["leaf_hash"]

    signed, signers = open_checkpoint(receipt["checkpoint"], verifiers)
    assert signers and signed.size == receipt["tree_size"]
    proof = [b64(h) for h in receipt["inclusion_proof"]]
    verify_inclusion(b64(receipt["leaf_hash"]), receipt["log_index"], signed.size, proof, signed.root)

    with live_broker.client() as client:
        served = client.get(
            "/v1/audit/proofs/inclusion", params={"index": receipt["log_index"], "tree_size": signed.size}
        ).json()
    assert served == {
        "index": receipt["log_index"],
        "tree_size": signed.size,
        "leaf_hash": receipt["leaf_hash"],
        "hashes": receipt["inclusion_proof"],
    }

    # The auditor sees the entry the receipt points at; it hashes to the receipt's leaf.
    with live_broker.client(auditor) as client:
        listed = client.get("/v1/audit/entries", params={"exchange": exchange["id"], "event": "delivered"}).json()
    [entry] = listed["entries"]
    assert entry["index"] == receipt["log_index"]
    assert leaf_hash(rfc8785.dumps(entry["entry"])) == b64(receipt["leaf_hash"])
    assert entry["entry"]["subject"].startswith("ps1:")
    assert "Mustermann" not in str(listed)


def test_consistency_proof_between_two_checkpoints(
    live_broker: LiveBroker, requester: str, verifiers: list[Verifier]
) -> None:
    exchange = deliver(live_broker, requester)
    wait_for_receipt(live_broker, requester, exchange["id"])
    old = checkpoint(live_broker, verifiers)
    exchange = deliver(live_broker, requester)
    wait_for_receipt(live_broker, requester, exchange["id"])
    new = checkpoint(live_broker, verifiers)
    assert new.size > old.size
    with live_broker.client() as client:
        proof = client.get("/v1/audit/proofs/consistency", params={"old_size": old.size, "tree_size": new.size}).json()
        latest = client.get("/v1/audit/proofs/consistency", params={"old_size": old.size}).json()
        older = client.get("/v1/audit/checkpoint", params={"tree_size": old.size})
    assert (proof["old_size"], proof["tree_size"]) == (old.size, new.size)
    verify_consistency(old.size, new.size, old.root, new.root, [b64(h) for h in proof["hashes"]])
    assert latest["tree_size"] >= new.size
    assert open_checkpoint(older.text, verifiers)[0] == old


def test_entries_filter_by_pseudonym_and_page_by_index(live_broker: LiveBroker, requester: str, auditor: str) -> None:
    for _ in range(3):
        exchange = deliver(live_broker, requester)
    wait_for_receipt(live_broker, requester, exchange["id"])
    # The auditor computes Erika's pseudonym with the CLI, then finds her entries with it.
    done = subprocess.run(
        [sys.executable, "-m", "broker.cli", "audit", "pseudonym", "--family-name", "MUSTERMANN"]
        + ["--given-name", "Erika", "--birth-date", "1964-08-12"],
        env=live_broker.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    pseudonym = done.stdout.split()[0]
    assert pseudonym.startswith("ps1:")

    seen: list[int] = []
    url: str | None = "/v1/audit/entries"
    params: dict[str, Any] | None = {"subject": pseudonym, "event": "delivered", "limit": 2}
    with live_broker.client(auditor) as client:
        while url is not None and len(seen) < 50:
            page = client.get(url, params=params).json()
            params = None  # the next link carries the filters
            seen += [e["index"] for e in page["entries"]]
            assert all(e["entry"]["subject"] == pseudonym for e in page["entries"])
            assert all(e["entry"]["event"] == "delivered" for e in page["entries"])
            assert len(page["entries"]) <= 2
            url = page["next"]
    assert len(seen) >= 3
    assert seen == sorted(set(seen))


def test_entries_need_the_auditor_role(live_broker: LiveBroker, requester: str) -> None:
    with live_broker.client() as client:
        assert client.get("/v1/audit/entries").json()["reason"] == "auth.required"
    with live_broker.client(requester) as client:
        answer = client.get("/v1/audit/entries")
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("path", "params", "status", "reason"),
    [
        ("/v1/audit/proofs/inclusion", {"index": 10**9, "tree_size": 10**9 + 1}, 404, "audit.tree_size_unknown"),
        ("/v1/audit/proofs/inclusion", {"index": 5, "tree_size": 5}, 400, "audit.index_out_of_range"),
        ("/v1/audit/proofs/inclusion", {"index": "x"}, 422, "request.invalid"),
        ("/v1/audit/proofs/inclusion", {}, 422, "request.invalid"),
        ("/v1/audit/proofs/consistency", {"old_size": 3, "tree_size": 2}, 400, "audit.sizes_out_of_order"),
        ("/v1/audit/proofs/consistency", {"old_size": 0, "tree_size": 2}, 422, "request.invalid"),
        ("/v1/audit/proofs/consistency", {"old_size": 1, "tree_size": 10**9}, 404, "audit.tree_size_unknown"),
        ("/v1/audit/checkpoint", {"tree_size": 10**9}, 404, "audit.checkpoint_not_found"),
    ],
)
def test_proof_requests_that_cannot_be_answered_are_problems(
    live_broker: LiveBroker, requester: str, path: str, params: dict[str, Any], status: int, reason: str
) -> None:
    exchange = deliver(live_broker, requester)
    wait_for_receipt(live_broker, requester, exchange["id"])
    with live_broker.client() as client:
        answer = client.get(path, params=params)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["reason"] == reason


def test_jwks_publishes_checkpoint_and_sealing_keys(live_broker: LiveBroker, verifiers: list[Verifier]) -> None:
    answer = httpx.get(f"{live_broker.base_url}/.well-known/broker-keys", timeout=10)
    assert answer.status_code == 200
    keys = answer.json()["keys"]
    store = KeyStore(live_broker.keys_dir)
    assert answer.json() == store.jwks()
    checkpoint_kids = {info.kid for info in store.checkpoint_public_keys()}
    okp = [k for k in keys if k["kid"] in checkpoint_kids]
    assert okp and all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["x"] for k in okp)
    # The checkpoint keys in the JWKS are the ones checkpoints verify with.
    raws = {base64.urlsafe_b64decode(k["x"] + "==") for k in okp}
    assert {v.vkey().split("+", 2)[2] for v in verifiers} == {base64.b64encode(b"\x01" + raw).decode() for raw in raws}
    sealing = [k for k in keys if "x5c" in k]
    assert sealing and all(k["kid"] for k in sealing)
