"""The backup manifest: checksums of every file, and a backup that is not what its manifest says
is refused naming the file (a backup directory built by hand here, no database needed)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.backup.manifest import (
    INCOMPLETE,
    MANIFEST,
    BackupError,
    DatabaseRecord,
    LogRecord,
    Manifest,
    RegistryRecord,
    inventory,
    read,
    verify,
    write,
)


def make_backup(root: Path) -> Manifest:
    (root / "keys" / "checkpoint").mkdir(parents=True)
    (root / "database.sqlite3").write_bytes(b"SQLite format 3\x00" + bytes(100))
    (root / "registry.json").write_text("{}\n")
    (root / "keys" / "pseudonym.key").write_bytes(bytes(range(32)))
    (root / "keys" / "manifest.json").write_text('{"format": 1}\n')
    (root / "keys" / "checkpoint" / "kid.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    manifest = Manifest(
        format="once-only-broker backup",
        version=1,
        created_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        broker_version="0.1.0",
        origin="broker.example/once-only",
        database=DatabaseRecord(backend="sqlite", file="database.sqlite3", revisions=["0010"], server_version="3"),
        log=LogRecord(tree_size=0, root_hash=None, checkpoint=None, queued=0),
        keys=[],
        registry=RegistryRecord(
            file="registry.json", evidence_types=0, purposes=0, legal_bases=0, authorities=0, routes=0
        ),
        files=inventory(root),
    )
    write(root, manifest)
    return manifest


def test_an_intact_backup_verifies_and_lists_every_file(tmp_path: Path) -> None:
    manifest = make_backup(tmp_path)
    assert sorted(manifest.files) == [
        "database.sqlite3",
        "keys/checkpoint/kid.pem",
        "keys/manifest.json",
        "keys/pseudonym.key",
        "registry.json",
    ]
    assert verify(tmp_path) == manifest
    # The key store's manifest is restored last: without it a keys directory holds no keys.
    assert manifest.keys_files()[-1] == "manifest.json"
    assert MANIFEST not in manifest.files


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda root: (root / "keys" / "pseudonym.key").write_bytes(bytes(32)), "keys/pseudonym.key has changed"),
        (lambda root: (root / "database.sqlite3").open("ab").write(b"\x00"), "database.sqlite3 has changed"),
        (lambda root: (root / "registry.json").unlink(), "registry.json is missing"),
        (lambda root: (root / "keys" / "extra.pem").write_text("x"), "keys/extra.pem is not in backup.json"),
    ],
)
def test_a_changed_missing_or_extra_file_is_named(tmp_path: Path, change: Callable[[Path], object], named: str) -> None:
    make_backup(tmp_path)
    change(tmp_path)
    with pytest.raises(BackupError, match="the backup is damaged") as refused:
        verify(tmp_path)
    assert named in str(refused.value)


def test_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    make_backup(tmp_path)
    os.symlink("/etc/passwd", tmp_path / "keys" / "callback.key")
    with pytest.raises(BackupError, match="callback.key: not a regular file"):
        verify(tmp_path)


def test_a_backup_without_its_manifest_is_incomplete(tmp_path: Path) -> None:
    make_backup(tmp_path)
    (tmp_path / MANIFEST).unlink()
    (tmp_path / INCOMPLETE).write_text("began\n")
    with pytest.raises(BackupError, match="not a complete backup.*did not finish"):
        read(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"version": 2}, "format version 2, this broker reads version 1"),
        ({"format": "something else"}, "not a backup manifest of this broker"),
        ({"files": {"../outside": {"sha256": "0" * 64, "size": 1}}}, "not a path inside the backup"),
        ({"files": {"/etc/shadow": {"sha256": "0" * 64, "size": 1}}}, "not a path inside the backup"),
    ],
)
def test_a_manifest_that_is_not_ours_or_points_outside_is_refused(
    tmp_path: Path, edit: dict[str, object], message: str
) -> None:
    make_backup(tmp_path)
    path = tmp_path / MANIFEST
    path.write_text(json.dumps({**json.loads(path.read_text()), **edit}))
    with pytest.raises(BackupError, match=message):
        read(tmp_path)


def test_a_manifest_without_the_pseudonym_secret_is_refused(tmp_path: Path) -> None:
    # Its restore would bring back a log whose citizens no broker could recognise again.
    make_backup(tmp_path)
    path = tmp_path / MANIFEST
    document = json.loads(path.read_text())
    del document["files"]["keys/pseudonym.key"]
    path.write_text(json.dumps(document))
    with pytest.raises(BackupError, match="keys/pseudonym.key is not among the files"):
        read(tmp_path)
