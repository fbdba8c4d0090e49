"""``broker backup create | verify | restore`` (what a backup holds: broker/backup/manifest.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy import make_url

from broker.backup import service
from broker.backup.manifest import BackupError, Manifest, verify
from broker.settings import get_settings

pg_bin_option = click.option(
    "--pg-bin",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory of pg_dump and pg_restore (default: PATH); of the server's major version or newer.",
)
directory_argument = click.argument("directory", type=click.Path(path_type=Path))


@click.group()
def backup() -> None:
    """Back up the database, the keys and the registry; verify a backup; restore it elsewhere."""


@backup.command("create", short_help="Back up the database, the keys and the registry.")
@directory_argument
@pg_bin_option
def create(directory: Path, pg_bin: Path | None) -> None:
    """Back up into DIRECTORY (new or empty) while the broker serves: the database (SQLite's
    online backup, PostgreSQL's pg_dump), BROKER_KEYS_DIR and the registry; backup.json, with
    the SHA-256 of every file, is written last."""
    try:
        manifest = service.create(get_settings(), directory, pg_bin=pg_bin, now=datetime.now(UTC))
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"backed up to {directory}:")
    _describe(manifest)


@backup.command("verify", short_help="Check a backup's files against its backup.json.")
@directory_argument
def verify_command(directory: Path) -> None:
    """Check that every file of the backup in DIRECTORY is there unchanged; exit 0 only then."""
    try:
        manifest = verify(directory)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"backup intact: {len(manifest.files)} files as backup.json lists them")
    _describe(manifest)


@backup.command("restore", short_help="Restore a backup into an empty database and keys directory.")
@directory_argument
@pg_bin_option
def restore(directory: Path, pg_bin: Path | None) -> None:
    """Restore the backup in DIRECTORY into the database of BROKER_DATABASE_URL (a new SQLite
    file, or an empty PostgreSQL database) and an empty BROKER_KEYS_DIR, then check both as
    `broker serve` does."""
    settings = get_settings()
    try:
        restored = service.restore(settings, directory, pg_bin=pg_bin, now=datetime.now(UTC))
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    manifest = restored.manifest
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    click.echo(f"restored the backup of {_moment(manifest.created_at)} into {shown} and {settings.keys_dir}:")
    _describe(manifest)
    click.echo("logged: the log's next entry (`restored`) names this backup")
    if restored.checked:
        click.echo("checked: the database is at this broker's revision and the keys are its log's keys")
        click.echo("next: `broker audit verify`, then start the broker")
    else:
        click.echo(f"next: `broker db upgrade` (the backup is at revision {', '.join(manifest.database.revisions)}),")
        click.echo("then `broker audit verify`, then start the broker")


def _describe(manifest: Manifest) -> None:
    db, log, registry = manifest.database, manifest.log, manifest.registry
    size = manifest.files[db.file].size
    revisions = ", ".join(db.revisions)
    click.echo(f"  database: {db.backend} {db.server_version}, revision {revisions} ({db.file}, {size} bytes)")
    root = log.root_hash or "none (no signed checkpoint)"
    click.echo(f"  log: tree size {log.tree_size}, checkpoint root {root}, {log.queued} entries queued")
    checkpoint_keys = sum(1 for key in manifest.keys if key.purpose == "checkpoint")
    click.echo(f"  keys: {checkpoint_keys} checkpoint key(s) and the pseudonym secret (fingerprints in backup.json)")
    click.echo(
        f"  registry: {registry.evidence_types} evidence types, {registry.purposes} purposes, "
        f"{registry.legal_bases} legal bases, {registry.authorities} authorities, {registry.routes} routes "
        f"({registry.file})"
    )


def _moment(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
