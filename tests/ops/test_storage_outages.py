"""Storage outages through a real broker process: the database gone (PostgreSQL behind a TCP
forwarder the test stops and restarts) and a full disk (SQLite on a small tmpfs). Requests get
503 problems with a stable reason and Retry-After, /readyz names the failing check, and the
broker recovers by itself once the cause goes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveBroker, start_broker, stop_process
from tests.faults import (
    Forwarder,
    assert_storage_problem,
    fill,
    forwarded_database,
    mounted_tmpfs,
    ready,
    seed_database,
    wait_for,
)


@pytest.fixture
def broker_behind_forwarder(postgres_server_url: str, tmp_path: Path) -> Iterator[tuple[LiveBroker, Forwarder]]:
    with forwarded_database(postgres_server_url) as (_, forwarder, through):
        # Short background rounds, so the integrator's state settles quickly either way.
        process, broker = start_broker(through, tmp_path, {"BROKER_INTEGRATE_INTERVAL_SECONDS": "0.2"})
        try:
            yield broker, forwarder
        finally:
            stop_process(process)


def test_postgresql_outage_gives_503_and_the_broker_recovers(
    broker_behind_forwarder: tuple[LiveBroker, Forwarder],
) -> None:
    broker, forwarder = broker_behind_forwarder
    with broker.client() as client:
        ready_body = client.get("/readyz").json()
        assert ready_body["checks"] == {
            "database": "ok",
            "revision": "ok",
            "keys": "ok",
            "catalogue": "ok",
            "integrator": "ok",
            "disk": "ok",
            "seal": "ok",
        }
        assert client.get("/v1/audit/checkpoint").status_code in (200, 404)

        forwarder.stop()
        # A request that needs the database: the pooled connection is found dead, a new one refused.
        body = assert_storage_problem(client.get("/v1/audit/checkpoint"), "storage.unavailable")
        assert body["status"] == 503 and body["instance"] == "/v1/audit/checkpoint"
        readiness = assert_storage_problem(client.get("/readyz"), "storage.unavailable")
        checks = readiness["checks"]
        assert isinstance(checks, dict)
        assert checks["database"] == "unavailable" and checks["revision"] == "unknown"
        assert checks["keys"] == checks["catalogue"] == checks["disk"] == checks["seal"] == "ok"
        # Authentication needs the database too: still a 503, not a 500 or a 401.
        assert_storage_problem(
            client.get("/v1/admin/clients", headers={"Authorization": "Bearer not-a-real-token"}), "storage.unavailable"
        )
        assert client.get("/healthz").status_code == 200  # alive, not ready

        forwarder.start()
        wait_for(lambda: ready(client))
        assert client.get("/v1/audit/checkpoint").status_code in (200, 404)
    logs = broker.logs()
    assert "storage_unavailable" in logs and "unhandled_error" not in logs
    assert "Exception in ASGI application" not in logs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "small"
    directory.mkdir()
    with mounted_tmpfs(directory, "16m"):
        yield directory


def test_sqlite_full_disk_gives_503_and_the_broker_recovers(small_disk: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{small_disk / 'broker.db'}"
    seed_database(url)
    (tmp_path / "broker").mkdir()
    # The keys and the log stay on the large disk: only the database's filesystem fills up.
    process, broker = start_broker(url, tmp_path / "broker")
    try:
        admin = broker.add_client("admin")
        with broker.client(admin) as client:
            assert ready(client)
            filler = fill(small_disk)
            # A write needs new pages in the WAL: the disk has none.
            created = client.post("/v1/admin/clients", json={"name": "while-full", "role": "auditor"})
            assert_storage_problem(created, "storage.full")
            readiness = assert_storage_problem(client.get("/readyz"), "storage.full")
            checks = readiness["checks"]
            assert isinstance(checks, dict) and checks["disk"] == "full"

            filler.unlink()
            wait_for(lambda: ready(client))
            again = client.post("/v1/admin/clients", json={"name": "after-full", "role": "auditor"})
            assert again.status_code == 201, again.text
    finally:
        stop_process(process)
    assert "Exception in ASGI application" not in broker.logs()
