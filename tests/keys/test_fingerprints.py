"""The keys directory is bound to the database whose log it signs (broker/keys/fingerprints.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.audit.service import EntryFacts, record
from broker.db.migrate import upgrade
from broker.db.session import Database, make_engine
from broker.keys import fingerprints
from broker.keys.fingerprints import KeysMismatch
from broker.keys.store import KeyStore

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    engine = make_engine(database_url)
    upgrade(engine)
    db = Database(engine)
    yield db
    db.dispose()


def check(database: Database, store: KeyStore) -> list[fingerprints.Fingerprint]:
    with database.unit_of_work() as session:
        return fingerprints.check(session, store, NOW)


def test_first_start_records_the_keys_and_later_starts_accept_them(database: Database, tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    recorded = check(database, store)
    assert [p.purpose for p in recorded] == ["checkpoint", "pseudonym"]
    # Fingerprints, never the secret itself.
    assert all(len(p.fingerprint) == 64 and p.fingerprint != store.pseudonym_secret().hex() for p in recorded)
    assert check(database, KeyStore(tmp_path / "keys")) == []


def test_an_empty_directory_is_refused_and_no_keys_are_made(database: Database, tmp_path: Path) -> None:
    check(database, KeyStore(tmp_path / "keys"))
    empty = KeyStore(tmp_path / "empty")
    with pytest.raises(KeysMismatch, match="holds no keys"):
        check(database, empty)
    assert not (tmp_path / "empty").exists()


def test_other_keys_are_refused(database: Database, tmp_path: Path) -> None:
    check(database, KeyStore(tmp_path / "keys"))
    other = KeyStore(tmp_path / "other")
    other.checkpoint_key()
    other.pseudonym_secret()
    with pytest.raises(KeysMismatch, match="did not sign this database's log"):
        check(database, other)


def test_another_pseudonym_secret_is_refused(database: Database, tmp_path: Path) -> None:
    check(database, KeyStore(tmp_path / "keys"))
    (tmp_path / "keys" / "pseudonym.key").unlink()
    with pytest.raises(KeysMismatch, match="pseudonym.key holds no keys"):
        check(database, KeyStore(tmp_path / "keys"))
    (tmp_path / "keys" / "pseudonym.key").write_bytes(b"\x01" * 32)
    with pytest.raises(KeysMismatch, match="not the secret"):
        check(database, KeyStore(tmp_path / "keys"))


def test_a_log_made_with_keys_is_not_given_new_ones(database: Database, tmp_path: Path) -> None:
    # A database from before the fingerprints (migration 0009) whose log already holds pseudonyms.
    with database.unit_of_work() as session:
        record(session, EntryFacts(event="received", time=NOW, subject="ps1:" + "0" * 64))
    with pytest.raises(KeysMismatch, match="already holds a log"):
        check(database, KeyStore(tmp_path / "empty"))
    assert not (tmp_path / "empty").exists()
    # The keys it was made with (a directory that holds keys) are trusted on this first start.
    existing = KeyStore(tmp_path / "keys")
    existing.checkpoint_key()
    assert len(check(database, existing)) == 2


def test_rotation_is_recorded_and_old_keys_stay_known(database: Database, tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")
    check(database, store)
    store.rotate()
    with pytest.raises(KeysMismatch):
        check(database, store)
    with database.unit_of_work() as session:
        rotated = fingerprints.record_rotation(session, store, NOW)
    assert [p.key_id for p in rotated] == [store.checkpoint_key()[0].kid]
    assert check(database, store) == []


def test_adopt_makes_other_keys_the_logs(database: Database, tmp_path: Path) -> None:
    check(database, KeyStore(tmp_path / "keys"))
    other = KeyStore(tmp_path / "other")
    with database.unit_of_work() as session:
        adopted = fingerprints.adopt(session, other, NOW)
    assert [p.purpose for p in adopted] == ["checkpoint", "pseudonym"]
    assert check(database, other) == []
    # The old secret is no longer the one in use; its checkpoint key stays known.
    with pytest.raises(KeysMismatch, match="not the secret"):
        check(database, KeyStore(tmp_path / "keys"))
