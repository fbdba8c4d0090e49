"""What a backup directory holds, and the check that it still holds it.

Layout of a backup (``broker backup create DIR``)::

    backup.json          this manifest: what was backed up, from which log, and the SHA-256 of
                         every other file; written last, so a backup without it is incomplete
    database.sqlite3     SQLite: an online backup of the database (one file, no WAL beside it)
    database.pgdump      PostgreSQL: ``pg_dump --format=custom`` of the database
    keys/                the keys directory (layout: broker/keys/store.py), 0700/0600
    registry.json        the registry at the time of the backup, for people and diffs: the
                         database holds the registry the broker uses

The checksums find a corrupted or changed file; they are no signature: whoever can write a
backup can rewrite its manifest too (and can read the keys in it), so backups belong on storage
only the operators reach.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from broker.keys.files import create_exclusive

MANIFEST = "backup.json"
FORMAT: Final = "once-only-broker backup"
VERSION: Final = 1
# What `create` writes first and removes just before the manifest: it keeps a second `create`
# out of the directory and tells a reader that this backup never finished.
INCOMPLETE = "backup.incomplete"

Backend = Literal["sqlite", "postgresql"]


class BackupError(Exception):
    """A backup cannot be made, read or restored; the message is one line for an operator."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileRecord(_Record):
    sha256: str
    size: int


class DatabaseRecord(_Record):
    backend: Backend
    file: str
    # The alembic revision(s) the database was at.
    revisions: list[str]
    server_version: str


class LogRecord(_Record):
    """The log as of the backup: its latest signed checkpoint, and the entries not yet in it."""

    tree_size: int
    root_hash: str | None
    checkpoint: str | None
    queued: int


class KeyRecord(_Record):
    """A fingerprint of a key in the backup (broker/keys/fingerprints.py), never the key: the
    checkpoint keys, the active one first, then the pseudonym secret."""

    purpose: str
    fingerprint: str
    key_id: str | None


class RegistryRecord(_Record):
    file: str
    evidence_types: int
    purposes: int
    legal_bases: int
    authorities: int
    routes: int


class Manifest(_Record):
    format: Literal["once-only-broker backup"]
    version: Literal[1]
    created_at: datetime
    broker_version: str | None
    # The log's name (BROKER_ORIGIN): its checkpoints verify only under this name.
    origin: str
    database: DatabaseRecord
    log: LogRecord
    keys: list[KeyRecord]
    registry: RegistryRecord
    files: dict[str, FileRecord]

    @model_validator(mode="after")
    def _files_stay_inside(self) -> Manifest:
        # A restore writes the files the manifest names: none may point outside the backup.
        for name in self.files:
            check_relative(name)
        # A backup without the keys' manifest or the pseudonym secret would restore a log that no
        # broker may extend: create never writes one.
        for named in (self.database.file, self.registry.file, "keys/manifest.json", "keys/pseudonym.key"):
            if named not in self.files:
                raise ValueError(f"{named} is not among the files")
        return self

    def keys_files(self) -> list[str]:
        """The keys directory's files, relative to it; the key store's manifest last, since a
        keys directory without its manifest is one the broker treats as holding no keys."""
        names = [name.removeprefix("keys/") for name in self.files if name.startswith("keys/")]
        return sorted(names, key=lambda name: (name == "manifest.json", name))


def check_relative(name: str) -> None:
    path = PurePosixPath(name)
    if not name or "\\" in name or path.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"{name!r} is not a path inside the backup")


def checksum(path: Path) -> FileRecord:
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return FileRecord(sha256=digest, size=path.stat().st_size)


def inventory(root: Path) -> dict[str, FileRecord]:
    """Every file under ``root`` but the manifest, by its path relative to ``root``.

    Only regular files and directories: a symbolic link in a backup would make a restore copy
    whatever it points at into the keys directory."""
    found: dict[str, FileRecord] = {}
    for directory, subdirectories, files in os.walk(root):
        for name in sorted([*subdirectories, *files]):
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise BackupError(f"{root / relative}: not a regular file; a backup holds only files and directories")
            if relative != MANIFEST:
                found[relative] = checksum(path)
    return dict(sorted(found.items()))


def write(root: Path, manifest: Manifest) -> None:
    if not create_exclusive(root / MANIFEST, (manifest.model_dump_json(indent=2) + "\n").encode("utf-8")):
        raise BackupError(f"{root / MANIFEST} exists already")


def read(root: Path) -> Manifest:
    path = root / MANIFEST
    if not root.is_dir():
        raise BackupError(f"{root} is not a directory")
    if not path.is_file():
        unfinished = " (a `broker backup create` that did not finish)" if (root / INCOMPLETE).exists() else ""
        raise BackupError(f"{root} is not a complete backup: it has no {MANIFEST}{unfinished}")
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise BackupError(f"{path}: cannot read it: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BackupError(f"{path}: not a backup manifest of this broker")
    if document.get("version") != VERSION:
        raise BackupError(
            f"{path}: backup format version {document.get('version')!r}, this broker reads version {VERSION}: "
            "restore with the broker version that made the backup"
        )
    try:
        return Manifest.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BackupError(f"{path}: not a backup manifest of this broker ({where}: {first['msg']})") from None


def verify(root: Path) -> Manifest:
    """The manifest, once every file it names is there unchanged and no other file is."""
    manifest = read(root)
    present = inventory(root)
    problems = []
    for name, expected in manifest.files.items():
        found = present.get(name)
        if found is None:
            problems.append(f"{name} is missing")
        elif found != expected:
            problems.append(f"{name} has changed (SHA-256 or size differs from {MANIFEST})")
    problems += [f"{name} is not in {MANIFEST}" for name in present if name not in manifest.files]
    if problems:
        raise BackupError(f"{root}: the backup is damaged: {'; '.join(problems)}")
    return manifest
