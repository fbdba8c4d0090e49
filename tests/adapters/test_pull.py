"""The pull queue against real processes: a `broker-authority pull` process, and the test itself
acting as an authority's adapter over HTTP (leases, idempotent answers, refused answers)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.signing import SignedMessage, public_key_pem, sign
from tests.adapters.conftest import Remote
from tests.conftest import start_broker, stop_process
from tests.specimen import GEBURT, GEWERBE, request_body

ERIKA_IDNR = "12345678995"
MANUAL = "gewerberegister-13004"  # answered by the test acting as its adapter
EVIDENCE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Gewerbeanmeldung xmlns="urn:de:nachweis:gewerbeanmeldung:1">wrong</Gewerbeanmeldung>'
)


class ManualAdapter:
    def __init__(self, remote: Remote, authority_id: str) -> None:
        self.key = Ed25519PrivateKey.generate()
        remote.set_authority(authority_id, binding="pull", endpoint_url=None, public_key_pem=public_key_pem(self.key))
        self.token = remote.adapter_token(authority_id)
        self.base_url = remote.broker.base_url

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def take(self, wait: float = 0) -> list[dict[str, Any]]:
        with self.client() as client:
            answer = client.get("/v1/adapter/tasks", params={"wait": wait})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["tasks"])

    def post(
        self,
        task_id: str,
        body: bytes,
        which: str = "result",
        key: Ed25519PrivateKey | None = None,
        signed: bool = True,
    ) -> httpx.Response:
        path = f"/v1/adapter/tasks/{task_id}/{which}"
        content_type = "application/xml" if which == "result" else "application/json"
        headers = {"Content-Type": content_type}
        if signed:
            headers |= sign(SignedMessage(content_type, body, method="POST", path=path), key or self.key)
        with self.client() as client:
            return client.post(path, content=body, headers=headers)


@pytest.fixture(scope="module")
def manual(remote: Remote) -> ManualAdapter:
    return ManualAdapter(remote, MANUAL)


def gewerbe_request(remote: Remote) -> dict[str, Any]:
    body = request_body(GEWERBE, subject={"family_name": "Zwilling", "given_name": "Kai", "birth_date": "1980-05-05"})
    answer = remote.request(body)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def valid_evidence(remote: Remote) -> bytes:
    """A schema-valid Gewerbeanmeldung of Kai Zwilling (whom the requests here ask about), as the
    reference adapter renders it (the broker delivers evidence only about the subject asked for)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from adapters.registers.models import BusinessRegistration
    from adapters.registers.reference import issue
    from broker.db.session import make_engine

    engine = make_engine(remote.authority_db)
    with Session(engine) as session:
        kai = session.scalars(
            select(BusinessRegistration).where(
                BusinessRegistration.register_id == MANUAL, BusinessRegistration.family_name == "Zwilling"
            )
        ).first()
        assert kai is not None
        evidence = issue("gewerberegister", kai, MANUAL, "Gewerbeamt Schwerin", "13004", "x")
    engine.dispose()
    return evidence


def test_pull_authority_process_delivers(remote: Remote) -> None:
    remote.pull_authority("standesamt-13004")
    answer = remote.request(request_body(GEBURT, subject={"idnr": ERIKA_IDNR}))
    assert answer.status_code in (200, 202), answer.text
    exchange = remote.await_end(answer.json()["id"])
    assert exchange["state"] == "delivered", exchange
    assert b"Geburtsurkunde" in remote.get(exchange["evidence"]["href"]).content
    unknown = remote.request(request_body(GEBURT, subject={"idnr": "10000000000"}))
    assert unknown.status_code in (404, 202), unknown.text  # 404 when the answer came within the window
    exchange_id = unknown.json()["exchange"]["id"] if unknown.status_code == 404 else unknown.json()["id"]
    assert remote.await_end(exchange_id)["problem"]["reason"] == "subject.not_found"


def test_lease_expiry_hands_the_task_out_again(remote: Remote, manual: ManualAdapter) -> None:
    exchange = gewerbe_request(remote)
    first = manual.take(wait=3)
    assert len(first) == 1 and first[0]["query"]["request_id"] == exchange["id"]
    assert first[0]["query"]["subject"]["family_name"] == "Zwilling"
    assert manual.take() == []  # leased
    time.sleep(2.2)  # BROKER_TASK_LEASE_SECONDS=2
    again = manual.take(wait=2)
    assert [t["id"] for t in again] == [first[0]["id"]] and again[0]["attempt"] == 2
    failure = b'{"kind": "ambiguous", "detail": "two entries"}'
    assert manual.post(first[0]["id"], failure, "failure").status_code == 200
    ended = remote.await_end(exchange["id"])
    assert ended["state"] == "failed" and ended["problem"]["reason"] == "subject.ambiguous"
    # The same answer again is accepted as before; a different one is a conflict.
    replay = manual.post(first[0]["id"], failure, "failure")
    assert replay.status_code == 200 and replay.json()["replayed"] is True
    other = manual.post(first[0]["id"], b'{"kind": "not_found", "detail": ""}', "failure")
    assert other.status_code == 409 and other.json()["reason"] == "task.answer_conflict"


