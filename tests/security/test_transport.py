"""The HTTP layer holds against hostile callers and authorities (real broker processes on loopback).

Bodies cannot stall the service: a body to the API is not read before its bearer token is known,
JSON bodies are capped, a 422 stays small. Authentication is unambiguous: one Authorization header,
every 401 names the Bearer scheme, /metrics needs its own role. A push answer is cut off at the
size limit while it is being read.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.wire import MAX_ANSWER_BYTES
from broker.demo.seed import DEMO_REGISTRY
from tests.conftest import LiveBroker, start_broker, stop_process
from tests.specimen import MELDE, request_body

NINE_MB = 9 * 1024 * 1024 + 600 * 1024


@pytest.fixture(scope="module")
def requester(live_broker: LiveBroker) -> str:
    return live_broker.add_client("requester", MELDE)


def big_json(size: int) -> bytes:
    """A JSON object of about ``size`` bytes that is expensive to parse: one long list of numbers."""
    return b'{"evidence_type": "x", "padding": [' + b"0," * (size // 2) + b"0]}"


def in_chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    # A generator makes httpx send the body chunked, without Content-Length.
    for start in range(0, len(body), size):
        yield body[start : start + size]


def head_only(broker: LiveBroker, head: str, timeout: float = 5) -> tuple[int, dict[str, str]]:
    """Send a request's head and none of its body; the status and headers of the answer."""
    address = urlsplit(broker.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pytest.fail(f"no answer within {timeout} s: the broker waits for the body")
    status_line, *lines = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers


class HealthzProbe:
    """Asks /healthz every 20 ms in a thread and keeps the slowest answer's time."""

    def __init__(self, broker: LiveBroker) -> None:
        self._broker = broker
        self._stop = threading.Event()
        self.slowest = 0.0
        self.answers = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self._broker.base_url, timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.answers += 1
                time.sleep(0.02)

    def __enter__(self) -> HealthzProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# --- bodies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["Content-Length: 60000", "Transfer-Encoding: chunked"])
def test_a_body_without_a_token_is_refused_before_it_is_sent(live_broker: LiveBroker, framing: str) -> None:
    head = f"POST /v1/evidence-requests HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    status, headers = head_only(live_broker, head)
    assert status == 401
    assert headers["www-authenticate"] == "Bearer"
    assert headers["connection"] == "close"


def test_a_body_with_an_unknown_token_is_refused_before_it_is_sent(live_broker: LiveBroker) -> None:
    head = (
        "PUT /v1/admin/registry HTTP/1.1\r\nHost: broker\r\nAuthorization: Bearer bo_unknown\r\n"
        "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
    )
    status, headers = head_only(live_broker, head)
    assert status == 401 and headers["www-authenticate"] == "Bearer"


def test_nine_megabytes_are_refused_at_once_and_healthz_stays_responsive(
    live_broker: LiveBroker, requester: str
) -> None:
    body = big_json(NINE_MB)
    headers = {"Content-Type": "application/json"}
    with HealthzProbe(live_broker) as probe, httpx.Client(base_url=live_broker.base_url, timeout=30) as client:
        started = time.monotonic()
        announced = client.post("/v1/evidence-requests", content=body, headers=headers)
        streamed = client.post("/v1/evidence-requests", content=in_chunks(body), headers=headers)
        authenticated = client.post(
            "/v1/evidence-requests",
            content=in_chunks(body),
            headers={**headers, "Authorization": f"Bearer {requester}"},
        )
        elapsed = time.monotonic() - started
        time.sleep(0.2)
    assert (announced.status_code, announced.json()["reason"]) == (413, "request.too_large")
    assert (streamed.status_code, streamed.json()["reason"]) == (401, "auth.required")
    assert (authenticated.status_code, authenticated.json()["reason"]) == (413, "request.too_large")
    assert elapsed < 5, f"three refusals took {elapsed:.2f} s"
    assert probe.answers > 0 and probe.slowest < 1.0, f"/healthz took up to {probe.slowest:.2f} s"


def test_thousands_of_unknown_keys_get_one_small_422_at_once(live_broker: LiveBroker, requester: str) -> None:
    body = json.dumps({f"k{n}": 0 for n in range(5000)}).encode()
    assert len(body) < 64 * 1024
    with live_broker.client(requester) as client:
        started = time.monotonic()
        answer = client.post("/v1/evidence-requests", content=body, headers={"Content-Type": "application/json"})
        elapsed = time.monotonic() - started
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["reason"] == "request.invalid"
    assert [error["field"] for error in problem["errors"]] == ["body"]
    assert "unknown fields: k0, k1, k2, k3, k4 and 4995 more" in problem["errors"][0]["message"]
    assert len(answer.content) < 2048
    assert elapsed < 2, f"took {elapsed:.2f} s"


def test_a_422_lists_at_most_twenty_errors(live_broker: LiveBroker, requester: str) -> None:
    # 20 evidence types that are not strings, a negative max_uses, three fields missing: 24 errors.
    body = {"evidence_types": list(range(20)), "max_uses": -1}
    with live_broker.client(requester) as client:
        answer = client.post("/v1/consents", json=body)
    assert answer.status_code == 422
    problem = answer.json()
    assert len(problem["errors"]) == 20
    assert problem["detail"].endswith("and 4 more.")


def test_a_json_body_over_the_limit_is_refused_and_one_under_it_is_read(
    live_broker: LiveBroker, requester: str
) -> None:
    with live_broker.client(requester) as client:
        over = client.post("/v1/evidence-requests", json=request_body(purpose="x" * (128 * 1024)))
        under = client.post("/v1/evidence-requests", json=request_body())
    assert (over.status_code, over.json()["reason"]) == (413, "request.too_large")
    assert under.status_code == 200, under.text


# --- authentication -------------------------------------------------------------------------------


def test_metrics_need_a_token_of_role_metrics_or_admin(live_broker: LiveBroker, requester: str) -> None:
    reader = live_broker.add_client("metrics")
    admin = live_broker.add_client("admin")
    with live_broker.client() as client:
        anonymous = client.get("/metrics")
        as_requester = client.get("/metrics", headers={"Authorization": f"Bearer {requester}"})
        as_reader = client.get("/metrics", headers={"Authorization": f"Bearer {reader}"})
        as_admin = client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert (as_requester.status_code, as_requester.json()["reason"]) == (403, "auth.wrong_role")
    assert as_reader.status_code == 200 and "broker_http_requests_total" in as_reader.text
    assert as_admin.status_code == 200
    # A metrics token opens nothing else.
    with live_broker.client(reader) as client:
        assert client.get("/v1/audit/entries").status_code == 403
        assert client.post("/v1/evidence-requests", json=request_body()).status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "token"),
    [
        ("GET", "/v1/evidence-requests/some-id", None),
        ("GET", "/v1/evidence-requests/some-id", "bo_unknown"),
        ("GET", "/v1/adapter/tasks", None),
        ("GET", "/v1/audit/entries", "Basic dXNlcjpwdw=="),
        ("GET", "/v1/admin/registry", None),
        ("POST", "/v1/consents", None),
        ("GET", "/metrics", "bo_unknown"),
    ],
)
def test_every_401_names_the_bearer_scheme(live_broker: LiveBroker, method: str, path: str, token: str | None) -> None:
    headers = {}
    if token is not None:
        headers["Authorization"] = token if " " in token else f"Bearer {token}"
    with live_broker.client() as client:
        answer = client.request(method, path, headers=headers, json={} if method == "POST" else None)
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/evidence-requests/some-id"),
        ("POST", "/v1/evidence-requests"),
        ("GET", "/v1/audit/checkpoint"),
        ("GET", "/metrics"),
        ("POST", "/oots/edm"),
    ],
)
def test_two_authorization_headers_are_refused(live_broker: LiveBroker, requester: str, method: str, path: str) -> None:
    for second in (f"Bearer {requester}", "Bearer bo_someone_else"):
        headers = [("Authorization", f"Bearer {requester}"), ("Authorization", second)]
        with live_broker.client() as client:
            answer = client.request(method, path, headers=headers, content=b"{}" if method == "POST" else None)
        assert answer.status_code == 400, answer.text
        assert answer.json()["reason"] == "auth.duplicate_header"


