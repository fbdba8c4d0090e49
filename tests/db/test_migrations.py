"""The one Alembic history builds exactly the models' schema (the broker's tables and the demo
registers'), on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from adapters.registers.models import RegisterBase
from broker.db.migrate import upgrade
from broker.db.models import Base
from broker.db.session import make_engine


def test_migrations_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade(engine)  # a second run is a no-op
    with engine.connect() as connection:
        # Alembic compares against several metadata objects at once (as env.py configures it),
        # though compare_metadata is annotated with one.
        schema = [Base.metadata, RegisterBase.metadata]
        diff = compare_metadata(MigrationContext.configure(connection), schema)  # type: ignore[arg-type]
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"exchanges", "log_entries", "merkle_nodes", "checkpoints", "adapter_tasks", "residents"} <= tables
