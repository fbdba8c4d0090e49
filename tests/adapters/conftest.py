"""Real processes on loopback for the remote bindings: a broker on its own seeded database (per
backend), reference authorities (`broker-authority`) in push and pull mode, their keys registered
through the admin API. Nothing of the HTTP layer is mocked."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, insert, select

from adapters.identity import name_key
from adapters.registers.models import BusinessRegistration
from broker.db.models import LogEntry
from tests.conftest import (
    LiveBroker,
    _database_url,
    on_a_free_port,
    start_broker,
    stop_process,
    wait_until_serving,
)
from tests.specimen import GEBURT, GEWERBE, MELDE

AUTHORITY_BIN = str(Path(sys.executable).with_name("broker-authority"))
# Broker settings that make the asynchronous paths quick to observe.
REMOTE_ENV = {
    "BROKER_SYNC_TIMEOUT_SECONDS": "2",
    "BROKER_EXCHANGE_EXPIRY_SECONDS": "25",
    "BROKER_TASK_LEASE_SECONDS": "2",
    "BROKER_BACKGROUND_INTERVAL_SECONDS": "0.3",
    "BROKER_BREAKER_FAILURE_THRESHOLD": "1000",
}


def gewerbe_twins(database_url: str) -> None:
    """Two businesses whose owners share name and birth date, so that the Gewerberegister too has
    an ambiguous subject (the demo seed has twins only in the Melde- and Geburtenregister)."""
    engine = create_engine(database_url)
    with engine.begin() as connection:
        for n in (1, 2):
            connection.execute(
                insert(BusinessRegistration).values(
                    register_id="gewerberegister-13004",
                    registration_number=f"GA-TWIN-{n}",
                    idnr=None,
                    family_name="Zwilling",
                    given_name="Kai",
                    family_name_key=name_key("Zwilling"),
                    given_name_key=name_key("Kai"),
                    birth_date=date(1980, 5, 5),
                    birth_place="Schwerin",
                    trade_name=f"Zwillingswerkstatt {n}",
                    activity="Tischlerei",
                    business_address="Am See 1, Schwerin",
                    municipality_ars="130040000000",
                    registered_on=date(2010, 1, n),
                )
            )
    engine.dispose()


@dataclass
class Remote:
    """A broker for remote-binding tests and what the tests need to drive it."""

    broker: LiveBroker
    process: subprocess.Popen[bytes]
    directory: Path
    authority_db: str
    admin: str
    requester: str
    requester_name: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "broker.cli", *args],
            env=self.broker.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def set_authority(self, authority_id: str, **changes: Any) -> dict[str, Any]:
        path = f"/v1/admin/registry/authorities/{authority_id}"
        with self.broker.client(self.admin) as client:
            current = client.get(path)
            spec = {**current.json(), **changes}
            # Replacing an authority names the version it replaces.
            answer = client.put(path, json=spec, headers={"If-Match": current.headers["etag"]})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def request(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        with self.broker.client(self.requester) as client:
            return client.post("/v1/evidence-requests", json=body, headers=headers)

    def get(self, path: str) -> httpx.Response:
        with self.broker.client(self.requester) as client:
            return client.get(path)

    def await_end(self, exchange_id: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            exchange = dict(self.get(f"/v1/evidence-requests/{exchange_id}").json())
            if exchange["state"] not in ("received", "authorised", "routed") or time.monotonic() > deadline:
                return exchange
            time.sleep(0.1)

    def log_reasons(self, exchange_id: str) -> list[tuple[str, str | None]]:
        engine = create_engine(self.broker.database_url)
        with engine.connect() as connection:
            rows = connection.execute(
                select(LogEntry.event, LogEntry.body).where(LogEntry.exchange_id == exchange_id).order_by(LogEntry.seq)
            ).all()
        engine.dispose()
        return [(event, json.loads(body)["reason"]) for event, body in rows]

    def start(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        log = self.directory / f"{name}.log"
        process = subprocess.Popen(
            [AUTHORITY_BIN, *args], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=self.broker.env
        )
        self.processes.append(process)
        return process

    def key_pem(self, key_file: Path) -> str:
        done = subprocess.run(
            [AUTHORITY_BIN, "public-key", "--key", str(key_file)], capture_output=True, text=True, check=True
        )
        return done.stdout

    def push_authority(self, authority_id: str, timeout: float = 1.5) -> str:
        """Start `broker-authority serve` for the authority and route it there; returns its base URL."""
        broker_key = self.directory / "broker-request-key.pem"
        broker_key.write_text(self.cli("adapters", "broker-key"))
        key_file = self.directory / f"{authority_id}-push.pem"
        name = f"{authority_id}-push"

        def start(port: int) -> str:
            process = self.start(
                "serve", "--authority", authority_id, "--database", self.authority_db, "--key", str(key_file),
                "--broker-key", str(broker_key), "--port", str(port), "--allow-fault-injection",
                name=name,
            )  # fmt: skip
            log = self.directory / f"{name}.log"
            wait_until_serving(process, port, "/healthz", lambda: log.read_text(errors="replace"), name, seconds=30)
            return f"http://127.0.0.1:{port}"

        base = on_a_free_port(start)
        self.set_authority(
            authority_id,
            binding="http_push",
            endpoint_url=f"{base}/evidence",
            timeout_seconds=timeout,
            public_key_pem=self.key_pem(key_file),
        )
        return base

    def adapter_token(self, authority_id: str) -> str:
        name = f"adapter-{uuid.uuid4().hex[:8]}"
        return (
            self.cli("clients", "add", name, "--role", "adapter", "--authority", authority_id).strip().splitlines()[-1]
        )

    def pull_authority(self, authority_id: str) -> subprocess.Popen[bytes]:
        key_file = self.directory / f"{authority_id}-pull.pem"
        self.set_authority(authority_id, binding="pull", endpoint_url=None, public_key_pem=self.key_pem(key_file))
        return self.start(
            "pull", "--authority", authority_id, "--database", self.authority_db, "--key", str(key_file),
            "--broker", self.broker.base_url, "--token", self.adapter_token(authority_id), "--wait", "5",
            name=f"{authority_id}-pull",
        )  # fmt: skip


@pytest.fixture(scope="session")
def authority_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The reference authorities' own register database, made by `broker-authority init`."""
    url = f"sqlite:///{tmp_path_factory.mktemp('authority') / 'registers.db'}"
    subprocess.run([AUTHORITY_BIN, "init", "--database", url], check=True, capture_output=True, timeout=300)
    gewerbe_twins(url)
    return url


