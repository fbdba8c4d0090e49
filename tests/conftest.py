"""Shared fixtures. Data under ../shared is read from there, never copied into the project.

Database tests run on SQLite always and on PostgreSQL when ``BROKER_TEST_POSTGRES_URL`` is set
(CI sets it and ``BROKER_TEST_REQUIRE_POSTGRES=1``, so there PostgreSQL never skips silently).
Each test session gets its own throwaway PostgreSQL database, so concurrent runs don't collide.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import httpx
import pytest
from sqlalchemy import create_engine, make_url

if TYPE_CHECKING:
    from broker.db.session import Database
    from tests.world import World

REPO_DIR = Path(__file__).resolve().parents[1]
SHARED_DIR = (REPO_DIR / ".." / "shared").resolve()
ASSETS_DIR = REPO_DIR / "tests" / "assets"
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.fail(f"../shared not found at {SHARED_DIR}: the tests read shared data from there")
    return SHARED_DIR


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    url = os.environ.get("BROKER_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("BROKER_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail("BROKER_TEST_REQUIRE_POSTGRES=1 but BROKER_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL tests need BROKER_TEST_POSTGRES_URL")
    return url


def create_postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A fresh database on the server; returns its URL and a function that drops it."""
    name = f"broker_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return make_url(server_url).set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _database_url(backend: str, request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'broker.db'}"
        return
    server = request.getfixturevalue("postgres_server_url")
    url, drop = create_postgres_database(server)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (not migrated) for one test, on each backend."""
    yield from _database_url(backend, request, tmp_path)


@pytest.fixture(scope="session")
def seeded_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database with the demo data, shared by a backend's tests.

    Tests add to it (clients, exchanges, log entries); none may rely on it staying pristine.
    """
    from broker.db.migrate import upgrade
    from broker.db.session import make_engine, make_session_factory, unit_of_work
    from broker.demo.seed import seed

    for url in _database_url(backend, request, tmp_path_factory.mktemp(f"db-{backend}")):
        engine = make_engine(url)
        upgrade(engine)
        with unit_of_work(make_session_factory(engine)) as session:
            seed(session)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def service_database(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """A migrated, empty database per backend for in-process service tests (tests/world.py)."""
    from broker.db.migrate import upgrade
    from broker.db.session import Database, make_engine

    for url in _database_url(backend, request, tmp_path_factory.mktemp(f"services-{backend}")):
        engine = make_engine(url)
        upgrade(engine)
        database = Database(engine)
        yield database
        database.dispose()


@pytest.fixture
def world(service_database: Database) -> World:
    """The exchange's services over a real database, with fakes for authorities, seal and clock."""
    from tests.world import build_world

    return build_world(service_database)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PortTaken(RuntimeError):
    """A server a test started exited because another process had taken its port first."""


def wait_until_serving(
    process: subprocess.Popen[bytes],
    port: int,
    ready_path: str,
    logs: Callable[[], str],
    what: str,
    seconds: float = 60,
) -> None:
    """Until ``process`` answers ``GET ready_path`` with 200 on ``port`` and listens there itself:
    whoever else answers on the port does not count (another test's server that took the port
    first would answer in its place; the other test worker picks its ports too). Stops the process
    and raises :class:`PortTaken` if it exited for that reason, RuntimeError if it exited otherwise
    or was not ready in time."""
    from tests.processes import listens  # tests.processes imports this module's neighbours

    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                said = logs()
                kind = PortTaken if "address already in use" in said.lower() else RuntimeError
                raise kind(f"{what} exited with {process.returncode}:\n{said}")
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1)
                if answer.status_code == 200 and listens(process.pid, port):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{what} did not become ready in {seconds:g} s:\n{logs()}")
    except BaseException:
        stop_process(process)
        raise


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A server of ``handler`` in a thread, on a loopback port of its own; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


Served = TypeVar("Served")


def on_a_free_port(start: Callable[[int], Served], port: int | None = None) -> Served:
    """``start(port)`` on a free port, and on another if a server took that one before it bound it.
    A ``port`` given is the caller's choice and tried once."""
    if port is not None:
        return start(port)
    for _ in range(2):
        with contextlib.suppress(PortTaken):
            return start(free_port())
    return start(free_port())


