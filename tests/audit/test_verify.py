"""``broker audit verify``: an intact log passes; every kind of tampering fails and is named."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import auditor, repository
from broker.audit.commands import audit
from broker.audit.verify import (
    CHECKPOINT_FORGED,
    CHECKPOINT_RESIGNED,
    ENTRIES_ALTERED,
    ENTRIES_REORDERED,
    ENTRY_CHANGED,
    ENTRY_DELETED,
    ENTRY_INSERTED,
    FORK,
    ROLLBACK,
    TREE_NODE_ALTERED,
)
from broker.keys.store import KeyStore

from . import tamper
from .conftest import Log

pytestmark = pytest.mark.usefixtures("cli_env")


@pytest.fixture(autouse=True, params=["one-window", "windows-of-3", "no-body-packed"])
def packing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL reads the entries a window at a time, packed (auditor.PACKED_WINDOW), and a
    window that is not clean row by row: each test also runs with windows of 3 entries (the grown
    log's 13 cross five) and with bodies all too long to pack (every window row by row). SQLite,
    which reads row by row, runs the first only (conftest.pytest_collection_modifyitems)."""
    if request.param == "windows-of-3":
        monkeypatch.setattr(auditor, "PACKED_WINDOW", 3)
    elif request.param == "no-body-packed":
        monkeypatch.setattr(repository, "PACKED_BODY_LIMIT", 10)


def verify(*args: str) -> Result:
    return CliRunner().invoke(audit, ["verify", *args])


def assert_intact(result: Result, entries: int) -> None:
    assert result.exit_code == 0, result.output
    assert f"log intact: {entries} entries" in result.output


def assert_tampered(result: Result, kind: str, *phrases: str) -> None:
    assert result.exit_code == 1, result.output
    assert "log NOT intact" in result.output
    lines = [line for line in result.output.splitlines() if line.startswith(f"{kind.upper()}: ")]
    assert lines, f"no {kind!r} finding in:\n{result.output}"
    for phrase in phrases:
        assert any(phrase in line for line in lines), f"{phrase!r} not in {lines}"


def save_checkpoint(sessions: sessionmaker[Session], path: Path) -> Path:
    with sessions() as session:
        latest = repository.latest_checkpoint(session)
    assert latest is not None
    path.write_text(latest.note, encoding="utf-8")
    return path


@pytest.fixture
def grown(log: Log) -> Log:
    """13 entries, signed at sizes 5, 9 and 13."""
    log.grow(5, 4, 4)
    return log


def test_empty_log_is_intact() -> None:
    assert_intact(verify(), 0)


def test_intact_log_passes(grown: Log) -> None:
    result = verify()
    assert_intact(result, 13)
    assert "3 signed checkpoints, each consistent with the next" in result.output


def test_queued_entries_are_not_tampering(grown: Log) -> None:
    grown.record(3)
    assert_intact(verify(), 13)


def test_the_log_extends_a_checkpoint_saved_earlier(log: Log, tmp_path: Path) -> None:
    log.grow(5, 4)
    trusted = save_checkpoint(log.sessions, tmp_path / "trusted.txt")
    log.grow(4, 2)
    result = verify("--trusted-checkpoint", str(trusted))
    assert_intact(result, 15)
    assert "your trusted checkpoint (tree size 9) is consistent with the latest checkpoint (tree size 15)" in (
        result.output
    )


def test_checkpoints_of_rotated_keys_still_verify(log: Log, keys: KeyStore) -> None:
    log.grow(5)
    keys.rotate()
    log.grow(3)
    assert_intact(verify(), 8)


def test_changed_entry(grown: Log, engine: Engine) -> None:
    tamper.change_body(engine, grown.sessions, 6, rehash=False)
    assert_tampered(verify(), ENTRY_CHANGED, "entry 6 was changed")


