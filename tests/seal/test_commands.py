import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from broker.clients.service import CLI_ACTOR
from broker.db.models import LogEntry
from broker.db.session import Database, make_engine
from broker.keys.store import KeyStore
from broker.seal import commands
from broker.seal.commands import evidence, keys
from broker.seal.xades import seal_evidence

EVIDENCE = (
    b'<Meldebescheinigung xmlns="urn:de:nachweis:meldebescheinigung:1">'
    b"<Person><Familienname>Mustermann</Familienname><Vorname>Erika</Vorname></Person>"
    b"<Anschrift><Ort>Schwerin</Ort></Anschrift></Meldebescheinigung>"
)
SUBJECT = "CN=Once-Only Broker (development)"


@pytest.fixture
def keys_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys"
    monkeypatch.setenv("BROKER_KEYS_DIR", str(path))
    # `keys rotate` records the new checkpoint key in the log's database.
    monkeypatch.setenv("BROKER_DATABASE_URL", f"sqlite:///{tmp_path / 'broker.db'}")
    return path


def seal_to(path: Path, store: KeyStore, content: bytes = EVIDENCE) -> Path:
    path.write_bytes(seal_evidence(content, *store.sealing_key()))
    return path


def test_keys_dir_defaults_to_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BROKER_KEYS_DIR", raising=False)
    assert commands.keys_dir() == Path(__file__).resolve().parents[2] / "keys"
    monkeypatch.setenv("BROKER_KEYS_DIR", "/somewhere/else")
    assert commands.keys_dir() == Path("/somewhere/else")


def test_verify_valid_file(keys_dir: Path, tmp_path: Path) -> None:
    store = KeyStore(keys_dir)
    sealed = seal_to(tmp_path / "sealed.xml", store)
    result = CliRunner().invoke(evidence, ["verify", str(sealed)])
    assert result.exit_code == 0, result.output
    kid = store.sealing_certificates()[0].kid
    assert result.output == f"{sealed}: ok (signed by {SUBJECT}, key {kid})\n"


def test_verify_tampered_file_fails(keys_dir: Path, tmp_path: Path) -> None:
    sealed = seal_to(tmp_path / "sealed.xml", KeyStore(keys_dir))
    sealed.write_bytes(sealed.read_bytes().replace(b"Schwerin", b"Berlin"))
    result = CliRunner().invoke(evidence, ["verify", str(sealed)])
    assert result.exit_code == 1
    assert result.output.startswith(f"{sealed}: INVALID: ")
    assert "Digest mismatch" in result.output


def test_verify_foreign_seal_fails(keys_dir: Path, tmp_path: Path) -> None:
    KeyStore(keys_dir).checkpoint_key()
    sealed = seal_to(tmp_path / "foreign.xml", KeyStore(tmp_path / "other-keys"))
    result = CliRunner().invoke(evidence, ["verify", str(sealed)])
    assert result.exit_code == 1
    assert "not one of the broker's certificates" in result.output


def test_verify_several_files_fails_if_any_fails(keys_dir: Path, tmp_path: Path) -> None:
    store = KeyStore(keys_dir)
    good = seal_to(tmp_path / "good.xml", store)
    unsigned = tmp_path / "unsigned.xml"
    unsigned.write_bytes(EVIDENCE)
    missing = tmp_path / "missing.xml"
    result = CliRunner().invoke(evidence, ["verify", str(good), str(unsigned), str(missing)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{good}: ok (")
    assert lines[1].startswith(f"{unsigned}: INVALID: no ds:Signature")
    assert lines[2].startswith(f"{missing}: cannot read")


def test_verify_without_keys_does_not_generate_any(keys_dir: Path, tmp_path: Path) -> None:
    sealed = seal_to(tmp_path / "sealed.xml", KeyStore(tmp_path / "other-keys"))
    result = CliRunner().invoke(evidence, ["verify", str(sealed)])
    assert result.exit_code != 0
    assert "no broker keys" in result.output
    assert not (keys_dir / "manifest.json").exists()


def test_rotate_then_old_and_new_evidence_verify(keys_dir: Path, tmp_path: Path) -> None:
    store = KeyStore(keys_dir)
    old_kid = store.sealing_certificates()[0].kid
    old = seal_to(tmp_path / "old.xml", store)

    result = CliRunner().invoke(keys, ["rotate"])
    assert result.exit_code == 0, result.output
    assert f"(retired {old_kid})" in result.output

    new_kid = store.sealing_certificates()[0].kid
    assert new_kid != old_kid
    # The rotation is a step in the log: who, and which keys sign from now on.
    engine = make_engine(f"sqlite:///{tmp_path / 'broker.db'}")
    with Database(engine).read() as session:
        [entry] = [e for e in session.scalars(select(LogEntry)) if e.event == "keys_rotated"]
        facts = json.loads(entry.body)
    engine.dispose()
    assert facts["actor"] == CLI_ACTOR
    assert facts["change"] == f"keys/{store.checkpoint_key()[0].kid},{new_kid}"
    new = seal_to(tmp_path / "new.xml", store)
    result = CliRunner().invoke(evidence, ["verify", str(old), str(new)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{old}: ok (signed by {SUBJECT}, key {old_kid})",
        f"{new}: ok (signed by {SUBJECT}, key {new_kid})",
    ]
