"""``broker consent verify FILE``: check a consent artefact offline.

Against a JWKS file (``--jwks``, e.g. saved from ``/.well-known/broker-keys``), or else the
checkpoint keys of the local key directory (``BROKER_KEYS_DIR``). Exit 0 when the artefact is
valid, 1 (one line on stderr, no traceback) when it is not or cannot be checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from broker.consent.artefact import ArtefactError, checkpoint_jwks, verify
from broker.keys.store import KeyStore, KeyStoreError
from broker.settings import get_settings


@click.group()
def consent() -> None:
    """Consent artefacts the citizen granted."""


@consent.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--jwks",
    "jwks_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A JWKS file (e.g. saved from /.well-known/broker-keys); default: the local key directory.",
)
def verify_command(file: Path, jwks_file: Path | None) -> None:
    """Check FILE (a compact JWS) against the broker's keys and print what it grants."""
    token = _read(file)
    jwks = _jwks_from_file(jwks_file) if jwks_file is not None else _jwks_from_keys_dir()
    try:
        claims = verify(token, jwks)
    except ArtefactError as error:
        raise click.ClickException(f"{file}: {error}") from None
    uses = "unlimited" if claims["max_uses"] is None else f"at most {claims['max_uses']}"
    click.echo(f"consent:        {claims['jti']}")
    click.echo(f"issuer:         {claims['iss']}")
    click.echo(f"requester:      {claims['requester']}")
    click.echo(f"subject:        {claims['sub']}")
    click.echo(f"evidence types: {', '.join(claims['evidence_types'])}")
    click.echo(f"purpose:        {claims['purpose']}")
    click.echo(f"legal basis:    {claims['legal_basis'] or '-'}")
    click.echo(f"valid:          {claims['valid_from']} until {claims['valid_until']}")
    click.echo(f"uses:           {uses}")
    # What a file cannot show: a revocation after the grant is known to the broker only.
    click.echo("Consent artefact valid (signed by the broker; a later revocation is known to the broker only)")


# An artefact is a few KiB, a JWKS a few keys: anything much larger is not one (and a device
# such as /dev/zero must not be read until memory runs out).
MAX_ARTEFACT_BYTES = 64 * 1024
MAX_JWKS_BYTES = 1024 * 1024


def _bounded(file: Path, limit: int) -> bytes:
    """The file's bytes: a regular file of at most ``limit`` bytes, or a one-line refusal."""
    if file.exists() and not file.is_file():
        raise click.ClickException(f"{file}: not a regular file")
    try:
        with file.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise click.ClickException(f"{file}: cannot read: {error.strerror or error}") from None
    if len(data) > limit:
        raise click.ClickException(f"{file}: larger than {limit} bytes; not a consent artefact or key set")
    return data


def _read(file: Path) -> str:
    try:
        return _bounded(file, MAX_ARTEFACT_BYTES).decode("ascii")
    except UnicodeDecodeError:
        raise click.ClickException(f"{file}: not a compact JWS (ASCII text)") from None


def _jwks_from_file(file: Path) -> dict[str, Any]:
    try:
        jwks = json.loads(_bounded(file, MAX_JWKS_BYTES))
    except (ValueError, RecursionError):
        raise click.ClickException(f"{file}: not a JSON document") from None
    if not isinstance(jwks, dict):
        raise click.ClickException(f'{file}: not a JWKS (a JSON object with "keys")')
    return jwks


def _jwks_from_keys_dir() -> dict[str, Any]:
    settings = get_settings()
    store = KeyStore(settings.keys_dir, origin=settings.origin)
    if not store.initialised:
        # Generating fresh keys here would only make every artefact look foreign.
        raise click.ClickException(f"no broker keys in {store.keys_dir} (give --jwks FILE)")
    try:
        return checkpoint_jwks(store)
    except KeyStoreError as error:
        raise click.ClickException(str(error)) from None
