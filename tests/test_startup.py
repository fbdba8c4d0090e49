"""`broker serve` refuses a broken start with one line naming the file or setting, and a non-zero
exit, before it accepts traffic (broker/preflight.py); other commands speak in sentences too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.keys.store import KeyStore
from tests.conftest import create_postgres_database, free_port


def run(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env={**os.environ, "BROKER_ENV": "development", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run("serve", "--host", "127.0.0.1", "--port", str(free_port()), env=env)


def assert_refused(done: subprocess.CompletedProcess[str], *named: str) -> None:
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    # Libraries' warnings (a deprecation at import) may come first; the broker's say is the end.
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("Error: ")) :]
    assert len(lines) <= 2, done.stderr
    assert all(name in lines[0] for name in named), done.stderr


def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"BROKER_DATABASE_URL": f"sqlite:///{tmp_path / 'broker.db'}", "BROKER_KEYS_DIR": str(tmp_path / "keys")}


def test_a_corrupt_checkpoint_key(tmp_path: Path) -> None:
    KeyStore(tmp_path / "keys").checkpoint_key()
    [key_file] = (tmp_path / "keys" / "checkpoint").glob("*.pem")
    key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    assert_refused(serve(sqlite_env(tmp_path)), str(key_file))


def test_a_ten_byte_pseudonym_secret(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "keys" / "pseudonym.key").write_bytes(b"0123456789")
    assert_refused(serve(sqlite_env(tmp_path)), "pseudonym.key", "32 bytes")


def test_an_unparsable_database_url(tmp_path: Path) -> None:
    env = {**sqlite_env(tmp_path), "BROKER_DATABASE_URL": "postgres ql://user:secret@@host"}
    done = serve(env)
    assert_refused(done, "BROKER_DATABASE_URL")
    assert "secret" not in done.stderr


def test_a_sqlite_database_in_a_missing_directory(tmp_path: Path) -> None:
    env = {**sqlite_env(tmp_path), "BROKER_DATABASE_URL": f"sqlite:///{tmp_path / 'typo' / 'broker.db'}"}
    assert_refused(serve(env), "BROKER_DATABASE_URL", str(tmp_path / "typo"))
    assert not (tmp_path / "typo").exists()


def test_keys_that_are_not_the_logs(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    adopted = run("keys", "adopt", "--yes", env=env)
    assert adopted.returncode == 0, adopted.stderr
    assert "recorded checkpoint" in adopted.stdout
    # An empty keys directory: refused, and no keys are made there.
    empty = {**env, "BROKER_KEYS_DIR": str(tmp_path / "empty")}
    assert_refused(serve(empty), "BROKER_KEYS_DIR", str(tmp_path / "empty"), "broker keys adopt --yes")
    assert not (tmp_path / "empty" / "manifest.json").exists()
    # Another broker's keys: refused.
    KeyStore(tmp_path / "other").checkpoint_key()
    KeyStore(tmp_path / "other").pseudonym_secret()
    assert_refused(serve({**env, "BROKER_KEYS_DIR": str(tmp_path / "other")}), "did not sign")
    # Adopting needs the operator's explicit word.
    assert_refused(run("keys", "adopt", env={**env, "BROKER_KEYS_DIR": str(tmp_path / "other")}), "--yes")


def test_an_unmigrated_postgresql_database(postgres_server_url: str, tmp_path: Path) -> None:
    url, drop = create_postgres_database(postgres_server_url)
    try:
        done = serve({"BROKER_DATABASE_URL": url, "BROKER_KEYS_DIR": str(tmp_path / "keys")})
    finally:
        drop()
    assert_refused(done, "BROKER_DATABASE_URL", "broker db upgrade")
    assert not (tmp_path / "keys").exists()


# --- commands speak in sentences ---------------------------------------------------------------


def test_rotate_where_the_keys_cannot_be_written(tmp_path: Path) -> None:
    # As root a read-only directory is writable anyway; a keys "directory" that is a regular file
    # cannot be written by anyone.
    not_a_directory = tmp_path / "keys"
    not_a_directory.write_text("not a directory")
    env = {**sqlite_env(tmp_path), "BROKER_KEYS_DIR": str(not_a_directory)}
    assert_refused(run("keys", "rotate", env=env), str(not_a_directory))
    verbose = run("-v", "keys", "rotate", env=env)
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr


def test_rotate_in_a_read_only_directory(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    KeyStore(tmp_path / "keys").checkpoint_key()
    (tmp_path / "keys" / "checkpoint").chmod(0o500)
    try:
        if os.access(tmp_path / "keys" / "checkpoint", os.W_OK):
            pytest.skip("running as root: a read-only directory is writable anyway (see the test above)")
        assert_refused(run("keys", "rotate", env=env), "checkpoint")
    finally:
        (tmp_path / "keys" / "checkpoint").chmod(0o700)


def test_audit_verify_with_a_corrupt_key(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    KeyStore(tmp_path / "keys").checkpoint_key()
    [key_file] = (tmp_path / "keys" / "checkpoint").glob("*.pem")
    key_file.write_bytes(b"not a key")
    assert_refused(run("audit", "verify", env=env), str(key_file))


def test_serve_with_a_bad_url_and_verbose_shows_the_traceback(tmp_path: Path) -> None:
    env = {**sqlite_env(tmp_path), "BROKER_DATABASE_URL": "nonsense"}
    assert_refused(serve(env), "BROKER_DATABASE_URL")
    verbose = run("--verbose", "serve", "--port", str(free_port()), env=env)
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr and "BROKER_DATABASE_URL" in verbose.stderr