def test_adapters_see_only_their_own_tasks(remote: Remote, manual: ManualAdapter) -> None:
    exchange = gewerbe_request(remote)
    stranger = remote.adapter_token("melderegister-13003")
    with httpx.Client(base_url=remote.broker.base_url, headers={"Authorization": f"Bearer {stranger}"}) as client:
        assert client.get("/v1/adapter/tasks").json()["tasks"] == []
        task = manual.take(wait=3)[0]
        answer = client.post(
            f"/v1/adapter/tasks/{task['id']}/failure", content=b"{}", headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 404
    with httpx.Client(
        base_url=remote.broker.base_url, headers={"Authorization": f"Bearer {remote.requester}"}
    ) as client:
        assert client.get("/v1/adapter/tasks").status_code == 403
    assert manual.post(task["id"], b'{"kind": "not_found", "detail": ""}', "failure").status_code == 200
    assert remote.await_end(exchange["id"])["state"] == "failed"


@pytest.mark.parametrize(
    ("how", "status", "reason"),
    [
        ("unsigned", 401, "authority.unsigned"),
        ("wrong_signature", 401, "authority.bad_signature"),
        ("garbage", 400, "authority.garbage"),
        ("nul_in_detail", 400, "authority.garbage"),
        ("schema_invalid", 422, "evidence.invalid"),
    ],
)
def test_refused_pull_answers_fail_the_exchange(
    remote: Remote, manual: ManualAdapter, how: str, status: int, reason: str
) -> None:
    exchange = gewerbe_request(remote)
    task = manual.take(wait=3)[0]
    body = b"\x00garbage" if how == "garbage" else EVIDENCE
    if how == "nul_in_detail":  # PostgreSQL refuses NUL in text: once a 500 that left the task open
        body = b'{"kind": "failed", "detail": "a\\u0000b"}'
    answer = manual.post(
        task["id"],
        body,
        "failure" if how == "nul_in_detail" else "result",
        signed=how != "unsigned",
        key=Ed25519PrivateKey.generate() if how == "wrong_signature" else None,
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["reason"] == reason
    ended = remote.await_end(exchange["id"])
    assert ended["state"] == "failed" and ended["problem"]["reason"] == reason
    assert ended["problem"]["status"] == 502
    assert remote.log_reasons(exchange["id"])[-1] == ("failed", reason)


def test_unanswered_exchange_expires(remote: Remote, manual: ManualAdapter) -> None:
    exchange = gewerbe_request(remote)
    ended = remote.await_end(exchange["id"], timeout=45)  # BROKER_EXCHANGE_EXPIRY_SECONDS=25
    assert ended["state"] == "expired" and ended["problem"]["status"] == 504
    assert remote.log_reasons(exchange["id"])[-1] == ("expired", "exchange.expired")
    task = manual.take()
    assert task == []  # the task ended with its exchange (and its payload was erased)
    with httpx.Client(
        base_url=remote.broker.base_url, headers={"Authorization": f"Bearer {remote.requester}"}
    ) as client:
        assert client.get(f"/v1/evidence-requests/{exchange['id']}").json()["state"] == "expired"


def test_broker_killed_mid_pull_exchange_loses_nothing(remote: Remote, manual: ManualAdapter, tmp_path: Path) -> None:
    """Request → 202, kill -9 the broker, start it again, the adapter answers: delivered."""
    process, broker = start_broker(remote.broker.database_url, tmp_path, {**os.environ, **remote.broker.env})
    try:
        with httpx.Client(base_url=broker.base_url, headers={"Authorization": f"Bearer {remote.requester}"}) as client:
            body = request_body(
                GEWERBE, subject={"family_name": "Zwilling", "given_name": "Kai", "birth_date": "1980-05-05"}
            )
            answer = client.post("/v1/evidence-requests", json=body)
        assert answer.status_code == 202, answer.text
        exchange_id = answer.json()["id"]
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        stop_process(process)
    process, broker = start_broker(remote.broker.database_url, tmp_path, {**os.environ, **remote.broker.env})
    try:
        manual.base_url = broker.base_url
        task = manual.take(wait=3)
        assert [t["query"]["request_id"] for t in task] == [exchange_id]
        evidence = valid_evidence(remote)
        assert manual.post(task[0]["id"], evidence).status_code == 200
        with httpx.Client(base_url=broker.base_url, headers={"Authorization": f"Bearer {remote.requester}"}) as client:
            assert client.get(f"/v1/evidence-requests/{exchange_id}").json()["state"] == "delivered"
    finally:
        manual.base_url = remote.broker.base_url
        stop_process(process)
