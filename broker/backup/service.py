"""Making a backup (database, keys, registry; layout in broker/backup/manifest.py) and restoring it.

The database and the keys directory belong together (broker/keys/fingerprints.py): a database
restored without its keys is a log nobody can extend without forking it, and a lost
``pseudonym.key`` cuts every citizen off from their entries. So a backup holds both, checked
against each other as a start checks them, and a restore writes both into fresh places and
runs the start's checks there.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session

from broker import preflight
from broker.audit import repository as log_repository
from broker.audit.service import EntryFacts, record
from broker.backup import database
from broker.backup.manifest import (
    FORMAT,
    INCOMPLETE,
    MANIFEST,
    VERSION,
    Backend,
    BackupError,
    DatabaseRecord,
    KeyRecord,
    LogRecord,
    Manifest,
    RegistryRecord,
    inventory,
    verify,
    write,
)
from broker.clients.service import CLI_ACTOR
from broker.db.migrate import alembic_config, current_revisions, head_revisions
from broker.db.session import Database, configured_engine
from broker.keys import fingerprints
from broker.keys import repository as keys_repository
from broker.keys.files import create_exclusive, ensure_private_dir, fsync_path
from broker.keys.store import KeyStore
from broker.registry import repository as registry_repository
from broker.settings import Settings

KEYS = "keys"
REGISTRY_FILE = "registry.json"


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    # False where the restored PostgreSQL database is older than this broker: the start's checks
    # need `broker db upgrade` first.
    checked: bool


def create(settings: Settings, directory: Path, *, pg_bin: Path | None, now: datetime) -> Manifest:
    """Back up the database of ``BROKER_DATABASE_URL``, ``BROKER_KEYS_DIR`` and the registry into
    ``directory`` (new or empty), while the broker serves."""
    backend = database.backend_of(settings.database_url)
    store = KeyStore(settings.keys_dir, origin=settings.origin)
    if not store.initialised or not store.has_pseudonym_secret:
        # A started broker has both; a backup without them could never be restored.
        raise BackupError(
            f"BROKER_KEYS_DIR {settings.keys_dir} holds no keys (manifest.json, pseudonym.key): "
            "point it at the broker's keys directory"
        )
    made = _claim(directory, now)
    try:
        manifest = _write(settings, backend, store, directory, pg_bin, now)
    except BaseException:
        _discard(directory, made)
        raise
    return manifest


def restore(settings: Settings, directory: Path, *, pg_bin: Path | None, now: datetime) -> Restored:
    """Restore the backup in ``directory`` into the (empty) database of ``BROKER_DATABASE_URL``
    and the (empty) ``BROKER_KEYS_DIR``, then check them as a start does."""
    manifest = verify(directory)
    backend = database.backend_of(settings.database_url)
    if manifest.database.backend != backend:
        raise BackupError(
            f"the backup holds a {manifest.database.backend} database, BROKER_DATABASE_URL names a {backend} one: "
            "restore into the kind of database the backup came from"
        )
    if manifest.origin != settings.origin:
        raise BackupError(
            f"the backup's log is named {manifest.origin!r}, BROKER_ORIGIN is {settings.origin!r}: "
            f"set BROKER_ORIGIN={manifest.origin} (checkpoints verify only under their log's name)"
        )
    unknown = sorted(set(manifest.database.revisions) - _known_revisions())
    if unknown:
        raise BackupError(
            f"the backup's database is at revision {', '.join(unknown)}, which this broker does not know: "
            f"restore with the broker version that made it ({manifest.broker_version or 'unknown'})"
        )
    preflight.parse_database_url(settings)  # a SQLite file in a missing directory is refused as at start
    database.check_empty(settings.database_url)
    keys_dir = settings.keys_dir
    if keys_dir.exists() and (not keys_dir.is_dir() or any(keys_dir.iterdir())):
        raise BackupError(
            f"BROKER_KEYS_DIR {keys_dir} is not empty: a restore writes the keys into a new or empty directory only"
        )
    # The database first: it is the part that may fail (pg_restore), and fails whole.
    database.restore(settings.database_url, directory / manifest.database.file, pg_bin)
    _restore_keys(directory / KEYS, keys_dir, manifest)
    checked = backend == "sqlite" or frozenset(manifest.database.revisions) == head_revisions()
    if checked:
        _check_restored(settings, manifest, now)
    _record_restore(settings, manifest, now)
    return Restored(manifest, checked)


def _record_restore(settings: Settings, manifest: Manifest, now: datetime) -> None:
    """Log the restore (``restored``, integrated at the broker's next start): the log itself then
    says from which backup it was restored, and so why entries recorded after it are missing.
    The log's table is the same at every revision this broker knows, so an older database (which
    `broker db upgrade` brings up to date afterwards) takes the entry too."""
    restored = Database(configured_engine(settings))
    try:
        with restored.unit_of_work() as session:
            change = f"backup/{manifest.created_at.isoformat(timespec='seconds').replace('+00:00', 'Z')}"
            record(session, EntryFacts(event="restored", time=now, actor=CLI_ACTOR, change=change))
    finally:
        restored.dispose()


# --- create ------------------------------------------------------------------------------------


def _claim(directory: Path, now: datetime) -> bool:
    """Make ``directory`` this backup's; True if it was made here (so a failure removes it)."""
    try:
        directory.mkdir(mode=0o700, parents=True)
        made = True
    except FileExistsError:
        made = False
    if not made and (not directory.is_dir() or any(directory.iterdir())):
        raise BackupError(f"{directory} exists and is not an empty directory: a backup goes into a new one")
    note = f"`broker backup create` began at {now.isoformat()} (process {os.getpid()}); done once {MANIFEST} exists\n"
    # Exclusive: of two backups started into one empty directory, one goes on.
    if not create_exclusive(directory / INCOMPLETE, note.encode("utf-8")):
        raise BackupError(f"{directory} is being written by another `broker backup create`")
    return made


