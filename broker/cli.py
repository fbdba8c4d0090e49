"""The `broker` command line."""

from __future__ import annotations

import importlib
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from broker.settings import get_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from sqlalchemy.orm import Session

    from broker.db.models import Client


class DomainCommands(click.Group):
    """The top-level group; the domain packages' own command groups are imported only when named.

    So `broker clients add` (run once per client by operators, and often by the tests) does not
    load the XML schema stack, the audit verifier and the seal just to be parsed.
    """

    GROUPS = {
        "adapters": "broker.tasks.commands",
        "audit": "broker.audit.commands",
        "backup": "broker.backup.commands",
        "consent": "broker.consent.commands",
        "evidence": "broker.seal.commands",
        "keys": "broker.seal.commands",
        "oots": "broker.oots.commands",
        "rollout": "broker.rollout.commands",
        "schemas": "broker.xml.commands",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.GROUPS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.GROUPS:
            command: click.Command = getattr(importlib.import_module(self.GROUPS[cmd_name]), cmd_name)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """The one place where any command's error becomes a sentence for the operator: one or
        two lines, exit 1; `broker -v …` prints the traceback first."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:
            if ctx.meta.get(_VERBOSE):
                traceback.print_exc()
            raise click.ClickException(explain(error)) from error


_VERBOSE = "broker.verbose"


def explain(error: Exception) -> str:
    """What went wrong and what to do, for the errors a command can expect from its setting up."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    from broker.keys.fingerprints import KeysMismatch
    from broker.keys.store import KeyStoreError
    from broker.preflight import URL_FORMS, StartupError

    first = " ".join(str(error).strip().splitlines()[:1])
    if isinstance(error, StartupError | KeysMismatch):
        return first
    if isinstance(error, KeyStoreError):
        return f"BROKER_KEYS_DIR: {first}; restore it from the backup of the keys directory"
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or first}; check the path (BROKER_KEYS_DIR, a file named) and its permissions"
    if isinstance(error, ArgumentError | NoSuchModuleError):
        return f"BROKER_DATABASE_URL is not a database URL; expected {URL_FORMS}"
    if isinstance(error, DBAPIError):
        orig = " ".join(str(error.orig).strip().splitlines()[:1])
        return (
            f"the database of BROKER_DATABASE_URL failed: {orig}\n"
            "check the URL, that the database is running and that `broker db upgrade` has been run"
        )
    return f"unexpected {type(error).__name__}: {first}\n`broker -v …` shows the traceback"