def test_changed_entry_with_its_leaf_hash_fixed_up(grown: Log, engine: Engine) -> None:
    tamper.change_body(engine, grown.sessions, 6, rehash=True)
    assert_tampered(verify(), ENTRY_CHANGED, "entry 6 was changed: it differs from the entry the log signed")


def test_changed_entry_with_leaf_hash_and_stored_leaf_fixed_up(grown: Log, engine: Engine) -> None:
    body = tamper.change_body(engine, grown.sessions, 6, rehash=True)
    tamper.sql(
        engine,
        'UPDATE merkle_nodes SET hash = :h WHERE level = 0 AND "index" = 6',
        h=hashlib.sha256(b"\x00" + body).digest(),
    )
    # Nothing independent is left to say which entry it was: the damage is narrowed to a range.
    assert_tampered(verify(), ENTRIES_ALTERED, "from 5 to 8", "changed, deleted, inserted or reordered")


def test_changed_entry_with_a_newline_of_its_own(grown: Log, engine: Engine) -> None:
    """A packed window separates bodies by newlines, which canonical JSON never holds: a body
    given one (and its leaf hash fixed up) must still be named, not read as two entries."""
    body = tamper.body_at(grown.sessions, 6) + b"\n" + tamper.body_at(grown.sessions, 7)
    tamper.sql(engine, "UPDATE log_entries SET body = :body WHERE log_index = 6", body=body)
    tamper.sql(
        engine,
        "UPDATE log_entries SET leaf_hash = :leaf WHERE log_index = 6",
        leaf=hashlib.sha256(b"\x00" + body).digest(),
    )
    assert_tampered(verify(), ENTRY_CHANGED, "entry 6 was changed: it differs from the entry the log signed")


def test_deleted_entry(grown: Log, engine: Engine) -> None:
    tamper.sql(engine, "DELETE FROM log_entries WHERE log_index = 6")
    assert_tampered(verify(), ENTRY_DELETED, "no entry has log index 6")


def test_deleted_entry_with_later_entries_renumbered(grown: Log, engine: Engine) -> None:
    tamper.sql(engine, "DELETE FROM log_entries WHERE log_index = 6")
    tamper.shift(engine, 7, -1)
    assert_tampered(verify(), ENTRY_DELETED, "entry 6 was deleted and the later entries renumbered")


def test_deleted_entries_at_the_end(grown: Log, engine: Engine) -> None:
    tamper.sql(engine, "DELETE FROM log_entries WHERE log_index >= 11")
    assert_tampered(verify(), ENTRY_DELETED, "2 entries (11 to 12) were deleted from the end")


def test_inserted_entry(grown: Log, engine: Engine) -> None:
    template = tamper.body_at(grown.sessions, 6)
    tamper.shift(engine, 6, 1)
    tamper.insert_entry(grown.sessions, 6, template)
    assert_tampered(verify(), ENTRY_INSERTED, "an entry was inserted at log index 6")


def test_inserted_entry_after_the_last_checkpoint(grown: Log) -> None:
    tamper.insert_entry(grown.sessions, 13, tamper.body_at(grown.sessions, 0))
    assert_tampered(verify(), ENTRY_INSERTED, "entries 13 to 13 are in the log but in no signed checkpoint")


def test_reordered_entries(grown: Log, engine: Engine) -> None:
    tamper.swap(engine, 3, 7)
    assert_tampered(verify(), ENTRIES_REORDERED, "log indices 3, 7 hold entries that were signed at other indices")


def test_forged_checkpoint(grown: Log, engine: Engine) -> None:
    with grown.sessions() as session:
        stored = repository.checkpoint_at(session, 9)
    assert stored is not None
    fake_root = hashlib.sha256(b"another history").digest()
    note = stored.note.replace(base64.b64encode(stored.root_hash).decode(), base64.b64encode(fake_root).decode())
    tamper.sql(engine, "UPDATE checkpoints SET note = :n, root_hash = :r WHERE tree_size = 9", n=note, r=fake_root)
    assert_tampered(verify(), CHECKPOINT_FORGED, "checkpoint at tree size 9", "does not verify")


