"""``broker adapters``: the conformance kit and the key authorities verify the broker's requests with."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def adapters() -> None:
    """Authority adapters: conformance checks and the broker's request-signing key."""


@adapters.command("broker-key")
def broker_key() -> None:
    """Print the broker's request-signing public key (PEM) for push authorities to verify requests."""
    from adapters.signing import public_key_pem
    from broker.keys.store import KeyStore
    from broker.settings import get_settings

    settings = get_settings()
    click.echo(public_key_pem(KeyStore(settings.keys_dir, origin=settings.origin).request_signing_key()), nl=False)


@adapters.command("check")
@click.argument("target")
@click.option("--authority", "authority_id", default=None, help="With a URL target: the authority it answers for.")
@click.option(
    "--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="With a URL target: the authority's answer-signing key (default: the registered one).",
)  # fmt: skip
@click.option("--wait", default=30.0, show_default=True, help="Seconds to wait for a pull adapter's answers.")
def check(target: str, authority_id: str | None, public_key: Path | None, wait: float) -> None:
    """Run the conformance battery against TARGET: a registered authority id, or a push endpoint URL.

    One line per case (PASS, FAIL or SKIP); exit status 1 if any case failed. A pull authority's
    adapter must be polling a broker on the same database while the battery runs.
    """
    from broker import bootstrap
    from broker.logging import configure_logging
    from broker.settings import get_settings
    from broker.tasks.conformance import Battery

    configure_logging("warning")  # stdout is the report; the exchanges' log lines would drown it
    container = bootstrap.build(get_settings())
    services = container.services
    registry = services.registry.get()
    is_url = target.startswith(("http://", "https://"))
    wanted = authority_id if is_url else target
    if wanted is None:
        raise click.ClickException("a URL target needs --authority ID (the authority whose register it serves)")
    authority = registry.authorities.get(wanted)
    if authority is None:
        raise click.ClickException(f"no authority {wanted!r} in the registry")
    if is_url:
        changes: dict[str, object] = {"binding": "http_push", "endpoint_url": target}
        if public_key is not None:
            changes["public_key_pem"] = public_key.read_text()
        authority = authority.model_copy(update=changes)
    click.echo(f"conformance of {authority.id} ({authority.binding}{', ' + target if is_url else ''})")
    try:
        battery = Battery(services.database, services.exchanges, container.adapters, services.remote, authority, wait)
        results = battery.run()
    finally:
        container.close()
    for result in results:
        click.echo(result.line())
    failed = sum(r.verdict == "FAIL" for r in results)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


@adapters.command("connect")
@click.argument("authority_id")
@click.option("--binding", required=True, type=click.Choice(["in_process", "http_push", "pull"]))
@click.option("--endpoint", default=None, help="http_push: the authority's POST endpoint URL.")
@click.option(
    "--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="The authority's answer-signing public key (PEM), e.g. from `broker-authority public-key`.",
)  # fmt: skip
@click.option("--timeout", "timeout_seconds", type=float, default=None, help="Seconds the authority may take.")
def connect(
    authority_id: str, binding: str, endpoint: str | None, public_key: Path | None, timeout_seconds: float | None
) -> None:
    """Bind a registered authority to a binding (what PUT /v1/admin/registry/authorities/{id} does)."""
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from broker.clients.service import CLI_ACTOR
    from broker.db.session import make_engine, make_session_factory, unit_of_work
    from broker.egress import EgressPolicy
    from broker.problems import Problem
    from broker.registry import repository, service
    from broker.settings import get_settings

    settings = get_settings()
    egress = EgressPolicy.from_settings(settings)
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            current = {a.id: a for a in repository.read_document(session).authorities}.get(authority_id)
            if current is None:
                raise click.ClickException(f"no authority {authority_id!r} in the registry")
            changes: dict[str, object] = {"binding": binding, "endpoint_url": endpoint}
            if public_key is not None:
                changes["public_key_pem"] = public_key.read_text()
            if timeout_seconds is not None:
                changes["timeout_seconds"] = timeout_seconds
            try:
                spec = type(current).model_validate({**current.model_dump(), **changes})
            except ValidationError as error:
                raise click.ClickException(str(error)) from None
            # The operator names the authority to change: the command is the explicit replacement.
            now = datetime.now(UTC)
            service.put_authority(session, spec, actor=CLI_ACTOR, now=now, if_match="*", egress=egress)
    except Problem as refusal:
        raise click.ClickException(refusal.detail) from None
    finally:
        engine.dispose()
    click.echo(f"{authority_id}: binding {binding}" + (f" at {endpoint}" if endpoint else ""))
