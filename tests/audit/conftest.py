"""Fixtures for the provenance-log tests: a migrated database per test (SQLite and PostgreSQL,
from the shared ``database_url`` fixture), a key store, and helpers to fill the log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from broker.audit.integrator import Integration, integrate
from broker.audit.service import EntryFacts, record
from broker.db.migrate import upgrade
from broker.db.session import make_engine, make_session_factory, unit_of_work
from broker.keys.store import KeyStore

ORIGIN = "test.example/once-only-log"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_verify.py's packing variants are about PostgreSQL's packed reads: not run on SQLite."""
    items[:] = [item for item in items if not _packing_variant_on_sqlite(item)]


def _packing_variant_on_sqlite(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return params.get("backend") == "sqlite" and params.get("packing", "one-window") != "one-window"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", origin=ORIGIN)


def facts(number: int, *, event: str = "received", exchange: str | None = None, **extra: str) -> EntryFacts:
    """Deterministic, distinct entries: number n is recorded n seconds after START."""
    return EntryFacts(
        event=event,
        time=START + timedelta(seconds=number),
        exchange=exchange or f"00000000-0000-4000-8000-{number:012d}",
        requester=extra.pop("requester", "portal-schwerin"),
        authority=extra.pop("authority", "amt-schwerin"),
        evidence_type=extra.pop("evidence_type", "urn:de:nachweis:meldebescheinigung"),
        purpose="Wohngeldantrag",
        subject=extra.pop("subject", f"ps1:{number:064x}"),
        **extra,
    )


@dataclass
class Log:
    """Fills the log under test: record entries (each batch one transaction) and integrate them."""

    sessions: sessionmaker[Session]
    keys: KeyStore
    recorded: int = 0

    def record(self, count: int, **extra: str) -> list[int]:
        seqs = []
        with unit_of_work(self.sessions) as session:
            for _ in range(count):
                entry = record(session, facts(self.recorded, **extra))
                self.recorded += 1
                session.flush()
                seqs.append(entry.seq)
        return seqs

    def integrate(self, batch_size: int = 10_000) -> Integration:
        with unit_of_work(self.sessions) as session:
            return integrate(session, self.keys, ORIGIN, START, batch_size=batch_size)

    def grow(self, *batches: int) -> list[Integration]:
        """Record and integrate each batch: one checkpoint per batch."""
        runs = []
        for count in batches:
            self.record(count)
            runs.append(self.integrate())
        return runs


@pytest.fixture
def log(sessions: sessionmaker[Session], keys: KeyStore) -> Log:
    return Log(sessions, keys)


@pytest.fixture
def cli_env(database_url: str, engine: Engine, keys: KeyStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ``broker`` CLI's settings pointed at the test database and keys."""
    monkeypatch.setenv("BROKER_DATABASE_URL", database_url)
    monkeypatch.setenv("BROKER_KEYS_DIR", str(keys.keys_dir))
    monkeypatch.setenv("BROKER_ORIGIN", ORIGIN)
    yield
