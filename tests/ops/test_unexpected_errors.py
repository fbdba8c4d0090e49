"""An unexpected 500 through a real broker process (SQLite and PostgreSQL): the answer carries
the request id, the log line of the error carries the same id, and the keep-alive connection
stays usable. The 500 has a real cause: a corrupted row (a log entry whose body is not JSON)."""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import insert, select

from broker.db.models import LogEntry
from broker.db.session import make_engine
from tests.conftest import LiveBroker, fresh_broker


@pytest.fixture(scope="module")
def broker(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveBroker]:
    yield from fresh_broker(backend, request, tmp_path_factory.mktemp(f"errors-{backend}"), {})


def corrupt_log_entry(broker: LiveBroker) -> None:
    """Queue a log entry whose body is not JSON and wait until the broker integrates it."""
    engine = make_engine(broker.database_url)
    try:
        with engine.begin() as connection:
            seq = connection.execute(
                insert(LogEntry)
                .values(
                    body=b"\xff not json",
                    leaf_hash=hashlib.sha256(b"corrupt").digest(),
                    recorded_at=datetime.now(UTC),
                    event="corrupted",
                )
                .returning(LogEntry.seq)
            ).scalar_one()
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as connection:
                query = select(LogEntry.log_index).where(LogEntry.seq == seq)
                if connection.execute(query).scalar_one() is not None:
                    break
            assert time.monotonic() < deadline, "the integrator did not integrate the entry"
            time.sleep(0.1)
    finally:
        engine.dispose()


def log_lines(broker: LiveBroker) -> list[dict[str, object]]:
    found = []
    for line in broker.logs().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue  # uvicorn's own lines are not JSON
    return found


def test_a_500_keeps_the_connection_and_carries_the_request_id(broker: LiveBroker) -> None:
    auditor = broker.add_client("auditor")
    corrupt_log_entry(broker)
    address = urlsplit(broker.base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    headers = {"Authorization": f"Bearer {auditor}"}
    try:
        connection.request("GET", "/v1/audit/entries", headers=headers)
        answer = connection.getresponse()
        body = json.loads(answer.read())
        assert answer.status == 500, body
        assert body["reason"] == "internal_error"
        assert answer.getheader("Content-Type") == "application/problem+json"
        failed_id = answer.getheader("X-Request-Id")
        assert failed_id
        socket_before = connection.sock
        assert socket_before is not None
        # The same connection carries the next requests (http.client would reconnect silently
        # if the server had closed it, so the socket itself is compared).
        for _ in range(5):
            connection.request("GET", "/healthz")
            following = connection.getresponse()
            assert following.status == 200 and json.loads(following.read()) == {"status": "ok"}
            assert following.getheader("X-Request-Id") not in (None, failed_id)
            assert connection.sock is socket_before
        connection.request("GET", "/v1/audit/entries", headers=headers)
        again = connection.getresponse()
        again.read()
        assert again.status == 500 and connection.sock is socket_before
    finally:
        connection.close()
    errors = [line for line in log_lines(broker) if line.get("event") == "unhandled_error"]
    first = next(line for line in errors if line.get("request_id") == failed_id)
    assert first["error_type"] == "UnicodeDecodeError"  # the body is not even UTF-8
    assert first["route"] == "/v1/audit/entries"
    assert str(first["where"]).startswith("routes.py:")
    access = [
        line for line in log_lines(broker) if line.get("event") == "request" and line.get("request_id") == failed_id
    ]
    assert [line["status"] for line in access] == [500]
    # uvicorn saw no exception: it would have logged one and closed the connection.
    assert "Exception in ASGI application" not in broker.logs()


def test_every_answer_carries_a_request_id(broker: LiveBroker) -> None:
    with httpx.Client(base_url=broker.base_url) as client:
        for path in ("/healthz", "/readyz", "/nowhere", "/v1/audit/entries"):
            assert client.get(path).headers.get("X-Request-Id"), path


def test_a_request_whose_body_was_not_read_ends_its_connection(broker: LiveBroker, tmp_path: Path) -> None:
    """A refusal before the body is read closes the connection, saying so (no silent reset)."""
    address = urlsplit(broker.base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        connection.request("POST", "/v1/evidence-requests", body=b"{}", headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 401
        assert answer.getheader("Connection") == "close" and answer.getheader("X-Request-Id")
    finally:
        connection.close()