@dataclass
class LiveBroker:
    """A real `broker serve` process on loopback."""

    base_url: str
    database_url: str
    keys_dir: Path
    log_path: Path
    env: dict[str, str]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def add_client(
        self,
        role: str,
        *allow: str,
        agent: str | None = None,
        authority: str | None = None,
        callback_origins: Sequence[str] = (),
    ) -> str:
        """Create a client through the real CLI, as an operator would; returns its token."""
        name = f"{role}-{uuid.uuid4().hex[:8]}"
        args = [sys.executable, "-m", "broker.cli", "clients", "add", name, "--role", role]
        for grant in allow:
            args += ["--allow", grant]
        for origin in callback_origins:
            args += ["--callback-origin", origin]
        if agent:
            args += ["--agent", agent]
        if authority:
            args += ["--authority", authority]
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


# What a broker outside development needs for its citizens' sign-in (never called in these tests).
PRODUCTION_SIGN_IN = {
    "BROKER_OIDC_ISSUER": "https://id.example",
    "BROKER_OIDC_CLIENT_ID": "once-only-broker",
    "BROKER_OIDC_CLIENT_SECRET": "test-client-secret",
}


_KEYS_DIRS: dict[str, Path] = {}


def start_broker(
    database_url: str,
    directory: Path,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    workers: int = 1,
) -> tuple[subprocess.Popen[bytes], LiveBroker]:
    # One log, one set of keys: a broker refuses a keys directory its database does not know
    # (broker/keys/fingerprints.py), so brokers sharing a database share the first one's keys.
    keys_dir = _KEYS_DIRS.setdefault(database_url, directory / "keys")
    log_path = directory / "broker.log"
    env = {
        **os.environ,
        "BROKER_DATABASE_URL": database_url,
        "BROKER_KEYS_DIR": str(keys_dir),
        "BROKER_LOG_LEVEL": "info",
        # Loopback brokers, authorities and receivers: allowed in development only, and only
        # to addresses the egress allow-list names.
        "BROKER_ENV": "development",
        "BROKER_EGRESS_ALLOW": "127.0.0.0/8,::1",
        **(extra_env or {}),
    }
    if make_url(database_url).get_backend_name() == "postgresql":
        subprocess.run([sys.executable, "-m", "broker.cli", "db", "upgrade"], env=env, check=True, timeout=120)

    def start(port: int) -> tuple[subprocess.Popen[bytes], LiveBroker]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "broker.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        broker = LiveBroker(f"http://127.0.0.1:{port}", database_url, keys_dir, log_path, env)
        wait_until_serving(process, port, "/readyz", broker.logs, "broker")
        return process, broker

    return on_a_free_port(start, port)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def fresh_broker(
    backend: str, request: pytest.FixtureRequest, directory: Path, env: dict[str, str], port: int | None = None
) -> Iterator[LiveBroker]:
    """A broker on a seeded database of its own: no other broker's background jobs touch its
    outbox or its log (the shared database's log is integrated by every broker on it, each with
    keys of its own)."""
    from broker.db.migrate import upgrade
    from broker.db.session import make_engine, make_session_factory, unit_of_work
    from broker.demo.seed import seed

    for url in _database_url(backend, request, directory):
        engine = make_engine(url)
        upgrade(engine)
        with unit_of_work(make_session_factory(engine)) as session:
            seed(session)
        engine.dispose()
        process, broker = start_broker(url, directory, env, port)
        try:
            yield broker
        finally:
            stop_process(process)


@pytest.fixture(scope="session")
def live_broker(seeded_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """A real broker process per backend, on the seeded demo database (with the OOTS EDM schemas)."""
    oots_schemas = {"BROKER_SCHEMA_PATH": str(SHARED_DIR / "oots" / "xsd")}
    process, broker = start_broker(seeded_database_url, tmp_path_factory.mktemp("broker"), oots_schemas)
    try:
        yield broker
    finally:
        stop_process(process)
