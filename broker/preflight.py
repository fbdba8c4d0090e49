"""What must hold before a broker accepts traffic, checked once at start-up by ``bootstrap.build``.

A broker that starts on a broken setting answers 500 to every request; one that starts on an
empty keys directory or a mistyped SQLite path forks its log. So each check here raises
:class:`StartupError` with one line naming the setting or file and what to do, and
``broker serve`` prints that line and exits non-zero (``broker -v serve`` shows the traceback).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from broker.db.migrate import alembic_config, upgrade
from broker.db.session import Database, configured_engine
from broker.keys.fingerprints import KeysMismatch
from broker.keys.fingerprints import check as check_fingerprints
from broker.keys.store import KeyStore, KeyStoreError
from broker.settings import Settings
from broker.xml.catalogue import CatalogueError, SchemaCatalogue

URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"


class StartupError(Exception):
    """The broker cannot serve with these settings or files; the message is one line for an operator."""

    def __init__(self, message: str) -> None:
        # Library messages (cryptography's, a driver's) may run over several lines: the first
        # says what is wrong, the traceback (`-v`) has the rest.
        super().__init__(" ".join(message.strip().splitlines()[:1]) if message.strip() else message)


def database(settings: Settings) -> Engine:
    """The engine of ``BROKER_DATABASE_URL``, its schema at the latest revision: SQLite migrates
    itself, PostgreSQL must have been migrated by ``broker db upgrade``."""
    url = parse_database_url(settings)
    engine = configured_engine(settings)
    try:
        if settings.is_sqlite:
            upgrade(engine)
        _check_revision(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise StartupError(
            f"cannot use the database of BROKER_DATABASE_URL ({_safe(url)}): {exc.orig}; "
            "check the URL and that the database is running"
        ) from exc
    except StartupError:
        engine.dispose()
        raise
    return engine


def parse_database_url(settings: Settings) -> URL:
    """``BROKER_DATABASE_URL`` parsed; a SQLite file must go into a directory that exists."""
    try:
        url = make_url(settings.database_url)
        url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        # Not echoed: a URL that does not parse may still hold a password.
        raise StartupError(
            f"BROKER_DATABASE_URL is not a database URL ({type(exc).__name__}); expected {URL_FORMS}"
        ) from exc
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        directory = Path(url.database).parent
        # A mistyped path would otherwise start a new empty database with a new log. The built-in
        # default (var/ in the checkout) is the one directory the broker makes itself.
        if not directory.is_dir() and settings.database_url != Settings.model_fields["database_url"].default:
            raise StartupError(
                f"BROKER_DATABASE_URL names a SQLite database in {directory}, which does not exist: "
                "create the directory or correct the path"
            )
    return url


def _check_revision(engine: Engine) -> None:
    head = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string())).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current != head:
        raise StartupError(
            f"the database of BROKER_DATABASE_URL ({_safe(engine.url)}) is at revision {current or 'none (empty)'}, "
            f"this broker needs {head}: run `broker db upgrade`"
        )


def keys(database: Database, store: KeyStore, now: datetime) -> None:
    """The keys directory holds this database's log keys (see broker.keys.fingerprints), and every
    key file loads: a corrupt file stops the start instead of failing each request that needs it."""
    try:
        with database.unit_of_work() as session:
            check_fingerprints(session, store, now)
        store.checkpoint_key()
        store.sealing_key()
        store.pseudonym_secret()
        store.request_signing_key()
        store.callback_secret()
    except KeysMismatch as exc:
        raise StartupError(str(exc)) from exc
    except KeyStoreError as exc:
        raise StartupError(f"BROKER_KEYS_DIR: {exc}; restore it from the backup of the keys directory") from exc
    except OSError as exc:
        raise StartupError(f"BROKER_KEYS_DIR {store.keys_dir}: {exc.filename or ''}: {exc.strerror or exc}") from exc


def catalogue(schema_dirs: list[Path]) -> SchemaCatalogue:
    try:
        return SchemaCatalogue(schema_dirs)
    except CatalogueError as exc:
        raise StartupError(f"schema catalogue (BROKER_SCHEMA_PATH): {exc}") from exc


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)