@click.group(cls=DomainCommands)
@click.option("-v", "--verbose", is_flag=True, help="Show the traceback of an error.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Once-Only evidence broker."""
    ctx.meta[_VERBOSE] = verbose


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: BROKER_HOST or 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: BROKER_PORT or 8000).")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from broker import bootstrap
    from broker.app import create_app

    settings = get_settings()
    if problems := settings.serving_problems():
        raise click.ClickException("; ".join(problems))
    # The app migrates an embedded (SQLite) database and checks its start (broker.preflight) in
    # bootstrap.build. Built here, a refused start is one line from `main`, not uvicorn's traceback.
    app: Any = "broker.app:create_app"
    if workers == 1:
        app = create_app(settings)
    else:
        # Each worker builds its own app; building one here first refuses a bad start once, clearly.
        bootstrap.build(settings).close()
    uvicorn.run(
        app,
        factory=workers != 1,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        access_log=False,
        # uvicorn's debug lines name clients' addresses; the broker's own debug lines do not.
        log_level="info" if settings.log_level.lower() == "debug" else settings.log_level,
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


@contextmanager
def _unit_of_work() -> Iterator[Session]:
    """One transaction of a command; an embedded database is migrated first, as `serve` does."""
    from broker.db.migrate import command_database

    with command_database(get_settings()) as database, database.unit_of_work() as session:
        yield session


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


_ALLOW_EMPTY = click.option(
    "--allow-empty", is_flag=True, help="Allow a registry with no evidence types, authorities or routes."
)


@registry.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_ALLOW_EMPTY
def registry_load(file: Path, allow_empty: bool) -> None:
    """Replace the registry with the TOML FILE (format: see broker/demo/registry-mv.toml), which
    states every section; the change is a log entry (actor "cli") and the replaced registry is
    kept for `broker registry rollback`."""
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from broker.clients.service import CLI_ACTOR
    from broker.egress import EgressPolicy
    from broker.problems import Problem
    from broker.registry.service import read_toml, replace_registry

    try:
        document = read_toml(file)
    except (ValidationError, ValueError) as error:
        raise click.ClickException(f"{file}: {error}") from None
    egress = EgressPolicy.from_settings(get_settings())
    try:
        with _unit_of_work() as session:
            # The operator replaces whatever is there: the command is the explicit replacement.
            replace_registry(
                session,
                document,
                actor=CLI_ACTOR,
                now=datetime.now(UTC),
                if_match="*",
                egress=egress,
                allow_empty=allow_empty,
            )
    except Problem as refusal:
        raise click.ClickException(f"{file}: {refusal.detail}") from None
    click.echo(
        f"loaded {len(document.evidence_types)} evidence types, {len(document.purposes)} purposes, "
        f"{len(document.legal_bases)} legal bases, {len(document.authorities)} authorities, "
        f"{len(document.routes)} routes"
    )


@registry.command("rollback")
@_ALLOW_EMPTY
def registry_rollback(allow_empty: bool) -> None:
    """Restore the registry the last replacement replaced (a second rollback undoes the first);
    the change is a log entry (actor "cli")."""
    from datetime import UTC, datetime

    from broker.clients.service import CLI_ACTOR
    from broker.egress import EgressPolicy
    from broker.problems import Problem
    from broker.registry.service import rollback_registry

    egress = EgressPolicy.from_settings(get_settings())
    try:
        with _unit_of_work() as session:
            done = rollback_registry(
                session, actor=CLI_ACTOR, now=datetime.now(UTC), if_match="*", egress=egress, allow_empty=allow_empty
            )
    except Problem as refusal:
        raise click.ClickException(refusal.detail) from None
    document = done.document
    click.echo(
        f"restored the registry replaced at {done.replaced_at.isoformat()} by {done.replaced_by}: "
        f"{len(document.evidence_types)} evidence types, {len(document.purposes)} purposes, "
        f"{len(document.legal_bases)} legal bases, {len(document.authorities)} authorities, "
        f"{len(document.routes)} routes\n"
        f"etag before: {done.etag_before}\netag after:  {done.etag_after}"
    )


@main.group()
def clients() -> None:
    """Clients and their tokens."""


def _token_lifetime(command: Callable[..., None]) -> Callable[..., None]:
    """The options of a command that issues a token: when it expires (default: never)."""
    command = click.option(
        "--expires-at", default=None, metavar="TIMESTAMP", help="Token expiry, e.g. 2027-06-30T00:00:00Z."
    )(command)
    return click.option("--expires-in", default=None, type=int, metavar="DAYS", help="Token lifetime in days.")(command)


def _expiry(now: datetime, expires_in: int | None, expires_at: str | None) -> datetime | None:
    from datetime import datetime

    from broker.clients.service import ClientError, expiry

    moment = None
    if expires_at is not None:
        try:
            moment = datetime.fromisoformat(expires_at)
        except ValueError:
            raise ClientError(f"--expires-at {expires_at!r}: expected an ISO 8601 timestamp with time zone") from None
    return expiry(now, expires_in, moment)


@clients.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["requester", "adapter", "auditor", "admin", "metrics"]))
@click.option("--allow", "allows", multiple=True, metavar="EVIDENCE_TYPE[=PURPOSE]", help="Grant (requesters).")
@click.option("--agent", default=None, metavar="SCHEME:ID", help="OOTS agent identifier of a requester.")
@click.option("--authority", default=None, metavar="ID", help="The authority an adapter client answers for.")
@click.option(
    "--callback-origin", "callback_origins", multiple=True, metavar="URL",
    help="Where a requester's callbacks and preview links may point (https://host[:port]); repeatable.",
)  # fmt: skip
@_token_lifetime
def clients_add(
    name: str,
    role: str,
    allows: tuple[str, ...],
    agent: str | None,
    authority: str | None,
    callback_origins: tuple[str, ...],
    expires_in: int | None,
    expires_at: str | None,
) -> None:
    """Create a client and print its bearer token (alone on the last line; shown only now)."""
    from datetime import UTC, datetime

    from broker.clients.service import CLI_ACTOR, ClientError, add_client, parse_grant
    from broker.egress import EgressPolicy

    now = datetime.now(UTC)
    try:
        grants = [parse_grant(a) for a in allows]
        expiry = _expiry(now, expires_in, expires_at)
        with _unit_of_work() as session:
            token = add_client(
                session,
                name,
                role,
                grants,
                agent_id=agent,
                authority_id=authority,
                expires_at=expiry,
                callback_origins=callback_origins,
                egress=EgressPolicy.from_settings(get_settings()),
                actor=CLI_ACTOR,
                now=now,
            )
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


