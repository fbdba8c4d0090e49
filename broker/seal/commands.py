"""``broker evidence verify`` and ``broker keys rotate``."""

from __future__ import annotations

from pathlib import Path

import click

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


@keys.command("rotate")
def rotate() -> None:
    """Make new checkpoint and sealing keys active; the old ones stay for verification."""
    store = KeyStore(keys_dir())
    try:
        rotation = store.rotate()
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"checkpoint key: {rotation.checkpoint_kid} (retired {rotation.retired_checkpoint_kid})")
    click.echo(f"sealing key: {rotation.sealing_kid} (retired {rotation.retired_sealing_kid})")
