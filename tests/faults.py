"""Faults to put a real broker process through, on loopback: a database host that goes away (a TCP
forwarder in front of PostgreSQL that a test stops and starts again), a small filesystem that
fills up (a tmpfs mounted for the test), and the checks of a 503 storage problem.

Used by tests/ops/test_storage_outages.py (one request at a time) and tests/chaos/ (under load).
"""

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
from tests.conftest import create_postgres_database, free_port


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
                if self._listener is not listener:  # stopped meanwhile: this connection goes too
                    client.close()
                    upstream.close()
                    continue
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


@contextlib.contextmanager
def forwarded_database(server_url: str) -> Iterator[tuple[str, Forwarder, str]]:
    """A seeded PostgreSQL database of its own: its direct URL, a started forwarder in front of
    it, and the URL through the forwarder (what a broker under test connects to)."""
    url, drop = create_postgres_database(server_url)
    try:
        seed_database(url)
        server = make_url(url)
        forwarder = Forwarder(free_port(), (server.host or "127.0.0.1", server.port or 5432))
        forwarder.start()
        try:
            yield url, forwarder, server.set(host="127.0.0.1", port=forwarder.port).render_as_string(False)
        finally:
            forwarder.stop()
    finally:
        drop()


def wait_for(condition: Callable[[], bool], seconds: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {seconds} s"
        time.sleep(0.2)


def seed_database(url: str) -> None:
    """Migrate the database and load the demo data (registry, registers)."""
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(make_session_factory(engine)) as session:
        seed(session)
    engine.dispose()


def assert_storage_problem(answer: httpx.Response, reason: str) -> dict[str, object]:
    """A 503 problem+json with the reason, a Retry-After in seconds and a request id."""
    assert answer.status_code == 503, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.headers["Retry-After"].isdigit()
    assert answer.headers.get("X-Request-Id")
    body: dict[str, object] = answer.json()
    assert body["reason"] == reason
    return body


def ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def mounted_tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``directory`` for the block; skips where mounting is not
    allowed (not root, no mount, a container without the capability)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a size-limited filesystem needs root (mount -t tmpfs)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write a file until the filesystem is full; returns it (delete it to free the space)."""
    filler = directory / name
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
