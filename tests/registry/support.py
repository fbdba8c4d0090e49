"""What registry tests and the tests of its users share: a database with the demo registry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from broker.db.migrate import upgrade
from broker.db.session import Database, make_engine
from broker.demo.seed import DEMO_REGISTRY
from broker.registry import service
from broker.registry.service import read_toml

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def demo_database(database_url: str) -> Iterator[Database]:
    """A migrated database with the demo registry loaded at NOW (for a fixture to yield from)."""
    engine = make_engine(database_url)
    upgrade(engine)
    database = Database(engine)
    with database.unit_of_work() as session:
        service.replace_registry(session, read_toml(DEMO_REGISTRY), actor="test", now=NOW, if_match="*")
    yield database
    database.dispose()
