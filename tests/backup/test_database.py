"""The database side of a backup: the URL pg_dump and pg_restore get, and a restore target that
already holds a database (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import make_url

from broker.backup.database import check_empty, libpq, snapshot, sqlite_file
from broker.backup.manifest import BackupError
from broker.db.migrate import upgrade
from broker.db.session import make_engine


def test_a_sqlalchemy_url_becomes_a_libpq_connection_string_without_its_password() -> None:
    conninfo, env = libpq(
        "postgresql+psycopg://bro%40ker:s3cr%27et@db.example:5433/once%20only"
        "?sslmode=verify-full&sslrootcert=/etc/broker/ca.pem"
    )
    # libpq's own parser (psycopg's binding of it) reads back what the URL said.
    assert conninfo_to_dict(conninfo) == {
        "host": "db.example",
        "port": "5433",
        "user": "bro@ker",
        "dbname": "once only",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/broker/ca.pem",
    }
    assert "s3cr" not in conninfo  # the process list shows arguments to every user
    assert env == {"PGPASSWORD": "s3cr'et"}


def test_a_unix_socket_url_keeps_its_socket_directory() -> None:
    conninfo, env = libpq("postgresql+psycopg:///broker?host=/run/postgresql")
    assert conninfo_to_dict(conninfo) == {"dbname": "broker", "host": "/run/postgresql"}
    assert env == {}


def test_a_target_that_holds_a_database_is_refused(database_url: str) -> None:
    check_empty(database_url)  # new: nothing there yet
    engine = make_engine(database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    with pytest.raises(BackupError, match="exists|is not empty"):
        check_empty(database_url)


def test_a_postgresql_database_that_does_not_exist_is_named(postgres_server_url: str) -> None:
    url = make_url(postgres_server_url).set(database="broker_never_created").render_as_string(hide_password=False)
    with pytest.raises(BackupError, match="cannot connect .*broker_never_created.*createdb"):
        check_empty(url)


def test_a_stale_write_ahead_log_is_refused_too(tmp_path: Path) -> None:
    # SQLite would replay a -wal left from another database into the restored file.
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    (tmp_path / "broker.db-wal").write_bytes(b"left over")
    with pytest.raises(BackupError, match="broker.db-wal exists"):
        check_empty(url)


def test_a_missing_sqlite_database_is_not_backed_up_as_an_empty_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    (tmp_path / "backup").mkdir()
    with pytest.raises(BackupError, match="does not exist"), snapshot(url, tmp_path / "backup", None):
        pass
    assert not sqlite_file(url).exists()
    assert list((tmp_path / "backup").iterdir()) == []
