"""``broker backup create | verify | restore`` through the real CLI, on SQLite and PostgreSQL.

A broker serves real exchanges, and keeps serving them while it is backed up; the backup is
restored into a new database and keys directory, where `broker audit verify` passes, citizens
keep their pseudonyms and a broker started there goes on with the same log. Refusals: a damaged
backup, a target that holds a database or keys, a backup directory that is not empty, keys that
are not the log's, a missing pg_dump.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from broker.backup.database import check_empty
from broker.backup.manifest import BackupError
from broker.db.models import Exchange, LogEntry
from broker.db.session import make_engine
from broker.keys.store import KeyStore
from tests.conftest import LiveBroker, fresh_broker, start_broker, stop_process
from tests.specimen import ERIKA, ERIKA_IDNR, GEBURT, MELDE, request_body

ERIKA_BY_NAME = (
    *("--family-name", ERIKA["family_name"]),
    *("--given-name", ERIKA["given_name"]),
    *("--birth-date", ERIKA["birth_date"]),
)


def broker_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def pseudonym_of_erika(env: dict[str, str]) -> str:
    done = broker_cli("audit", "pseudonym", *ERIKA_BY_NAME, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[0]


def pseudonyms_by_exchange(database_url: str) -> dict[str, str | None]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(Exchange.id, Exchange.subject_pseudonym)).all()
            return {exchange: pseudonym for exchange, pseudonym in rows}
    finally:
        engine.dispose()


def entries_about(database_url: str, pseudonym: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(func.count()).where(LogEntry.subject_pseudonym == pseudonym)
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def last_seq(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.max(LogEntry.seq))).scalar_one())
    finally:
        engine.dispose()


def log_entries(database_url: str, *, event: str) -> list[Any]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            columns = (LogEntry.seq, LogEntry.log_index, LogEntry.body)
            return list(connection.execute(select(*columns).where(LogEntry.event == event)).all())
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Backup:
    directory: Path
    manifest: dict[str, Any]
    token: str
    pseudonym: str
    source: LiveBroker

    @property
    def database_file(self) -> str:
        return str(self.manifest["database"]["file"])


@pytest.fixture(scope="module")
def source(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveBroker]:
    yield from fresh_broker(backend, request, tmp_path_factory.mktemp(f"backup-source-{backend}"), {})


@pytest.fixture(scope="module")
def backup(source: LiveBroker, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Backup:
    """Exchanges in the log, then a backup taken while requests keep coming."""
    token = source.add_client("requester", MELDE, GEBURT)
    with source.client(token) as client:
        for body in (request_body(), request_body(subject={"idnr": ERIKA_IDNR}), request_body(GEBURT)):
            answer = client.post("/v1/evidence-requests", json=body)
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 30
        while client.get("/v1/audit/checkpoint").status_code != 200:
            assert time.monotonic() < deadline, "the broker signed no checkpoint"
            time.sleep(0.1)
    stop = threading.Event()
    answered: list[int] = []

    def keep_asking() -> None:
        with source.client(token) as client:
            while not stop.is_set():
                answered.append(client.post("/v1/evidence-requests", json=request_body()).status_code)

    asking = threading.Thread(target=keep_asking)
    asking.start()
    directory = tmp_path_factory.mktemp(f"backups-{backend}") / "2026-03-01"
    try:
        done = broker_cli("backup", "create", str(directory), env=source.env)
    finally:
        stop.set()
        asking.join()
    assert done.returncode == 0, done.stderr
    assert answered and set(answered) == {200}  # the broker served on while it was backed up
    manifest = json.loads((directory / "backup.json").read_text())
    assert manifest["log"]["tree_size"] > 0
    assert f"tree size {manifest['log']['tree_size']}" in done.stdout
    return Backup(directory, manifest, token, pseudonym_of_erika(source.env), source)


@dataclass(frozen=True)
class Target:
    """A new, empty place to restore into: the database of ``database_url`` and ``keys_dir``."""

    database_url: str
    keys_dir: Path
    env: dict[str, str]

    def database_is_empty(self) -> bool:
        try:
            check_empty(self.database_url)
        except BackupError:
            return False
        return True

    def is_untouched(self) -> bool:
        return self.database_is_empty() and not self.keys_dir.exists()


@pytest.fixture
def target(backup: Backup, database_url: str, tmp_path: Path) -> Target:
    keys_dir = tmp_path / "keys"
    env = {**backup.source.env, "BROKER_DATABASE_URL": database_url, "BROKER_KEYS_DIR": str(keys_dir)}
    return Target(database_url, keys_dir, env)


def test_a_restored_backup_verifies_and_keeps_the_pseudonyms(backup: Backup, target: Target, tmp_path: Path) -> None:
    restored = broker_cli("backup", "restore", str(backup.directory), env=target.env)
    assert restored.returncode == 0, restored.stderr
    log = backup.manifest["log"]
    assert f"tree size {log['tree_size']}, checkpoint root {log['root_hash']}" in restored.stdout
    assert "next: `broker audit verify`" in restored.stdout
    # The log itself says it was restored, and from which backup: one entry, queued after the
    # backup's own entries, that names the backup's moment and no more.
    assert "logged: the log's next entry (`restored`) names this backup" in restored.stdout
    [restore_entry] = log_entries(target.database_url, event="restored")
    assert restore_entry.log_index is None and restore_entry.seq == last_seq(target.database_url)
    body = json.loads(restore_entry.body)
    assert body["actor"] == "cli" and body["change"].startswith("backup/")
    backed_up = datetime.fromisoformat(backup.manifest["created_at"]).replace(microsecond=0)
    assert datetime.fromisoformat(body["change"].removeprefix("backup/")) == backed_up
    assert [body[field] for field in ("exchange", "subject", "requester", "authority")] == [None] * 4
    assert (target.keys_dir.stat().st_mode & 0o777, (target.keys_dir / "pseudonym.key").stat().st_mode & 0o777) == (
        0o700,
        0o600,
    )

    verified = broker_cli("audit", "verify", env=target.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "log intact" in verified.stdout

    # The same citizen has the same pseudonym, and the restored log's entries about her carry it.
    assert pseudonym_of_erika(target.env) == backup.pseudonym
    assert entries_about(target.database_url, backup.pseudonym) > 0
    before = pseudonyms_by_exchange(backup.source.database_url)
    after = pseudonyms_by_exchange(target.database_url)
    assert after and after.items() <= before.items()

    # A broker started on the restored database and keys passes its start checks, serves the
    # source's clients, and its new entries about Erika carry her old pseudonym.
    process, restored_broker = start_broker(target.database_url, tmp_path)
    try:
        assert restored_broker.keys_dir == target.keys_dir
        with restored_broker.client(backup.token) as client:
            answer = client.post("/v1/evidence-requests", json=request_body())
            assert answer.status_code == 200, answer.text
            new_exchange = answer.json()["id"]
            wait_for_checkpoint_beyond(client, log["tree_size"])
    finally:
        stop_process(process)
    assert pseudonyms_by_exchange(target.database_url)[new_exchange] == backup.pseudonym
    # The restored broker integrated the entry: it is in the log its new checkpoints sign.
    [restore_entry] = log_entries(target.database_url, event="restored")
    assert restore_entry.log_index is not None
    again = broker_cli("audit", "verify", env=target.env)
    assert again.returncode == 0, again.stdout + again.stderr


def wait_for_checkpoint_beyond(client: httpx.Client, size: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        answer = client.get("/v1/audit/checkpoint")
        if answer.status_code == 200 and int(answer.text.splitlines()[1]) > size:
            return
        assert time.monotonic() < deadline, "the restored broker signed no new checkpoint"
        time.sleep(0.1)


def test_verify_passes_an_intact_backup(backup: Backup) -> None:
    done = broker_cli("backup", "verify", str(backup.directory), env=backup.source.env)
    assert done.returncode == 0, done.stderr
    assert f"backup intact: {len(backup.manifest['files'])} files" in done.stdout


@pytest.mark.parametrize("damaged", ["keys/pseudonym.key", "database"])
def test_a_damaged_backup_is_refused_naming_the_file(
    backup: Backup, target: Target, tmp_path: Path, damaged: str
) -> None:
    copy = tmp_path / "damaged"
    shutil.copytree(backup.directory, copy)
    name = backup.database_file if damaged == "database" else damaged
    content = bytearray((copy / name).read_bytes())
    content[len(content) // 2] ^= 0x01
    (copy / name).write_bytes(bytes(content))

    for command in ("verify", "restore"):
        done = broker_cli("backup", command, str(copy), env=target.env)
        assert done.returncode == 1, done.stdout
        assert f"{name} has changed" in done.stderr
    assert target.is_untouched()


def test_an_unfinished_backup_is_refused(backup: Backup, target: Target, tmp_path: Path) -> None:
    copy = tmp_path / "unfinished"
    shutil.copytree(backup.directory, copy)
    (copy / "backup.json").unlink()
    done = broker_cli("backup", "restore", str(copy), env=target.env)
    assert done.returncode == 1
    assert "not a complete backup: it has no backup.json" in done.stderr
    assert target.is_untouched()


def test_restore_refuses_a_database_that_is_not_empty(backup: Backup) -> None:
    source = backup.source
    tree_size = backup.manifest["log"]["tree_size"]
    # The source itself: its database holds the log, and its keys directory the keys.
    done = broker_cli("backup", "restore", str(backup.directory), env={**source.env, "BROKER_KEYS_DIR": "/nonexistent"})
    assert done.returncode == 1
    assert "is not empty" in done.stderr or "exists" in done.stderr
    assert source.database_url.rpartition("/")[2] in done.stderr
    with source.client() as client:
        assert int(client.get("/v1/audit/checkpoint").text.splitlines()[1]) >= tree_size


def test_restore_refuses_a_keys_directory_that_is_not_empty(backup: Backup, target: Target) -> None:
    KeyStore(target.keys_dir).checkpoint_key()
    done = broker_cli("backup", "restore", str(backup.directory), env=target.env)
    assert done.returncode == 1
    assert f"BROKER_KEYS_DIR {target.keys_dir} is not empty" in done.stderr
    assert not target.keys_dir.joinpath("pseudonym.key").exists()
    assert target.database_is_empty()


def test_restore_refuses_another_kind_of_database(backup: Backup, tmp_path: Path) -> None:
    other = (
        "postgresql+psycopg://nobody@127.0.0.1:1/none"
        if backup.manifest["database"]["backend"] == "sqlite"
        else f"sqlite:///{tmp_path / 'broker.db'}"
    )
    env = {**backup.source.env, "BROKER_DATABASE_URL": other, "BROKER_KEYS_DIR": str(tmp_path / "keys")}
    done = broker_cli("backup", "restore", str(backup.directory), env=env)
    assert done.returncode == 1
    assert f"the backup holds a {backup.manifest['database']['backend']} database" in done.stderr
    assert not (tmp_path / "keys").exists() and not (tmp_path / "broker.db").exists()


def test_create_refuses_a_directory_that_is_not_empty(source: LiveBroker, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a backup\n")
    done = broker_cli("backup", "create", str(tmp_path), env=source.env)
    assert done.returncode == 1
    assert f"{tmp_path} exists and is not an empty directory" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_create_refuses_keys_that_are_not_the_logs(source: LiveBroker, tmp_path: Path) -> None:
    other = KeyStore(tmp_path / "other-keys")
    other.checkpoint_key()
    other.pseudonym_secret()
    (tmp_path / "backup").mkdir()
    done = broker_cli(
        "backup", "create", str(tmp_path / "backup"), env={**source.env, "BROKER_KEYS_DIR": str(other.keys_dir)}
    )
    assert done.returncode == 1
    assert f"BROKER_KEYS_DIR {other.keys_dir} does not hold the keys of this database's log" in done.stderr
    # The directory was there before: it is left, empty; nothing of the failed backup remains.
    assert list((tmp_path / "backup").iterdir()) == []


def test_postgresql_without_pg_dump(source: LiveBroker, backend: str, tmp_path: Path) -> None:
    if backend != "postgresql":
        pytest.skip("pg_dump is PostgreSQL's")
    pg_dump = shutil.which("pg_dump")
    assert pg_dump is not None, "the PostgreSQL tests need pg_dump on PATH"
    no_tools = {**source.env, "PATH": str(tmp_path / "empty")}
    done = broker_cli("backup", "create", str(tmp_path / "backup"), env=no_tools)
    assert done.returncode == 1
    assert "pg_dump is not on PATH" in done.stderr and "README" in done.stderr
    assert not (tmp_path / "backup").exists()
    # --pg-bin names where the tools are.
    named = broker_cli("backup", "create", str(tmp_path / "backup"), "--pg-bin", os.path.dirname(pg_dump), env=no_tools)
    assert named.returncode == 0, named.stderr
    assert (tmp_path / "backup" / "database.pgdump").stat().st_size > 0
