"""``broker audit …``: integrate the log, verify it, export it, verify an export offline, find pseudonyms.

Exit codes: 0 when the log (or bundle) is intact, 1 when verification found tampering or could
not prove what was asked, 2 for usage errors (click's convention).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy.orm import Session

from broker.audit.auditor import checkpoint_verifiers, export_database, verify_database
from broker.audit.bundle import BundleError, BundleVerification, read_verifiers, verify_bundle
from broker.audit.integrator import DEFAULT_BATCH_SIZE, integrate_all
from broker.audit.note import Verifier
from broker.audit.verify import Report
from broker.keys.pseudonym import subject_pseudonym
from broker.keys.store import KeyStore
from broker.settings import Settings, get_settings


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _database(settings: Settings) -> Iterator[Session]:
    """One transaction against the configured database; the command boundary commits."""
    from broker.db.migrate import command_database

    with command_database(settings) as database, database.unit_of_work() as session:
        yield session


def _keys(settings: Settings) -> KeyStore:
    return KeyStore(settings.keys_dir, origin=settings.origin)


def _verifiers(settings: Settings, vkeys: Sequence[str]) -> list[Verifier]:
    if vkeys:
        try:
            return read_verifiers(vkeys)
        except BundleError as error:
            raise click.BadParameter(str(error), param_hint="--key") from None
    return checkpoint_verifiers(_keys(settings), settings.origin)


def _read_trusted(files: Sequence[Path]) -> list[str]:
    notes = []
    for file in files:
        try:
            notes.append(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise click.BadParameter(f"{file}: {error}", param_hint="--trusted-checkpoint") from None
    return notes


def _print_report(report: Report, what: str) -> None:
    for fact in report.facts:
        click.echo(f"ok: {fact}")
    latest = report.latest
    state = f"latest signed checkpoint: tree size {latest.size}" if latest else "no signed checkpoint"
    if report.intact:
        click.echo(f"{what} intact: {report.entries} entries, {len(report.checkpoints)} checkpoints, {state}")
        return
    for finding in report.findings:
        click.echo(str(finding))
    click.echo(f"{what} NOT intact: {len(report.findings)} problem(s) found ({report.entries} entries, {state})")


trusted_option = click.option(
    "--trusted-checkpoint",
    "trusted",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A signed checkpoint saved earlier; the log must extend it (repeatable).",
)
key_option = click.option(
    "--key",
    "vkeys",
    multiple=True,
    metavar="VKEY",
    help="A checkpoint verifier key (name+id+base64) to trust instead of the default (repeatable).",
)


@click.group()
def audit() -> None:
    """The provenance log: integrate, verify, export, verify exports offline, find pseudonyms."""


@audit.command()
@click.option("--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True, type=click.IntRange(min=1))
def integrate(batch_size: int) -> None:
    """Give queued entries their log indices, extend the tree and sign a checkpoint."""
    from broker.db.migrate import command_database
    from broker.keys import fingerprints

    settings = get_settings()
    keys = _keys(settings)
    with command_database(settings) as database:
        # Only the log's own keys sign its checkpoints: an empty or foreign keys directory would
        # make new keys and fork the log. Refused as `broker serve` refuses it (KeysMismatch).
        with database.unit_of_work() as session:
            fingerprints.check(session, keys, _now())
        result = integrate_all(database.sessions, keys, settings.origin, _now, batch_size=batch_size)
    click.echo(f"integrated {result.integrated} entries; tree size {result.tree_size}")


@audit.command()
def checkpoint() -> None:
    """Print the latest signed checkpoint (save it to check later exports against it)."""
    from broker.audit import repository

    with _database(get_settings()) as session:
        latest = repository.latest_checkpoint(session)
    if latest is None:
        raise click.ClickException("the log has no signed checkpoint yet")
    click.echo(latest.note, nl=False)


@audit.command()
@trusted_option
@key_option
def verify(trusted: tuple[Path, ...], vkeys: tuple[str, ...]) -> None:
    """Recompute the whole log from the database and check every checkpoint; exit 0 only if intact."""
    settings = get_settings()
    verifiers = _verifiers(settings, vkeys)
    notes = _read_trusted(trusted)
    with _database(settings) as session:
        report = verify_database(session, verifiers, settings.origin, notes)
    _print_report(report, "log")
    if not report.intact:
        raise SystemExit(1)


@audit.command()
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Directory, .zip or .tar[.gz|.xz] to create."
)
def export(out: Path) -> None:
    """Export entries, checkpoints, keys and consistency proofs for offline verification."""
    settings = get_settings()
    verifiers = checkpoint_verifiers(_keys(settings), settings.origin)
    try:
        with _database(settings) as session:
            summary = export_database(session, verifiers, settings.origin, out, _now())
    except BundleError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"exported {summary.tree_size} entries, {summary.checkpoints} checkpoints and {summary.keys} "
        f"verifier key(s) to {summary.path}"
    )


@audit.command("verify-bundle")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@trusted_option
@key_option
@click.option("--exchange", "exchanges", multiple=True, metavar="ID", help="Prove this exchange is in the log.")
def verify_bundle_command(
    bundle: Path, trusted: tuple[Path, ...], vkeys: tuple[str, ...], exchanges: tuple[str, ...]
) -> None:
    """Verify an export BUNDLE offline; exit 0 only if intact (and every --exchange is proven included)."""
    notes = _read_trusted(trusted)
    try:
        result = verify_bundle(bundle, vkeys=vkeys, trusted=notes, exchanges=exchanges)
    except BundleError as error:
        raise click.ClickException(str(error)) from None
    if result.keys_from_bundle:
        anchor = "" if notes else " and no --trusted-checkpoint"
        click.echo(f"warning: verifier keys taken from the bundle itself{anchor}; pass --key to pin them")
    _print_report(result.report, "bundle")
    _print_exchanges(result)
    if not result.intact:
        raise SystemExit(1)


def _print_exchanges(result: BundleVerification) -> None:
    for exchange, found in result.exchanges.items():
        if not found:
            click.echo(f"exchange {exchange}: NOT FOUND in the log")
            continue
        for item in found:
            if item.error:
                click.echo(f"exchange {exchange}: entry {item.index} ({item.event}): NOT PROVEN: {item.error}")
            else:
                click.echo(
                    f"exchange {exchange}: entry {item.index} ({item.event}) is included in the signed "
                    f"checkpoint for tree size {item.tree_size} (inclusion proof of {item.proof_length} "
                    f"hashes verified)"
                )


@audit.command()
@click.option("--idnr", default=None, help="Identifikationsnummer (11 digits).")
@click.option("--family-name", default=None)
@click.option("--given-name", default=None)
@click.option("--birth-date", default=None, metavar="YYYY-MM-DD")
def pseudonym(idnr: str | None, family_name: str | None, given_name: str | None, birth_date: str | None) -> None:
    """Print the subject pseudonym(s) to filter log entries by (GET /v1/audit/entries?subject=…).

    Requests with an IDNr and requests with a name and birth date give the same person two
    different pseudonyms; give both to find all entries about them.
    """
    name_given = any(v is not None for v in (family_name, given_name, birth_date))
    if idnr is None and not name_given:
        raise click.UsageError("give --idnr, or --family-name, --given-name and --birth-date (or both)")
    if name_given and None in (family_name, given_name, birth_date):
        raise click.UsageError("--family-name, --given-name and --birth-date go together")
    settings = get_settings()
    store = _keys(settings)
    # Documented key-store layout; a missing secret must not be generated here, since a fresh
    # one would produce pseudonyms that match nothing in the log.
    if not (store.keys_dir / "pseudonym.key").is_file():
        raise click.ClickException(f"no pseudonym secret in {store.keys_dir} (set BROKER_KEYS_DIR)")
    secret = store.pseudonym_secret()
    try:
        if idnr is not None:
            click.echo(f"{subject_pseudonym(secret, idnr=idnr)}  (idnr)")
        if name_given:
            value = subject_pseudonym(secret, family_name=family_name, given_name=given_name, birth_date=birth_date)
            click.echo(f"{value}  (name and birth date)")
    except ValueError as error:
        raise click.UsageError(str(error)) from None
