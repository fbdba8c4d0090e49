"""The database in a backup: SQLite's online backup API, PostgreSQL's ``pg_dump`` and ``pg_restore``.

Both copy a consistent moment while the broker keeps serving, and both hand the caller a session
that reads exactly that moment, so what the manifest says about the copy (revision, checkpoint,
key fingerprints, registry) is true of it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from broker.backup.manifest import Backend, BackupError
from broker.keys.files import fsync_path

SQLITE_FILE = "database.sqlite3"
POSTGRES_FILE = "database.pgdump"
_BY_HAND = (
    "or back up by hand as the README describes ('Backup and restore': "
    "pg_dump --format=custom, and a copy of BROKER_KEYS_DIR)"
)
# Every relation outside the system schemas: a database holding any is not empty.
_RELATIONS = text(
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
)


@dataclass(frozen=True)
class Snapshot:
    """The copy just written, and a session that reads what it holds (never to write)."""

    session: Session
    file: str
    server_version: str


def backend_of(database_url: str) -> Backend:
    name = make_url(database_url).get_backend_name()
    if name == "sqlite":
        return "sqlite"
    if name == "postgresql":
        return "postgresql"
    raise BackupError(f"BROKER_DATABASE_URL names a {name} database; backups cover SQLite and PostgreSQL")


def sqlite_file(database_url: str) -> Path:
    name = make_url(database_url).database
    if not name or name == ":memory:":
        raise BackupError("BROKER_DATABASE_URL names an in-memory SQLite database, which no backup can hold")
    return Path(name)


def libpq(database_url: str) -> tuple[str, dict[str, str]]:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL, and the environment that
    carries its password: an argument would be visible to every user in the process list."""
    url = make_url(database_url)
    params = {
        key: str(value)
        for key, value in (("host", url.host), ("port", url.port), ("user", url.username), ("dbname", url.database))
        if value is not None
    }
    # psycopg hands the URL's query to libpq as connection parameters (sslmode, host=/socket/dir …).
    for key, value in url.query.items():
        params[key] = value if isinstance(value, str) else ",".join(value)
    conninfo = " ".join(f"{key}={_quoted(value)}" for key, value in params.items())
    return conninfo, ({"PGPASSWORD": url.password} if url.password else {})


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


@contextmanager
def snapshot(database_url: str, directory: Path, pg_bin: Path | None) -> Iterator[Snapshot]:
    """Copy the database into ``directory``; the session reads the copy's moment until the end."""
    if backend_of(database_url) == "sqlite":
        with _sqlite_snapshot(sqlite_file(database_url), directory / SQLITE_FILE) as copied:
            yield copied
    else:
        with _postgres_snapshot(database_url, directory / POSTGRES_FILE, pg_bin) as copied:
            yield copied


@contextmanager
def _sqlite_snapshot(source: Path, target: Path) -> Iterator[Snapshot]:
    if not source.is_file():
        raise BackupError(f"BROKER_DATABASE_URL names {source}, which does not exist: there is no database to back up")
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # private before any byte is in it
    try:
        with closing(sqlite3.connect(source, timeout=30)) as original, closing(sqlite3.connect(target)) as copy:
            # All pages in one step (pages=-1): one read transaction, so one consistent moment while
            # the broker writes on (in WAL mode its writers do not wait for it). Steps of a few pages
            # would start over each time another process commits.
            original.backup(copy)
            # One self-contained file, no -wal beside it; the broker turns WAL on again when it opens it.
            copy.execute("PRAGMA journal_mode=DELETE")
            verdict = copy.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as error:
        raise BackupError(f"{source}: SQLite cannot back it up: {error}") from error
    if verdict != "ok":
        raise BackupError(f"{source}: its copy fails SQLite's quick_check ({verdict}); the database may be damaged")
    fsync_path(target)
    engine = create_engine(f"sqlite:///{target}", poolclass=NullPool)
    try:
        with Session(engine) as session:
            yield Snapshot(session, SQLITE_FILE, sqlite3.sqlite_version)
    finally:
        engine.dispose()


