"""The one Alembic history builds exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from broker.db.migrate import upgrade
from broker.db.models import Base
from broker.db.session import make_engine


def test_migrations_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade(engine)  # a second run is a no-op
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"exchanges", "log_entries", "merkle_nodes", "checkpoints", "adapter_tasks"} <= tables