def _fresh_seeded(backend: str, request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    from broker.db.migrate import upgrade
    from broker.db.session import make_engine, make_session_factory, unit_of_work
    from broker.demo.seed import seed

    for url in _database_url(backend, request, directory):
        engine = make_engine(url)
        upgrade(engine)
        with unit_of_work(make_session_factory(engine)) as session:
            seed(session)
        engine.dispose()
        gewerbe_twins(url)
        yield url


@pytest.fixture(scope="module")
def remote(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, authority_db: str
) -> Iterator[Remote]:
    directory = tmp_path_factory.mktemp(f"remote-{backend}")
    for url in _fresh_seeded(backend, request, directory):
        process, broker = start_broker(url, directory, REMOTE_ENV)
        admin = broker.add_client("admin")
        name = f"portal-{uuid.uuid4().hex[:8]}"
        args = [sys.executable, "-m", "broker.cli", "clients", "add", name, "--role", "requester"]
        for grant in (MELDE, GEBURT, GEWERBE):
            args += ["--allow", grant]
        done = subprocess.run(args, env=broker.env, capture_output=True, text=True, timeout=60, check=True)
        remote = Remote(broker, process, directory, authority_db, admin, done.stdout.strip().splitlines()[-1], name)
        try:
            yield remote
        finally:
            for child in remote.processes:
                stop_process(child)
            stop_process(remote.process)
