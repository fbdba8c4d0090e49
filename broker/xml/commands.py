"""``broker schemas …``: list the catalogue, validate files through the intake door, import sets,
check OOTS messages against the business rules."""

from __future__ import annotations

from pathlib import Path

import click

from broker.settings import REPO_DIR, get_settings
from broker.xml.catalogue import CatalogueError, SchemaCatalogue, SchemaEntry, import_schemas
from broker.xml.hardened import XmlIntakeError, parse_xml
from broker.xml.schematron import SchematronError, UnknownMessageKind, check_message


def catalogue_dirs() -> list[Path]:
    """The project's ``xsd/`` followed by the ``BROKER_SCHEMA_PATH`` directories, in order."""
    return get_settings().schema_dirs


def _load() -> SchemaCatalogue:
    try:
        return SchemaCatalogue(catalogue_dirs())
    except CatalogueError as exc:
        raise click.ClickException(f"schema catalogue: {exc}") from None


def _entry_line(entry: SchemaEntry) -> str:
    fields = [
        entry.namespace or "(no namespace)",
        ",".join(entry.root_elements) or "-",
        str(entry.file),
        f"XSD {entry.xsd_version}",
    ]
    if entry.shadowed_by is not None:
        fields.append(f"(shadowed by {entry.shadowed_by})")
    return "\t".join(fields)


@click.group("schemas")
def schemas() -> None:
    """The XML schema catalogue (xsd/ plus BROKER_SCHEMA_PATH)."""


@schemas.command("list")
def list_schemas() -> None:
    """One line per schema file: namespace, root elements, file, XSD version."""
    for entry in _load().entries():
        click.echo(_entry_line(entry))


@schemas.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check FILEs exactly as the broker checks inbound XML; exit 0 only if all pass."""
    catalogue = _load()
    failed = 0
    for file in files:
        try:
            catalogue.validate(parse_xml(file.read_bytes()))
        except XmlIntakeError as exc:
            failed += 1
            where = f"{exc.line or 0}:{exc.column or 0}"
            path = f" [{exc.path}]" if exc.path else ""
            click.echo(f"{file}:{where}: {exc.reason}: {exc.detail}{path}")
        except OSError as exc:
            failed += 1
            click.echo(f"{file}:0:0: file.unreadable: {exc.strerror or exc}")
        else:
            click.echo(f"{file}: ok")
    if failed:
        raise SystemExit(1)


@schemas.command("rules")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(path_type=Path),
    help="Directory of the OOTS Schematron rule files (default: BROKER_OOTS_RULES_PATH).",
)
def rules_command(files: tuple[Path, ...], rules_dir: Path | None) -> None:
    """Check OOTS messages against the official business rules of their kind (EDM-RESP-S/-C, …).

    One line per failure, or "FILE: passes RULESETS". Warnings and infos are shown but do not
    fail; exit 0 only if no file has another failure and every file could be checked.
    """
    configured = rules_dir if rules_dir is not None else get_settings().oots_rules_path.strip()
    if not configured:
        raise click.ClickException("no rules directory: set BROKER_OOTS_RULES_PATH or pass --rules DIR")
    directory = Path(configured)
    if not directory.is_dir():
        raise click.ClickException(f"rules directory {directory} does not exist")
    failed = 0
    for file in files:
        try:
            verdict = check_message(file.read_bytes(), directory)
        except OSError as exc:
            failed += 1
            click.echo(f"{file}: file.unreadable: {exc.strerror or exc}")
        except XmlIntakeError as exc:
            failed += 1
            click.echo(f"{file}: {exc.reason}: {exc.detail}")
        except UnknownMessageKind as exc:
            failed += 1
            click.echo(f"{file}: rules.unknown_kind: {exc}")
        except SchematronError as exc:
            # A missing or broken rule file affects every file of its kind: report it once per
            # file rather than stop, so the other kinds still get checked.
            failed += 1
            click.echo(f"{file}: rules.error: {exc}")
        else:
            failed += not verdict.passed
            if not verdict.failures:
                click.echo(f"{file}: passes {', '.join(verdict.rule_sets)}")
            for failure in verdict.failures:
                where = failure.location or "/"
                click.echo(f"{file}: {failure.rule_id} ({failure.severity}) at {where}: {failure.message}")
    if failed:
        raise SystemExit(1)


@schemas.command("import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    help="Target directory (default: first BROKER_SCHEMA_PATH entry, else var/schemas).",
)
@click.option("--name", help="Subdirectory to create in the target (default: the source's name).")
def import_command(source: Path, into: Path | None, name: str | None) -> None:
    """Copy the .xsd files of a directory or .zip into the schema path, after checking they compile."""
    target = into or next(iter(get_settings().schema_dirs[1:]), REPO_DIR / "var" / "schemas")
    context = [d for d in catalogue_dirs() if d.is_dir()]
    try:
        entries = import_schemas(source, target, context_dirs=context, name=name)
    except CatalogueError as exc:
        raise click.ClickException(str(exc)) from None
    for entry in entries:
        click.echo(_entry_line(entry))
    click.echo(f"imported {len(entries)} schema files into {target}")
    if not any(target.resolve().is_relative_to(d.resolve()) for d in catalogue_dirs()):
        click.echo(f"note: {target} is not on BROKER_SCHEMA_PATH, so the broker will not load it", err=True)


if __name__ == "__main__":  # python -m broker.xml.commands, until broker/cli.py registers the group
    schemas()