# --- push answers ---------------------------------------------------------------------------------


class FloodingAuthority:
    """A push authority on loopback that answers 200 and then streams far more than any answer may
    hold: fast up to a little over the limit, then slowly. Records how much each answer got out."""

    FAST = MAX_ANSWER_BYTES + 1024 * 1024
    TOTAL = 64 * 1024 * 1024
    CHUNK = b"<x>" + b"y" * (64 * 1024 - 7) + b"</x>"

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/evidence"
        self.sent: list[int] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            while len(body) < length:
                body += connection.recv(65536)
            sent = 0
            try:
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nConnection: close\r\n\r\n")
                while sent < self.TOTAL:
                    connection.sendall(self.CHUNK)
                    sent += len(self.CHUNK)
                    if sent > self.FAST:
                        time.sleep(0.05)
            except OSError:  # the broker hung up
                pass
            self.sent.append(sent)

    def close(self) -> None:
        self._server.close()


def cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "broker.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_push_answer_is_cut_off_at_the_size_limit_while_it_is_read(tmp_path: Path) -> None:
    """The HTTP layer alone is at stake here, so one database does."""
    authority = FloodingAuthority()
    key_file = tmp_path / "authority.pub"
    key_file.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    database_url = f"sqlite:///{tmp_path / 'broker.db'}"
    # A first process migrates the database and gives the CLI its environment; the second starts
    # with the authority already bound to the flooding endpoint.
    process, broker = start_broker(database_url, tmp_path)
    try:
        cli(broker.env, "registry", "load", str(DEMO_REGISTRY))
        cli(broker.env, "adapters", "connect", "melderegister-13004", "--binding", "http_push",
            "--endpoint", authority.url, "--public-key", str(key_file), "--timeout", "30")  # fmt: skip
    finally:
        stop_process(process)
    process, broker = start_broker(database_url, tmp_path)
    try:
        token = broker.add_client("requester", MELDE)
        with broker.client(token) as client:
            started = time.monotonic()
            answer = client.post("/v1/evidence-requests", json=request_body())
            elapsed = time.monotonic() - started
        deadline = time.monotonic() + 10
        while not authority.sent and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_process(process)
        authority.close()
    assert answer.status_code == 502, answer.text
    assert answer.json()["reason"] == "authority.garbage"
    assert f"exceeds {MAX_ANSWER_BYTES} bytes" in answer.json()["detail"]
    assert elapsed < 5, f"the answer took {elapsed:.2f} s"
    assert authority.sent and authority.sent[0] < authority.TOTAL // 2, authority.sent