def _discard(directory: Path, made: bool) -> None:
    """Remove what a failed backup wrote (the directory was new or empty when it began)."""
    if made:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _write(
    settings: Settings, backend: Backend, store: KeyStore, directory: Path, pg_bin: Path | None, now: datetime
) -> Manifest:
    with database.snapshot(settings.database_url, directory, pg_bin) as copied:
        session = copied.session
        # The keys after the database: a key that signed anything in the copy existed before it
        # was taken, and keys are never deleted, so the copy of the keys holds it.
        _copy_keys(store.keys_dir, directory / KEYS)
        keys = KeyStore(directory / KEYS, origin=settings.origin)
        _check_keys(session, keys, settings.keys_dir, now)
        document = registry_repository.read_document(session)
        exported = json.dumps(document.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
        create_exclusive(directory / REGISTRY_FILE, exported.encode("utf-8"))
        latest = log_repository.latest_checkpoint(session)
        revisions = sorted(current_revisions(session.connection()))
        queued = log_repository.queued_count(session)
        database_record = DatabaseRecord(
            backend=backend,
            file=copied.file,
            revisions=revisions,
            server_version=copied.server_version,
        )
    key_prints = fingerprints.of_store(keys)
    (directory / INCOMPLETE).unlink()
    manifest = Manifest(
        format=FORMAT,
        version=VERSION,
        created_at=now,
        broker_version=_broker_version(),
        origin=settings.origin,
        database=database_record,
        log=LogRecord(
            tree_size=latest.tree_size if latest else 0,
            root_hash=latest.root_hash.hex() if latest else None,
            checkpoint=latest.note if latest else None,
            queued=queued,
        ),
        keys=[KeyRecord(purpose=p.purpose, fingerprint=p.fingerprint, key_id=p.key_id) for p in key_prints],
        registry=RegistryRecord(
            file=REGISTRY_FILE,
            evidence_types=len(document.evidence_types),
            purposes=len(document.purposes),
            legal_bases=len(document.legal_bases),
            authorities=len(document.authorities),
            routes=len(document.routes),
        ),
        files=inventory(directory),
    )
    # Last: from here on the backup is complete (backup.json is what restore and verify look for).
    write(directory, manifest)
    fsync_path(directory.parent)
    return manifest


def _copy_keys(source: Path, target: Path) -> None:
    ensure_private_dir(target)
    # The key store's manifest is read first: every key it names was published before it
    # (broker/keys/store.py), so the copy is whole even while `broker keys rotate` runs.
    manifest = (source / "manifest.json").read_bytes()
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        # Dot names are the store's lock and half-written temporary files, no keys.
        if relative.name.startswith(".") or relative == Path("manifest.json") or not path.is_file():
            continue
        ensure_private_dir((target / relative).parent)
        create_exclusive(target / relative, path.read_bytes())
    create_exclusive(target / "manifest.json", manifest)


def _check_keys(session: Session, keys: KeyStore, source: Path, now: datetime) -> None:
    """The copied keys are the copied log's, as a start would check them."""
    recorded = {row.purpose for row in keys_repository.recorded(session)}
    # With both recorded, the check only reads. A database whose broker never started records
    # nothing yet: its first start (or the restore) records the keys restored with it.
    if not {fingerprints.CHECKPOINT, fingerprints.PSEUDONYM} <= recorded:
        return
    try:
        fingerprints.check(session, keys, now)
    except fingerprints.KeysMismatch:
        raise BackupError(
            f"BROKER_KEYS_DIR {source} does not hold the keys of this database's log, so the backup could not "
            "be restored; point BROKER_KEYS_DIR at the broker's keys (if `broker keys rotate` ran meanwhile, "
            "back up again)"
        ) from None


def _broker_version() -> str | None:
    try:
        return version("once-only-broker")
    except PackageNotFoundError:
        return None


# --- restore -----------------------------------------------------------------------------------


def _known_revisions() -> frozenset[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(revision.revision for revision in script.walk_revisions())


def _restore_keys(source: Path, target: Path, manifest: Manifest) -> None:
    ensure_private_dir(target)
    for name in manifest.keys_files():
        ensure_private_dir((target / name).parent)
        create_exclusive(target / name, (source / name).read_bytes())


def _check_restored(settings: Settings, manifest: Manifest, now: datetime) -> None:
    """The start's checks (revision, keys against the log's fingerprints), and the log is the backup's."""
    restored = Database(preflight.database(settings))
    try:
        preflight.keys(restored, KeyStore(settings.keys_dir, origin=settings.origin), now)
        with restored.read() as session:
            latest = log_repository.latest_checkpoint(session)
    finally:
        restored.dispose()
    found = (latest.tree_size, latest.root_hash.hex()) if latest else (0, None)
    if found != (manifest.log.tree_size, manifest.log.root_hash):
        raise BackupError(
            f"the restored log's latest checkpoint (tree size {found[0]}) is not the backup's "
            f"(tree size {manifest.log.tree_size}): the database restored is not the one backed up"
        )