def test_checkpoint_row_altered(grown: Log, engine: Engine) -> None:
    tamper.sql(engine, "UPDATE checkpoints SET root_hash = :r WHERE tree_size = 5", r=bytes(32))
    assert_tampered(verify(), CHECKPOINT_FORGED, "tree size 5: the stored root hash differs from the signed note")


def test_checkpoint_re_signed_with_another_key(grown: Log, engine: Engine) -> None:
    tamper.change_body(engine, grown.sessions, 10, rehash=True)
    tree = tamper.rebuild_tree(grown.sessions)
    tamper.resign(grown.sessions, tree, [13], Ed25519PrivateKey.generate())
    assert_tampered(verify(), CHECKPOINT_RESIGNED, "checkpoint at tree size 13", "re-signed with another key")


def test_rollback_to_an_old_backup(grown: Log, tmp_path: Path) -> None:
    trusted = save_checkpoint(grown.sessions, tmp_path / "trusted.txt")
    tamper.roll_back(grown.sessions, 9)
    assert_intact(verify(), 9)  # consistent in itself: only an earlier checkpoint reveals it
    assert_tampered(verify("--trusted-checkpoint", str(trusted)), ROLLBACK, "tree size 13", "rolled back")


def test_fork_rewritten_and_re_signed_with_the_broker_key(
    grown: Log, engine: Engine, keys: KeyStore, tmp_path: Path
) -> None:
    trusted = save_checkpoint(grown.sessions, tmp_path / "trusted.txt")
    tamper.change_body(engine, grown.sessions, 6, rehash=True)
    tree = tamper.rebuild_tree(grown.sessions)
    tamper.resign(grown.sessions, tree, [5, 9, 13], keys.checkpoint_key()[1])
    assert_intact(verify(), 13)  # whoever holds the key can rewrite consistently …
    # … but not so that it agrees with a checkpoint an auditor kept.
    assert_tampered(verify("--trusted-checkpoint", str(trusted)), FORK, "your trusted checkpoint", "forked")


def test_fork_between_published_checkpoints(grown: Log, engine: Engine, keys: KeyStore) -> None:
    tamper.change_body(engine, grown.sessions, 6, rehash=True)
    tree = tamper.rebuild_tree(grown.sessions)
    tamper.resign(grown.sessions, tree, [13], keys.checkpoint_key()[1])
    assert_tampered(verify(), FORK, "tree sizes 9 and 13 are not consistent")


def test_stored_tree_node_altered(grown: Log, engine: Engine) -> None:
    tamper.sql(engine, 'UPDATE merkle_nodes SET hash = :h WHERE level = 1 AND "index" = 2', h=bytes(32))
    assert_tampered(verify(), TREE_NODE_ALTERED, "node (level 1, index 2) differs")


def test_stored_tree_node_relabelled(backend: str, grown: Log, engine: Engine) -> None:
    """Node 2 of the leaf level given node 1's index, its hash unchanged, the primary key dropped
    first: the level still has as many nodes from 0 to 12, in an order of the same hashes, yet
    node 2 is gone (a proof through it cannot be served)."""
    if backend != "postgresql":
        pytest.skip("SQLite cannot drop a primary key")
    tamper.sql(engine, "ALTER TABLE merkle_nodes DROP CONSTRAINT pk_merkle_nodes")
    tamper.sql(engine, 'UPDATE merkle_nodes SET "index" = 1 WHERE level = 0 AND "index" = 2')
    assert_tampered(verify(), TREE_NODE_ALTERED)


def test_a_pinned_key_that_did_not_sign_rejects_every_checkpoint(grown: Log) -> None:
    from broker.audit.note import format_vkey

    other = format_vkey("test.example/once-only-log", Ed25519PrivateKey.generate().public_key())
    assert_tampered(verify("--key", other), CHECKPOINT_RESIGNED, "re-signed with another key")
