"""HTTP push against a real `broker-authority serve` process: exchanges and every fault."""

from __future__ import annotations

import json
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from broker.callbacks import signing as callback_signing
from tests.adapters.conftest import Remote
from tests.conftest import free_port, http_server
from tests.specimen import MELDE, request_body

AUTHORITY = "melderegister-13004"


@pytest.fixture(scope="module")
def push(remote: Remote) -> str:
    return remote.push_authority(AUTHORITY, timeout=1.5)


@pytest.fixture
def fault(push: str) -> Any:
    def set_fault(name: str, delay: float = 0.0) -> None:
        answer = httpx.put(f"{push}/_faults", json={"fault": name, "delay_seconds": delay})
        assert answer.status_code == 200, answer.text

    yield set_fault
    set_fault("none")


def test_push_exchange_is_delivered(remote: Remote, push: str) -> None:
    answer = remote.request(request_body(MELDE))
    assert answer.status_code == 200, answer.text
    exchange = answer.json()
    assert exchange["state"] == "delivered" and exchange["authority"] == AUTHORITY
    evidence = remote.get(exchange["evidence"]["href"])
    assert b"Mustermann" in evidence.content and b"Signature" in evidence.content
    assert [event for event, _ in remote.log_reasons(exchange["id"])] == ["received", "routed", "delivered"]


def test_push_not_found_and_ambiguous(remote: Remote, push: str) -> None:
    unknown = remote.request(
        request_body(subject={"family_name": "Niemand", "given_name": "K", "birth_date": "1901-01-01"})
    )
    assert unknown.status_code == 404 and unknown.json()["reason"] == "subject.not_found"
    twins = remote.request(
        request_body(subject={"family_name": "Schulz", "given_name": "Jan", "birth_date": "1990-01-01"})
    )
    assert twins.status_code == 409 and twins.json()["reason"] == "subject.ambiguous"


@pytest.mark.parametrize(
    ("name", "status", "reason"),
    [
        ("server_error", 502, "authority.server_error"),
        ("garbage", 502, "authority.garbage"),
        ("schema_invalid", 502, "evidence.invalid"),
        ("unsigned", 502, "authority.unsigned"),
        ("wrong_signature", 502, "authority.bad_signature"),
    ],
)
def test_push_faults_fail_the_exchange_with_their_reason(
    remote: Remote, fault: Any, name: str, status: int, reason: str
) -> None:
    fault(name)
    answer = remote.request(request_body(MELDE))
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["reason"] == reason and problem["exchange"]["state"] == "failed"
    assert remote.log_reasons(problem["exchange"]["id"])[-1] == ("failed", reason)


def test_slow_authority_times_out_at_its_deadline(remote: Remote, fault: Any) -> None:
    fault("slow", delay=5)
    started = time.monotonic()
    answer = remote.request(request_body(MELDE))
    elapsed = time.monotonic() - started
    assert answer.status_code == 504, answer.text
    assert answer.json()["reason"] == "authority.timeout"
    assert elapsed < 1.5 + 1.0  # the authority's timeout, not the authority's delay
    assert remote.log_reasons(answer.json()["exchange"]["id"])[-1] == ("failed", "authority.timeout")


def test_authority_down_is_unreachable(remote: Remote, push: str) -> None:
    spec = remote.set_authority(AUTHORITY, endpoint_url=f"http://127.0.0.1:{free_port()}/evidence")
    try:
        started = time.monotonic()
        answer = remote.request(request_body(MELDE))
        assert time.monotonic() - started < 1.5 + 1.0
        assert answer.status_code == 502 and answer.json()["reason"] == "authority.unreachable"
        assert remote.log_reasons(answer.json()["exchange"]["id"])[-1] == ("failed", "authority.unreachable")
    finally:
        remote.set_authority(AUTHORITY, endpoint_url=f"{push}/evidence", timeout_seconds=spec["timeout_seconds"])


def test_answer_after_the_sync_window_is_asynchronous(remote: Remote, push: str, fault: Any) -> None:
    """Timeout 6 s, synchronous window 2 s, the authority needs 3 s: 202, then delivered."""
    remote.set_authority(AUTHORITY, timeout_seconds=6)
    try:
        fault("slow", delay=3)
        started = time.monotonic()
        answer = remote.request(request_body(MELDE))
        assert answer.status_code == 202, answer.text
        assert time.monotonic() - started < 2 + 1.0
        assert answer.headers["location"] == f"/v1/evidence-requests/{answer.json()['id']}"
        assert answer.json()["state"] == "routed"
        assert remote.await_end(answer.json()["id"])["state"] == "delivered"
    finally:
        remote.set_authority(AUTHORITY, timeout_seconds=1.5)


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server interface
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(({k: v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_signed_callback_when_an_asynchronous_exchange_ends(remote: Remote, push: str, fault: Any) -> None:
    _Receiver.received.clear()  # the class outlives one backend's run
    # Callbacks go only to a registered origin: a requester of its own for this receiver.
    with http_server(_Receiver) as origin:
        name = f"portal-{uuid.uuid4().hex[:8]}"
        added = remote.cli("clients", "add", name, "--role", "requester", "--allow", MELDE, "--callback-origin", origin)
        token = added.strip().splitlines()[-1]
        remote.set_authority(AUTHORITY, timeout_seconds=6)
        try:
            fault("slow", delay=3)
            with remote.broker.client(token) as client:
                answer = client.post("/v1/evidence-requests", json=request_body(MELDE, callback_url=f"{origin}/hook"))
            assert answer.status_code == 202, answer.text
            deadline = time.monotonic() + 20
            while not _Receiver.received and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            remote.set_authority(AUTHORITY, timeout_seconds=1.5)
    headers, body = _Receiver.received[0]
    secret = remote.cli("clients", "callback-secret", name).strip()
    assert callback_signing.verify(secret, body, headers)
    assert not callback_signing.verify(secret, body + b" ", headers)
    assert not callback_signing.verify(secret, body, headers, now=time.time() + 301)  # refused after 5 minutes
    document = json.loads(body)
    assert document["type"] == "exchange.ended"
    assert document["exchange"]["id"] == answer.json()["id"] and document["exchange"]["state"] == "delivered"
