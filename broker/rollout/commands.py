"""``broker rollout``: coverage of the offices × evidence types, the report, and onboarding."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from broker.db.migrate import command_database
from broker.settings import get_settings


@click.group()
def rollout() -> None:
    """Coverage of the offices × evidence types, and onboarding of authorities."""


@rollout.command("status")
@click.option("--gaps", "gaps_only", is_flag=True, help="Print only the summary and the gaps.")
def status(gaps_only: bool) -> None:
    """Print every office × evidence type: routed or not (gaps first, named), to which authority
    and binding, its latest passed conformance run, last delivery, and the last 24 hours'
    exchanges, errors and p95 duration."""
    from broker.rollout import presenters, service

    with command_database(get_settings()) as database, database.read() as session:
        matrix = service.matrix(session, datetime.now(UTC))
    for line in presenters.status_lines(matrix, gaps_only):
        click.echo(line)


@rollout.command("report")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The HTML file to write.")
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 366), help="Days of the chart.")
def report(out: Path, days: int) -> None:
    """Write the matrix as one self-contained HTML page (no script, nothing fetched): a grid per
    Kreis, gaps first, and a chart of exchanges and errors per day."""
    from broker.rollout import presenters, service
    from broker.rollout.report import render

    with command_database(get_settings()) as database, database.read() as session:
        matrix = service.matrix(session, datetime.now(UTC), history_days=days)
    try:
        out.write_text(render(matrix), encoding="utf-8")
    except OSError as error:
        raise click.ClickException(f"{out}: cannot write: {error.strerror or error}") from None
    click.echo(f"wrote {out}: {presenters.summary(matrix)}")


@rollout.command("onboard")
@click.argument("authority_id")
@click.option("--wait", default=30.0, show_default=True, help="Seconds to wait for a pull adapter's answers.")
def onboard(authority_id: str, wait: float) -> None:
    """Run the conformance kit against AUTHORITY_ID (its binding: in-process, push or pull) and,
    only when no case fails, activate its pending routes. One line per case; exit status 1 if a
    case failed (the routes stay pending). A pull authority's adapter must be polling a broker on
    the same database meanwhile."""
    from broker import bootstrap
    from broker.clients.service import CLI_ACTOR
    from broker.logging import configure_logging
    from broker.problems import Problem
    from broker.registry.schemas import AuthoritySpec
    from broker.rollout.onboarding import Onboarding
    from broker.rollout.presenters import plural
    from broker.tasks.conformance import Battery, CaseResult

    configure_logging("warning")  # stdout is the report; the exchanges' log lines would drown it
    container = bootstrap.build(get_settings())
    services = container.services

    def kit(authority: AuthoritySpec) -> list[CaseResult]:
        click.echo(f"conformance of {authority.id} ({authority.binding})")
        return Battery(
            services.database, services.exchanges, container.adapters, services.remote, authority, wait
        ).run()

    try:
        done = Onboarding(services.database, kit, services.clock).onboard(authority_id, actor=CLI_ACTOR)
    except Problem as refusal:
        raise click.ClickException(refusal.detail) from None
    finally:
        container.close()
    for result in done.results:
        click.echo(result.line())
    if not done.passed:
        failed = ", ".join(r.case for r in done.failed) or "no case ran"
        click.echo(f"{authority_id} is not onboarded: failed {failed}; its routes stay pending")
        sys.exit(1)
    click.echo(f"{authority_id} is onboarded: {plural(done.activated, 'route')} activated")


@rollout.command("deactivate")
@click.argument("authority_id")
def deactivate(authority_id: str) -> None:
    """Put AUTHORITY_ID's routes back to pending: they route nothing until `broker rollout
    onboard` passes again (logged)."""
    from broker.clients.service import CLI_ACTOR
    from broker.problems import Problem
    from broker.rollout import service
    from broker.rollout.presenters import plural

    try:
        with command_database(get_settings()) as database, database.unit_of_work() as session:
            changed = service.deactivate(session, authority_id, actor=CLI_ACTOR, now=datetime.now(UTC))
    except Problem as refusal:
        raise click.ClickException(refusal.detail) from None
    click.echo(f"{authority_id}: {plural(changed, 'route')} back to pending")
