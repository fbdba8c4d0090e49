"""Apply the Alembic history programmatically (no alembic.ini needed at run time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from broker.db.session import Database, configured_engine
from broker.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@cache
def head_revisions() -> frozenset[str]:
    """The head revision(s) of the code's migration history (read once: it ships with the code)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(connection: Connection) -> frozenset[str]:
    """The revision(s) the database is at; empty for a database never migrated."""
    return frozenset(MigrationContext.configure(connection).get_current_heads())


@contextmanager
def command_database(settings: Settings) -> Iterator[Database]:
    """The configured database for one CLI command, released at its end. The embedded (SQLite)
    database is migrated first, as `broker serve` migrates it; PostgreSQL by `broker db upgrade`."""
    engine = configured_engine(settings)
    try:
        if settings.is_sqlite:
            upgrade(engine)
        yield Database(engine)
    finally:
        engine.dispose()
