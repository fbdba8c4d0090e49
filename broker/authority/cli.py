"""``broker-authority``: the reference authority server, a process of its own.

    broker-authority init --database URL                  # its own register database, demo data
    broker-authority public-key --key FILE                # its answer-signing key (made if missing)
    broker-authority serve --authority ID --broker-key PEM …   # push mode: POST /evidence
    broker-authority pull --authority ID --broker URL …       # pull mode: polls the broker

Options also come from environment variables (``AUTHORITY_ID``, ``AUTHORITY_DATABASE_URL``,
``AUTHORITY_KEY_FILE``, ``AUTHORITY_BROKER_URL``, ``AUTHORITY_TOKEN``, ``AUTHORITY_BROKER_KEY``,
``AUTHORITY_BROKER_JWKS``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Any

import click
import httpx

from adapters.signing import load_public_key, public_key_pem
from broker.authority.core import ReferenceAuthority, load_or_create_key, register_engine
from broker.registry.schemas import AuthoritySpec

_ID = click.option("--authority", "authority_id", envvar="AUTHORITY_ID", required=True, help="Authority id.")
_DB = click.option(
    "--database", envvar="AUTHORITY_DATABASE_URL", default="sqlite:///var/authority.db", show_default=True
)
_KEY = click.option(
    "--key", "key_file", envvar="AUTHORITY_KEY_FILE", default="var/authority-key.pem", show_default=True,
    type=click.Path(dir_okay=False, path_type=Path), help="Ed25519 private key (PEM) the answers are signed with.",
)  # fmt: skip
_REGISTER = click.option(
    "--register", type=click.Choice(["melderegister", "standesamt", "gewerberegister"]), default=None,
    help="Register kind (default: from the demo registry entry of the authority).",
)  # fmt: skip
_NAME = click.option("--name", default=None, help="Authority name (default: from the demo registry).")
_ARS = click.option("--ars", default=None, help="Regionalschlüssel (default: from the demo registry).")


def _spec(authority_id: str, register: str | None, name: str | None, ars: str | None) -> AuthoritySpec:
    from broker.demo.seed import DEMO_REGISTRY
    from broker.registry.service import read_toml

    known = {a.id: a for a in read_toml(DEMO_REGISTRY).authorities}.get(authority_id)
    if known is None and not (register and name and ars):
        raise click.ClickException(f"{authority_id} is not in the demo registry: give --register, --name and --ars")
    data: dict[str, Any] = known.model_dump() if known else {"id": authority_id}
    data.update({k: v for k, v in (("register_kind", register), ("name", name), ("ars", ars)) if v})
    data.update(binding="in_process", endpoint_url=None, public_key_pem=None)
    return AuthoritySpec.model_validate(data)


@click.group()
def main() -> None:
    """Reference authority: a synthetic register answering the broker in push or pull mode."""


@main.command()
@_DB
def init(database: str) -> None:
    """Create the register tables in DATABASE and fill them with the demo registers (deterministic)."""
    from broker.db.session import make_session_factory, unit_of_work
    from broker.demo.seed import DEMO_REGISTRY, seed_registers
    from broker.registry.service import read_toml

    engine = register_engine(database)
    with unit_of_work(make_session_factory(engine)) as session:
        summary = seed_registers(session, read_toml(DEMO_REGISTRY))
    engine.dispose()
    counts = f"{summary.residents} residents, {summary.births} births, {summary.businesses} businesses"
    click.echo(f"register database ready: {counts}")


@main.command("public-key")
@_KEY
def public_key(key_file: Path) -> None:
    """Print the public key (PEM) to register for this authority (public_key_pem)."""
    click.echo(public_key_pem(load_or_create_key(key_file)), nl=False)


def _broker_key(broker_key: Path | None, broker_jwks: str | None) -> Any:
    if broker_key is not None:
        return load_public_key(broker_key.read_bytes())
    if broker_jwks:
        import base64

        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        keys = httpx.get(broker_jwks, timeout=10).json()["keys"]
        for jwk in keys:
            if jwk.get("purpose") == "requests" and jwk.get("crv") == "Ed25519":
                raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
                return Ed25519PublicKey.from_public_bytes(raw)
        raise click.ClickException(f"{broker_jwks} lists no request-signing key")
    raise click.ClickException("give --broker-key FILE or --broker-jwks URL: requests must be verified")


@main.command()
@_ID
@_REGISTER
@_NAME
@_ARS
@_DB
@_KEY
@click.option(
    "--broker-key", envvar="AUTHORITY_BROKER_KEY", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None, help="The broker's request-signing public key (PEM), e.g. from `broker adapters broker-key`.",
)  # fmt: skip
@click.option("--broker-jwks", envvar="AUTHORITY_BROKER_JWKS", default=None, help="Or: the broker's JWKS URL.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=int)
@click.option("--allow-fault-injection", is_flag=True, help="Test aid: PUT /_faults makes answers wrong on purpose.")
def serve(
    authority_id: str,
    register: str | None,
    name: str | None,
    ars: str | None,
    database: str,
    key_file: Path,
    broker_key: Path | None,
    broker_jwks: str | None,
    host: str,
    port: int,
    allow_fault_injection: bool,
) -> None:
    """Push mode: serve POST /evidence for the broker."""
    import uvicorn

    from broker.authority.push import create_push_app

    authority = ReferenceAuthority(_spec(authority_id, register, name, ars), database, load_or_create_key(key_file))
    app = create_push_app(authority, _broker_key(broker_key, broker_jwks), allow_fault_injection)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")


@main.command()
@_ID
@_REGISTER
@_NAME
@_ARS
@_DB
@_KEY
@click.option("--broker", "broker_url", envvar="AUTHORITY_BROKER_URL", required=True, help="The broker's base URL.")
@click.option("--token", envvar="AUTHORITY_TOKEN", required=True, help="An adapter token bound to this authority.")
@click.option("--wait", default=20.0, show_default=True, help="Long-poll wait in seconds.")
def pull(
    authority_id: str,
    register: str | None,
    name: str | None,
    ars: str | None,
    database: str,
    key_file: Path,
    broker_url: str,
    token: str,
    wait: float,
) -> None:
    """Pull mode: poll the broker for tasks and post signed answers, until SIGTERM."""
    from broker.authority.pull import pull_loop

    authority = ReferenceAuthority(_spec(authority_id, register, name, ars), database, load_or_create_key(key_file))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        pull_loop(authority, broker_url, token, wait, stop)


if __name__ == "__main__":
    main()
