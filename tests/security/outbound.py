"""What the outbound-call tests need: brokers of their own, and loopback servers that play
callback receivers, authorities and the internal targets an attacker aims at."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import LiveBroker
from tests.specimen import MELDE


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Listener:
    """A TCP server on loopback that accepts connections, reads what comes and never answers:
    a hanging receiver, or a target that must never be reached. Counts what it saw."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self._socket.getsockname()[1]
        self._lock = threading.Lock()
        self.connections = 0
        self.open = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.open += 1
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        with connection:
            try:
                while connection.recv(65536):
                    pass
            except OSError:
                pass
        with self._lock:
            self.open -= 1

    def close(self) -> None:
        self._socket.close()


class Receiver:
    """An HTTP server on loopback that answers every POST with ``status`` (and ``location``)
    and keeps what it received, with the time it arrived."""

    def __init__(self, status: int = 204, location: str | None = None) -> None:
        self.received: list[tuple[float, str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server interface
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((time.monotonic(), self.path, body))
                self.send_response(status)
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def answer_signing_key_pem() -> str:
    """A public key for a push authority (the broker refuses to call one without a key)."""
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def push_authority_spec(endpoint_url: str) -> dict[str, Any]:
    """A new push authority at ``endpoint_url``, as the admin API takes it."""
    return {
        "id": f"egress-test-{uuid.uuid4().hex[:8]}",
        "name": "Meldebehörde Egress-Test",
        "ars": "13004",
        "register_kind": "melderegister",
        "binding": "http_push",
        "endpoint_url": endpoint_url,
        "timeout_seconds": 2.0,
        "public_key_pem": answer_signing_key_pem(),
    }


def push_authority(broker: LiveBroker, admin: str, endpoint_url: str) -> httpx.Response:
    """Register a new push authority at ``endpoint_url``; the answer of the admin API."""
    authority = push_authority_spec(endpoint_url)
    with broker.client(admin) as client:
        return client.put(f"/v1/admin/registry/authorities/{authority['id']}", json=authority)


def route_to(broker: LiveBroker, admin: str, authority_id: str) -> str:
    """Route Meldebescheinigungen of a Gemeinde of its own to the authority; returns that ARS."""
    ars = f"130049{uuid.uuid4().int % 10**6:06d}"
    # Active at once: a new route to a remote authority is pending until it is onboarded.
    route = {"evidence_type": MELDE, "ars_prefix": ars, "authority": authority_id, "state": "active"}
    with broker.client(admin) as client:
        answer = client.put("/v1/admin/registry/routes", json=route)
    assert answer.status_code in (200, 201), answer.text
    return ars
