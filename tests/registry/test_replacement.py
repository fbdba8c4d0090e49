"""Replacing the whole registry is never an accident, and the last replacement can be undone.

Before this, ``PUT /v1/admin/registry`` with ``{}`` answered 200 and emptied the registry. Now a
document states every section, leaving nothing to route by needs an explicit flag, and the
replaced document is kept for ``broker registry rollback``. Service and CLI, both databases.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from broker.cli import main
from broker.db.migrate import upgrade
from broker.db.models import LogEntry, RegistryHistory
from broker.db.session import Database, make_engine
from broker.demo.seed import DEMO_REGISTRY
from broker.problems import Problem
from broker.registry import repository, service
from broker.registry.schemas import RegistryDocument

EMPTY: dict[str, list[Any]] = {section: [] for section in service.SECTIONS}


def cli(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"BROKER_DATABASE_URL": database_url})


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database with the demo registry loaded by the CLI."""
    engine = make_engine(database_url)
    upgrade(engine)
    loaded = cli(database_url, "registry", "load", str(DEMO_REGISTRY))
    assert loaded.exit_code == 0, loaded.output
    database = Database(engine)
    yield database
    database.dispose()


def current_etag(database: Database) -> str:
    with database.read() as session:
        return service.digest(repository.read_document(session))


def replace(database: Database, body: dict[str, Any], **options: Any) -> str:
    with database.unit_of_work() as session:
        return service.replace_registry(
            session,
            RegistryDocument.model_validate(body),
            actor="test",
            now=datetime.now(UTC),
            if_match="*",
            **options,
        )


def with_extra_purpose(database: Database) -> dict[str, Any]:
    with database.read() as session:
        document = repository.read_document(session).model_dump(mode="json")
    document["purposes"].append({"id": "test-purpose", "name": "Testzweck", "leika_key": None})
    return document


def test_a_document_states_every_section(database: Database) -> None:
    before = current_etag(database)
    with pytest.raises(Problem) as nothing:
        replace(database, {})
    with pytest.raises(Problem) as partial:
        replace(database, {"authorities": [], "routes": []})
    assert (nothing.value.status, nothing.value.reason) == (422, "registry.sections_missing")
    assert [e["field"] for e in nothing.value.extensions["errors"]] == list(service.SECTIONS)
    assert [e["field"] for e in partial.value.extensions["errors"]] == [
        "evidence_types",
        "purposes",
        "legal_bases",
        "offices",
    ]
    assert current_etag(database) == before


def test_an_empty_registry_needs_the_flag_and_can_be_rolled_back(database: Database) -> None:
    before = current_etag(database)
    with pytest.raises(Problem) as refused:
        replace(database, EMPTY)
    assert (refused.value.status, refused.value.reason) == (422, "registry.empty_refused")
    assert refused.value.extensions["empty_sections"] == ["evidence_types", "authorities", "routes"]
    assert current_etag(database) == before
    emptied = replace(database, EMPTY, allow_empty=True)
    assert emptied != before
    with database.unit_of_work() as session:
        restored = service.rollback_registry(session, actor="test", now=datetime.now(UTC), if_match=f'"{emptied}"')
    assert (restored.etag_before, restored.etag_after) == (emptied, before)
    assert current_etag(database) == before


def test_rollback_needs_the_current_etag(database: Database) -> None:
    before = current_etag(database)
    replace(database, with_extra_purpose(database))
    for if_match, status in ((None, 428), (f'"{before}"', 412)):
        with pytest.raises(Problem) as refused, database.unit_of_work() as session:
            service.rollback_registry(session, actor="test", now=datetime.now(UTC), if_match=if_match)
        assert refused.value.status == status


def test_a_no_op_replacement_keeps_nothing(database: Database) -> None:
    with database.read() as session:
        kept = len(session.scalars(select(RegistryHistory)).all())
        document = repository.read_document(session).model_dump(mode="json")
    replace(database, document)
    with database.read() as session:
        assert len(session.scalars(select(RegistryHistory)).all()) == kept


def test_cli_rollback_restores_the_previous_document_and_logs_it(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    demo = current_etag(database)
    changed = tmp_path / "changed.toml"
    # An array of tables may gain an element anywhere in the file.
    changed.write_text(DEMO_REGISTRY.read_text() + '\n[[purposes]]\nid = "test-purpose"\nname = "Testzweck"\n')
    assert cli(database_url, "registry", "load", str(changed)).exit_code == 0
    with_purpose = current_etag(database)
    assert with_purpose != demo

    first = cli(database_url, "registry", "rollback")
    assert first.exit_code == 0, first.output
    assert f"etag before: {with_purpose}" in first.output and f"etag after:  {demo}" in first.output
    assert "replaced at" in first.output and "by cli" in first.output
    assert current_etag(database) == demo
    # The rollback kept what it replaced: a second one undoes it.
    second = cli(database_url, "registry", "rollback")
    assert second.exit_code == 0, second.output
    assert current_etag(database) == with_purpose

    with database.read() as session:
        bodies = session.scalars(
            select(LogEntry.body).where(LogEntry.event == "registry_changed").order_by(LogEntry.seq)
        ).all()
    entries = [json.loads(body) for body in bodies]
    assert [(e["change"], e["actor"], e["registry_before"], e["registry_after"]) for e in entries[-2:]] == [
        ("registry/rollback", "cli", with_purpose, demo),
        ("registry/rollback", "cli", demo, with_purpose),
    ]


def test_cli_refuses_an_empty_registry_without_the_flag(database: Database, database_url: str, tmp_path: Path) -> None:
    demo = current_etag(database)
    empty = tmp_path / "empty.toml"
    empty.write_text("".join(f"{section} = []\n" for section in service.SECTIONS))
    refused = cli(database_url, "registry", "load", str(empty))
    assert refused.exit_code != 0 and "--allow-empty" in refused.output
    missing = tmp_path / "missing.toml"
    missing.write_text("purposes = []\n")
    incomplete = cli(database_url, "registry", "load", str(missing))
    assert (
        incomplete.exit_code != 0 and "missing: evidence_types, legal_bases, authorities, routes" in incomplete.output
    )
    assert current_etag(database) == demo
    assert cli(database_url, "registry", "load", "--allow-empty", str(empty)).exit_code == 0
    # Rolling back to the empty registry the first load replaced needs the flag as well.
    assert cli(database_url, "registry", "rollback").exit_code == 0
    assert current_etag(database) == demo
    refused_back = cli(database_url, "registry", "rollback")
    assert refused_back.exit_code != 0 and "--allow-empty" in refused_back.output


def test_cli_rollback_with_nothing_kept(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    done = cli(database_url, "registry", "rollback")
    assert done.exit_code != 0 and "No earlier registry document is kept" in done.output
