"""The `broker` command line."""

from __future__ import annotations

import importlib
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from broker.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class DomainCommands(click.Group):
    """The top-level group; the domain packages' own command groups are imported only when named.

    So `broker clients add` (run once per client by operators, and often by the tests) does not
    load the XML schema stack, the audit verifier and the seal just to be parsed.
    """

    GROUPS = {
        "adapters": "broker.tasks.commands",
        "audit": "broker.audit.commands",
        "evidence": "broker.seal.commands",
        "keys": "broker.seal.commands",
        "schemas": "broker.xml.commands",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.GROUPS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.GROUPS:
            command: click.Command = getattr(importlib.import_module(self.GROUPS[cmd_name]), cmd_name)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=DomainCommands)
def main() -> None:
    """Once-Only evidence broker."""


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: BROKER_HOST or 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: BROKER_PORT or 8000).")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the HTTP API."""
    import uvicorn

    settings = get_settings()
    # The app migrates an embedded (SQLite) database itself at start-up (broker.bootstrap.build).
    uvicorn.run(
        "broker.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        access_log=False,
        log_level=settings.log_level,
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations."""
    from broker.db.migrate import upgrade
    from broker.db.session import make_engine

    engine = make_engine(get_settings().database_url)
    upgrade(engine)
    engine.dispose()
    click.echo("database is at the latest revision")


def _unit_of_work() -> AbstractContextManager[Session]:
    """One transaction of a command; an embedded database is migrated first, as `serve` does."""
    from broker.db.session import make_engine, make_session_factory, unit_of_work

    settings = get_settings()
    engine = make_engine(settings.database_url)
    if settings.is_sqlite:
        from broker.db.migrate import upgrade

        upgrade(engine)
    return unit_of_work(make_session_factory(engine))


@main.group()
def demo() -> None:
    """Demo data."""


@demo.command("seed")
def demo_seed() -> None:
    """Load the MV demo registry, synthetic residents and Erika Mustermann (deterministic)."""
    from broker.demo.seed import seed

    with _unit_of_work() as session:
        summary = seed(session)
    click.echo(
        f"seeded {summary.authorities} authorities, {summary.residents} residents, "
        f"{summary.births} birth records, {summary.businesses} business registrations"
    )


@main.group()
def registry() -> None:
    """Evidence types, authorities and routes."""


@registry.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def registry_load(file: Path) -> None:
    """Replace the registry with the TOML FILE (format: see broker/demo/registry-mv.toml)."""
    from pydantic import ValidationError

    from broker.registry import repository
    from broker.registry.service import read_toml

    try:
        document = read_toml(file)
    except (ValidationError, ValueError) as error:
        raise click.ClickException(f"{file}: {error}") from None
    with _unit_of_work() as session:
        repository.replace_document(session, document)
    click.echo(
        f"loaded {len(document.evidence_types)} evidence types, {len(document.authorities)} authorities, "
        f"{len(document.routes)} routes"
    )


@main.group()
def clients() -> None:
    """Clients and their tokens."""


@clients.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["requester", "adapter", "auditor", "admin"]))
@click.option("--allow", "allows", multiple=True, metavar="EVIDENCE_TYPE[=PURPOSE]", help="Grant (requesters).")
@click.option("--agent", default=None, metavar="SCHEME:ID", help="OOTS agent identifier of a requester.")
@click.option("--authority", default=None, metavar="ID", help="The authority an adapter client answers for.")
def clients_add(name: str, role: str, allows: tuple[str, ...], agent: str | None, authority: str | None) -> None:
    """Create a client and print its bearer token (alone on the last line; shown only now)."""
    from broker.clients.service import ClientError, add_client, parse_grant

    try:
        grants = [parse_grant(a) for a in allows]
        with _unit_of_work() as session:
            token = add_client(session, name, role, grants, agent_id=agent, authority_id=authority)
    except ClientError as error:
        raise click.ClickException(str(error)) from None
    if role == "requester":
        click.echo(f"callback secret (HMAC-SHA512 key of signed callbacks): {_callback_secret(name)}")
    click.echo(f"created {role} client {name!r}; its token (store it now, it is not shown again):")
    click.echo(token)


def _callback_secret(name: str) -> str:
    from broker.callbacks.signing import requester_secret
    from broker.clients import repository
    from broker.keys.store import KeyStore

    settings = get_settings()
    with _unit_of_work() as session:
        client = repository.by_name(session, name)
        if client is None:
            raise click.ClickException(f"no client named {name!r}")
        client_id = client.id
    return requester_secret(KeyStore(settings.keys_dir, origin=settings.origin).callback_secret(), client_id)


@clients.command("callback-secret")
@click.argument("name")
def clients_callback_secret(name: str) -> None:
    """Print the secret a requester verifies the broker's callbacks with (derived; see broker/callbacks)."""
    click.echo(_callback_secret(name))


if __name__ == "__main__":
    main()
