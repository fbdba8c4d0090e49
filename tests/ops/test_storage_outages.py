"""Storage outages through a real broker process: the database gone (PostgreSQL behind a TCP
forwarder the test stops and restarts) and a full disk (SQLite on a small tmpfs). Requests get
503 problems with a stable reason and Retry-After, /readyz names the failing check, and the
broker recovers by itself once the cause goes."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from broker.db.migrate import upgrade
from broker.db.session import make_engine, make_session_factory, unit_of_work
from broker.demo.seed import seed
from tests.conftest import LiveBroker, create_postgres_database, free_port, start_broker, stop_process


class Forwarder:
    """A TCP forwarder on loopback: ``start`` listens on ``port`` and relays to ``target``;
    ``stop`` closes the listener and every relayed connection, as a database host going away."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def seed_database(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(make_session_factory(engine)) as session:
        seed(session)
    engine.dispose()


def assert_storage_problem(answer: httpx.Response, reason: str) -> dict[str, object]:
    assert answer.status_code == 503, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.headers["Retry-After"].isdigit()
    assert answer.headers.get("X-Request-Id")
    body: dict[str, object] = answer.json()
    assert body["reason"] == reason
    return body


def ready(client: httpx.Client) -> bool:
    return client.get("/readyz").status_code == 200


@pytest.fixture
def broker_behind_forwarder(postgres_server_url: str, tmp_path: Path) -> Iterator[tuple[LiveBroker, Forwarder]]:
    url, drop = create_postgres_database(postgres_server_url)
    try:
        seed_database(url)
        server = make_url(url)
        forwarder = Forwarder(free_port(), (server.host or "127.0.0.1", server.port or 5432))
        forwarder.start()
        through = server.set(host="127.0.0.1", port=forwarder.port).render_as_string(hide_password=False)
        # Short background rounds, so the integrator's state settles quickly either way.
        process, broker = start_broker(through, tmp_path, {"BROKER_INTEGRATE_INTERVAL_SECONDS": "0.2"})
        try:
            yield broker, forwarder
        finally:
            stop_process(process)
            forwarder.stop()
    finally:
        drop()


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
        assert checks["keys"] == checks["catalogue"] == checks["disk"] == "ok"
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


def _mount_tmpfs(directory: Path, size: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a size-limited filesystem needs root (mount -t tmpfs)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "small"
    directory.mkdir()
    _mount_tmpfs(directory, "16m")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to free the space)."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        # Unbuffered writes, smaller and smaller, until not one byte more fits.
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(descriptor, b"\0" * size)
    finally:
        os.close(descriptor)
    return filler


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