@contextmanager
def _postgres_snapshot(database_url: str, target: Path, pg_bin: Path | None) -> Iterator[Snapshot]:
    pg_dump = _tool("pg_dump", pg_bin)
    conninfo, env = libpq(database_url)
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with connection.begin():
                # pg_dump dumps the snapshot this transaction exports, and the session reads the
                # same one: the dump and what the manifest says about it are one moment.
                exported = str(connection.scalar(text("SELECT pg_export_snapshot()")))
                version = str(connection.scalar(text("SHOW server_version")))
                _run(
                    pg_dump,
                    [
                        "--format=custom",
                        "--no-password",
                        f"--snapshot={exported}",
                        f"--file={target}",
                        f"--dbname={conninfo}",
                    ],
                    env,
                )
                with Session(bind=connection) as session:
                    yield Snapshot(session, POSTGRES_FILE, version)
    finally:
        engine.dispose()


def check_empty(database_url: str) -> None:
    """Refuse a target that holds a database: a restore never overwrites one."""
    if backend_of(database_url) == "sqlite":
        path = sqlite_file(database_url)
        # A stale -wal beside a new file would be replayed into it by SQLite: refused as well.
        for present in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))):
            if present.exists():
                raise BackupError(
                    f"{present} exists: a restore writes a new database only; "
                    "point BROKER_DATABASE_URL at a path where there is none"
                )
        return
    shown = make_url(database_url).render_as_string(hide_password=True)
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            relations = int(connection.scalar(_RELATIONS) or 0)
    except OperationalError as error:
        said = " ".join(str(error.orig).strip().splitlines()[:1])
        raise BackupError(
            f"cannot connect to the database of BROKER_DATABASE_URL ({shown}): {said}; "
            "a restore goes into an existing, empty database (createdb)"
        ) from error
    finally:
        engine.dispose()
    if relations:
        raise BackupError(
            f"the database of BROKER_DATABASE_URL ({shown}) is not empty ({relations} tables, sequences or "
            "indexes): restore into a new, empty database (createdb)"
        )


def restore(database_url: str, copy: Path, pg_bin: Path | None) -> None:
    """Write the copy into the (empty) database of ``database_url``."""
    if backend_of(database_url) == "sqlite":
        _restore_sqlite(copy, sqlite_file(database_url))
        return
    conninfo, env = libpq(database_url)
    # One transaction: a restore that fails leaves the database empty, ready for the next try.
    # Owners are the restoring user's (the source's roles may not exist here); grants are kept.
    _run(
        _tool("pg_restore", pg_bin),
        ["--no-owner", "--single-transaction", "--exit-on-error", "--no-password", f"--dbname={conninfo}", str(copy)],
        env,
    )


def _restore_sqlite(copy: Path, target: Path) -> None:
    # Only the built-in default's directory can be missing here (preflight.parse_database_url).
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.restoring-{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as written, copy.open("rb") as read:
            shutil.copyfileobj(read, written, 1 << 20)
            written.flush()
            os.fsync(written.fileno())
        try:
            # A link, not a rename: it fails if a database appeared at the target meanwhile.
            os.link(partial, target)
        except FileExistsError:
            raise BackupError(f"{target} appeared while restoring: left as it is") from None
    finally:
        partial.unlink(missing_ok=True)
    fsync_path(target.parent)


def _tool(name: str, pg_bin: Path | None) -> str:
    found = shutil.which(name, path=str(pg_bin) if pg_bin else None)
    if found is None:
        where = f"in {pg_bin}" if pg_bin else "on PATH"
        raise BackupError(
            f"{name} is not {where}: install the PostgreSQL client tools of the server's major version "
            f"(or name their directory with --pg-bin), {_BY_HAND}"
        )
    return found


def _run(tool: str, arguments: list[str], env: dict[str, str]) -> None:
    # umask 077: the dump holds the whole database, private from its first byte.
    done = subprocess.run(
        [tool, *arguments], env={**os.environ, **env}, capture_output=True, text=True, check=False, umask=0o077
    )
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        said = next((line for line in lines if "error:" in line), lines[-1] if lines else f"exit {done.returncode}")
        raise BackupError(f"{Path(tool).name} failed: {said}")
