"""``broker oots …``: the OOTS gateway's own checks (``conformance``: see broker/oots/conformance.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import click
from fastapi import FastAPI

from broker.clock import Clock
from broker.oots import conformance
from broker.settings import Settings, get_settings


@click.group("oots")
def oots() -> None:
    """The OOTS gateway (EDM evidence requests, the Data Service Directory)."""


def scratch_app(settings: Settings, clock: Clock) -> FastAPI:
    """The scratch broker's app, built by the composition root (which only commands may import)."""
    from broker import bootstrap
    from broker.app import create_app

    return create_app(settings, bootstrap.build(settings, clock))


def report(rows: Sequence[conformance.Row], seconds: float | None = None) -> int:
    """Print the table and the summary line; the exit code (0 only if every row passes)."""
    for line in conformance.render(rows):
        click.echo(line)
    click.echo(conformance.summary(rows, seconds))
    return 0 if rows and all(row.passed for row in rows) else 1


@oots.command("conformance")
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(path_type=Path),
    help="Directory of the OOTS Schematron rule files (default: BROKER_OOTS_RULES_PATH).",
)
@click.option(
    "--samples",
    "samples_dir",
    type=click.Path(path_type=Path),
    help="Also send every *request*.xml QueryRequest under this directory (a bare-UUID id as urn:uuid:…).",
)
def conformance_command(rules_dir: Path | None, samples_dir: Path | None) -> None:
    """Run the scripted OOTS scenarios against a scratch broker and check every EDM and DSD
    message it answers with against the EDM schemas (BROKER_SCHEMA_PATH) and the OOTS rules.

    Prints one row per message (scenario, message, XSD, rules, failed rule ids); exit 0 only
    if every row passes.
    """
    settings = get_settings()
    configured = str(rules_dir) if rules_dir is not None else settings.oots_rules_path.strip()
    if not configured:
        raise click.ClickException("no rules directory: set BROKER_OOTS_RULES_PATH or pass --rules DIR")
    started = time.monotonic()
    try:
        rows = conformance.run(settings, Path(configured), samples_dir, scratch_app)
    except conformance.ConformanceError as error:
        raise click.ClickException(str(error)) from None
    raise SystemExit(report(rows, time.monotonic() - started))


if __name__ == "__main__":  # python -m broker.oots.commands
    oots()
