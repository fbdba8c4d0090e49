"""``broker evidence verify``, ``broker keys rotate`` and ``broker keys adopt``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from broker.db.session import Database
from broker.keys import fingerprints
from broker.keys.jwk import certificate_key_id
from broker.keys.store import KeyStore, KeyStoreError
from broker.seal.xades import SealVerificationError, verify_sealed_evidence_detailed
from broker.settings import get_settings


def keys_dir() -> Path:
    return get_settings().keys_dir


@click.group()
def evidence() -> None:
    """Sealed evidence documents."""


@evidence.command("verify")
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def verify(files: tuple[Path, ...]) -> None:
    """Check each FILE's seal against the broker's certificates (active and retired).

    Exits 0 only if every file carries a valid seal.
    """
    store = KeyStore(keys_dir())
    if not store.initialised:
        # Generating fresh keys here would only make every seal look foreign.
        raise click.ClickException(f"no broker keys in {store.keys_dir}")
    try:
        certificates = [info.certificate for info in store.sealing_certificates()]
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    all_valid = True
    for path in files:
        try:
            result = verify_sealed_evidence_detailed(path.read_bytes(), certificates)
        except OSError as exc:
            click.echo(f"{path}: cannot read: {exc.strerror or exc}")
            all_valid = False
        except SealVerificationError as exc:
            click.echo(f"{path}: INVALID: {exc}")
            all_valid = False
        else:
            subject = result.certificate.subject.rfc4514_string()
            click.echo(f"{path}: ok (signed by {subject}, key {certificate_key_id(result.certificate)})")
    if not all_valid:
        raise SystemExit(1)


@click.group()
def keys() -> None:
    """The broker's signing keys."""


@contextmanager
def _log_database() -> Iterator[Database]:
    """The database whose log the keys belong to (BROKER_DATABASE_URL), checked as `serve` checks it."""
    from broker import preflight

    database = Database(preflight.database(get_settings()))
    try:
        yield database
    finally:
        database.dispose()


@keys.command("rotate")
def rotate() -> None:
    """Make new checkpoint and sealing keys active; the old ones stay for verification.

    The new checkpoint key is recorded in the database as one of the log's keys; a logged step."""
    from broker.audit.service import EntryFacts, record
    from broker.clients.service import CLI_ACTOR

    store = KeyStore(keys_dir())
    with _log_database() as database:
        # Rotating a directory that is not this log's would record foreign keys as the log's own.
        with database.unit_of_work() as session:
            fingerprints.check(session, store, datetime.now(UTC))
        try:
            rotation = store.rotate()
        except KeyStoreError as exc:
            raise click.ClickException(str(exc)) from exc
        try:
            with database.unit_of_work() as session:
                now = datetime.now(UTC)
                fingerprints.record_rotation(session, store, now)
                change = f"keys/{rotation.checkpoint_kid},{rotation.sealing_kid}"
                record(session, EntryFacts(event="keys_rotated", time=now, actor=CLI_ACTOR, change=change))
        except SQLAlchemyError as exc:
            raise click.ClickException(
                f"the keys were rotated, but the database did not record the new checkpoint key "
                f"({type(exc).__name__}): the broker refuses to start until `broker keys adopt --yes` records it"
            ) from exc
    click.echo(f"checkpoint key: {rotation.checkpoint_kid} (retired {rotation.retired_checkpoint_kid})")
    click.echo(f"sealing key: {rotation.sealing_kid} (retired {rotation.retired_sealing_kid})")


@keys.command("adopt")
@click.option("--yes", is_flag=True, help="Confirm: these are the log's keys from now on.")
def adopt(yes: bool) -> None:
    """Record the keys in BROKER_KEYS_DIR as the keys of the database's log (made now if the
    directory holds none); a logged step. For keys restored from elsewhere, or a new start on purpose:
    checkpoints signed before stay verifiable only with the keys that signed them."""
    from broker.audit.service import EntryFacts, record
    from broker.clients.service import CLI_ACTOR

    store = KeyStore(keys_dir())
    if not yes:
        raise click.ClickException(
            f"this makes the keys in {store.keys_dir} (new ones if it holds none) the keys of the log in "
            "BROKER_DATABASE_URL, and citizens get new pseudonyms if the secret differs: repeat with --yes"
        )
    now = datetime.now(UTC)
    with _log_database() as database, database.unit_of_work() as session:
        recorded = fingerprints.adopt(session, store, now)
        if recorded:
            active, _ = store.checkpoint_key()
            record(session, EntryFacts(event="keys_adopted", time=now, actor=CLI_ACTOR, change=f"keys/{active.kid}"))
    for p in recorded:
        click.echo(f"recorded {p.purpose} {p.key_id or ''} (fingerprint {p.fingerprint})".replace("  ", " "))
    if not recorded:
        click.echo(f"the keys in {store.keys_dir} already are the log's keys: nothing recorded")