@clients.command("list")
def clients_list() -> None:
    """Every client with its role, status (active, disabled, expired, removed), token expiry and creation."""
    from datetime import UTC, datetime

    from broker.clients import repository
    from broker.clients.service import status_of

    now = datetime.now(UTC)
    with _unit_of_work() as session:
        rows = [
            (c.name, c.role, status_of(c, now).value, _moment(c.expires_at), _moment(c.created_at))
            for c in repository.all_clients(session)
        ]
    widths = [max(len(row[i]) for row in [_LIST_HEADER, *rows]) for i in range(len(_LIST_HEADER))]
    for row in [_LIST_HEADER, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


_LIST_HEADER = ("NAME", "ROLE", "STATUS", "EXPIRES", "CREATED")


def _moment(moment: datetime | None) -> str:
    from broker.clock import as_utc

    return "-" if moment is None else as_utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def _change(change: Callable[..., Client], name: str) -> Client:
    """Apply a lifecycle change to the client ``name`` in one transaction (logged with actor "cli")."""
    from datetime import UTC, datetime

    from broker.clients.service import CLI_ACTOR, ClientError

    try:
        with _unit_of_work() as session:
            return change(session, name, actor=CLI_ACTOR, now=datetime.now(UTC))
    except ClientError as error:
        raise click.ClickException(str(error)) from None


@clients.command("disable")
@click.argument("name")
def clients_disable(name: str) -> None:
    """Refuse the client's token from now on, in every broker process (`enable` undoes it)."""
    from broker.clients.service import disable

    _change(disable, name)
    click.echo(f"client {name!r} is disabled: its token is refused")


@clients.command("enable")
@click.argument("name")
def clients_enable(name: str) -> None:
    """Accept a disabled client's token again."""
    from datetime import UTC, datetime

    from broker.clients.service import ClientStatus, enable, status_of

    client = _change(enable, name)
    click.echo(f"client {name!r} is enabled")
    if status_of(client, datetime.now(UTC)) is ClientStatus.EXPIRED:
        click.echo(
            f"its token expired at {_moment(client.expires_at)}: `broker clients rotate-token {name}` issues one"
        )


@clients.command("rotate-token")
@click.argument("name")
@_token_lifetime
def clients_rotate_token(name: str, expires_in: int | None, expires_at: str | None) -> None:
    """Give the client a new token (printed alone on the last line); the old one is refused at once."""
    from datetime import UTC, datetime

    from broker.clients.service import CLI_ACTOR, ClientError, rotate_token

    now = datetime.now(UTC)
    try:
        expiry = _expiry(now, expires_in, expires_at)
        with _unit_of_work() as session:
            _, token = rotate_token(session, name, expires_at=expiry, actor=CLI_ACTOR, now=now)
    except ClientError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"new token of client {name!r} (the old one is refused; store it now, it is not shown again):")
    click.echo(token)


@clients.command("remove")
@click.argument("name")
def clients_remove(name: str) -> None:
    """Remove the client for good: its token is refused; its exchanges and log entries stay readable."""
    from broker.clients.service import remove

    _change(remove, name)
    click.echo(f"client {name!r} is removed; its name is not given to another client")


if __name__ == "__main__":
    main()
