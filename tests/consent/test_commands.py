"""`broker consent verify FILE`: a saved artefact checked offline, against a JWKS file or the key
directory (the real command line, in a subprocess: exit codes and output as an operator sees them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.consent.artefact import FixedKeySigner, KeyConsentSigner
from broker.keys.store import KeyStore
from tests.consent.test_artefact import CLAIMS


def run(*args: str, keys_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BROKER_KEYS_DIR": str(keys_dir)}
    command = [sys.executable, "-m", "broker.cli", "consent", "verify", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def tampered(token: str) -> str:
    """The same artefact with one more use granted than was signed."""
    header, _payload, signature = token.split(".")
    signer = FixedKeySigner()
    _h, payload, _s = signer.sign({**CLAIMS, "max_uses": 1000}).split(".")
    return f"{header}.{payload}.{signature}"


def assert_valid(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("Consent artefact valid")
    for shown in (CLAIMS["jti"], CLAIMS["requester"], "urn:de:nachweis:meldebescheinigung", "wohngeld", "at most 2"):
        assert shown in done.stdout
    assert f"{CLAIMS['valid_from']} until {CLAIMS['valid_until']}" in done.stdout


def assert_refused(done: subprocess.CompletedProcess[str], complaint: str) -> None:
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and complaint in lines[0], done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def artefacts(tmp_path: Path) -> tuple[Path, Path]:
    """A granted artefact of a broker key directory, and a modified copy of it."""
    keys = KeyStore(tmp_path / "keys")
    token = KeyConsentSigner(keys).sign(CLAIMS)
    good, bad = tmp_path / "consent.jws", tmp_path / "modified.jws"
    good.write_text(token + "\n", encoding="ascii")
    bad.write_text(tampered(token), encoding="ascii")
    return good, bad


def test_verify_against_a_jwks_file(tmp_path: Path, artefacts: tuple[Path, Path]) -> None:
    good, bad = artefacts
    # The JWKS as saved from /.well-known/broker-keys; no key directory is needed.
    jwks = tmp_path / "broker-keys.json"
    jwks.write_text(json.dumps(KeyStore(tmp_path / "keys").jwks()), encoding="utf-8")
    elsewhere = tmp_path / "no-keys"
    assert_valid(run(str(good), "--jwks", str(jwks), keys_dir=elsewhere))
    assert_refused(run(str(bad), "--jwks", str(jwks), keys_dir=elsewhere), "bad signature")
    assert not elsewhere.exists()


def test_verify_against_the_key_directory(tmp_path: Path, artefacts: tuple[Path, Path]) -> None:
    good, bad = artefacts
    assert_valid(run(str(good), keys_dir=tmp_path / "keys"))
    assert_refused(run(str(bad), keys_dir=tmp_path / "keys"), "bad signature")
    # Another broker's keys know nothing of this artefact.
    KeyStore(tmp_path / "other").checkpoint_key()
    assert_refused(run(str(good), keys_dir=tmp_path / "other"), "unknown key id")


def test_what_cannot_be_checked_is_one_line_too(tmp_path: Path, artefacts: tuple[Path, Path]) -> None:
    good, _bad = artefacts
    not_json = tmp_path / "keys.txt"
    not_json.write_text("not json", encoding="utf-8")
    assert_refused(run(str(good), keys_dir=tmp_path / "nowhere"), "no broker keys")
    assert not (tmp_path / "nowhere").exists()
    assert_refused(run(str(tmp_path / "missing.jws"), keys_dir=tmp_path / "keys"), "cannot read")
    assert_refused(run(str(good), "--jwks", str(not_json), keys_dir=tmp_path / "keys"), "not a JSON document")
    # Hostile files: a device that never ends, a file far too large, a JSON nested beyond reason.
    assert_refused(run("/dev/zero", keys_dir=tmp_path / "keys"), "not a regular file")
    huge = tmp_path / "huge.jws"
    huge.write_bytes(b"A" * (1024 * 1024))
    assert_refused(run(str(huge), keys_dir=tmp_path / "keys"), "larger than")
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000, encoding="ascii")
    assert_refused(run(str(good), "--jwks", str(nested), keys_dir=tmp_path / "keys"), "not a JSON document")
