"""``broker audit export`` and ``broker audit verify-bundle``: offline verification of an export
against a checkpoint saved earlier, inclusion of an exchange, and tampering with the bundle."""

from __future__ import annotations

import base64
import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from broker.audit.bundle import write_bundle
from broker.audit.commands import audit
from broker.audit.merkle import leaf_hash
from broker.audit.note import Checkpoint, format_vkey, sign_note
from broker.audit.service import ENTRY_VERSION
from broker.audit.verify import (
    CHECKPOINT_FORGED,
    CHECKPOINT_RESIGNED,
    ENTRIES_ALTERED,
    ENTRIES_REORDERED,
    ENTRY_CHANGED,
    ENTRY_DELETED,
    ENTRY_INSERTED,
    FORK,
    PROOF_INVALID,
    ROLLBACK,
    LeafTree,
)
from broker.keys.store import KeyStore

from . import tamper
from .conftest import ORIGIN, Log, facts

pytestmark = pytest.mark.usefixtures("cli_env")


def run(*args: str) -> Result:
    return CliRunner().invoke(audit, list(args))


def export(out: Path) -> Path:
    result = run("export", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def save_checkpoint(path: Path) -> Path:
    result = run("checkpoint")
    assert result.exit_code == 0, result.output
    path.write_text(result.output, encoding="utf-8")
    return path


def verify_bundle(bundle: Path, *args: str) -> Result:
    return run("verify-bundle", str(bundle), *args)


def assert_intact(result: Result, entries: int) -> None:
    assert result.exit_code == 0, result.output
    assert f"bundle intact: {entries} entries" in result.output


def assert_tampered(result: Result, kind: str, *phrases: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(f"{kind.upper()}: ")]
    assert lines, f"no {kind!r} finding in:\n{result.output}"
    for phrase in phrases:
        assert any(phrase in line for line in lines), f"{phrase!r} not in {lines}"


def vkey(keys: KeyStore) -> str:
    return format_vkey(ORIGIN, keys.checkpoint_key()[0].public_key)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network and no database from here on: every connection attempt fails."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError("offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("BROKER_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    monkeypatch.setenv("BROKER_KEYS_DIR", "/nonexistent")


def test_auditor_proves_append_only_growth_and_inclusion_offline(
    log: Log, keys: KeyStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    log.grow(5, 4)
    last_week = save_checkpoint(tmp_path / "last-week.txt")
    log.record(2, requester="portal-rostock")
    log.integrate()
    exchange = json.loads(tamper.body_at(log.sessions, 10))["exchange"]
    log.grow(3)
    bundle = export(tmp_path / "bundle.zip")
    key = vkey(keys)

    request.getfixturevalue("offline")
    result = verify_bundle(bundle, "--trusted-checkpoint", str(last_week), "--key", key, "--exchange", exchange)
    assert_intact(result, 14)
    assert "your trusted checkpoint (tree size 9) is consistent with the latest checkpoint (tree size 14)" in (
        result.output
    )
    assert "4 signed checkpoints, each consistent with the next" in result.output
    assert f"exchange {exchange}: entry 10 (received) is included in the signed checkpoint for tree size 14" in (
        result.output
    )
    assert "warning" not in result.output


@pytest.mark.parametrize("name", ["bundle", "bundle.zip", "bundle.tar", "bundle.tar.gz", "bundle.tgz", "bundle.tar.xz"])
def test_every_bundle_form_verifies(log: Log, tmp_path: Path, name: str) -> None:
    log.grow(3, 2)
    bundle = export(tmp_path / name)
    result = verify_bundle(bundle)
    assert_intact(result, 5)
    assert "warning: verifier keys taken from the bundle itself" in result.output


def test_bundle_contents(log: Log, keys: KeyStore, tmp_path: Path) -> None:
    log.grow(3, 2)
    log.record(4)  # queued, not yet in a checkpoint: not exported
    bundle = export(tmp_path / "bundle")
    lines = (bundle / "entries.jsonl").read_bytes().splitlines()
    assert len(lines) == 5
    assert json.loads(lines[0])["v"] == ENTRY_VERSION
    assert (bundle / "leaf-hashes.bin").read_bytes() == b"".join(leaf_hash(line) for line in lines)
    assert (bundle / "verifier-keys.txt").read_text() == vkey(keys) + "\n"
    checkpoints = [json.loads(line) for line in (bundle / "checkpoints.jsonl").read_text().splitlines()]
    assert [c["tree_size"] for c in checkpoints] == [3, 5]
    assert (bundle / "latest-checkpoint.txt").read_text() == checkpoints[-1]["note"]
    proofs = [json.loads(line) for line in (bundle / "consistency-proofs.jsonl").read_text().splitlines()]
    assert [(p["old_size"], p["tree_size"]) for p in proofs] == [(3, 5)]
    assert json.loads((bundle / "bundle.json").read_text())["tree_size"] == 5


def test_export_refuses_to_overwrite(log: Log, tmp_path: Path) -> None:
    log.grow(1)
    export(tmp_path / "bundle.zip")
    result = run("export", "--out", str(tmp_path / "bundle.zip"))
    assert result.exit_code == 1
    assert "exists already" in result.output


def test_unknown_exchange_is_not_proven(log: Log, tmp_path: Path) -> None:
    log.grow(2)
    result = verify_bundle(export(tmp_path / "bundle"), "--exchange", "no-such-exchange")
    assert result.exit_code == 1
    assert "exchange no-such-exchange: NOT FOUND in the log" in result.output


# --- tampering with the bundle --------------------------------------------------------------------


@pytest.fixture
def bundle(log: Log, tmp_path: Path) -> Path:
    """13 entries signed at sizes 5, 9 and 13, exported as a directory."""
    log.grow(5, 4, 4)
    return export(tmp_path / "bundle")


def entry_lines(bundle: Path) -> list[bytes]:
    return (bundle / "entries.jsonl").read_bytes().splitlines()


def write_lines(bundle: Path, lines: list[bytes]) -> None:
    (bundle / "entries.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


def test_changed_entry_in_bundle(bundle: Path) -> None:
    lines = entry_lines(bundle)
    lines[6] = tamper.edited(lines[6], purpose="something harmless")
    write_lines(bundle, lines)
    assert_tampered(verify_bundle(bundle), ENTRY_CHANGED, "entry 6 was changed")


def test_changed_entry_and_leaf_hash_file(bundle: Path) -> None:
    lines = entry_lines(bundle)
    lines[6] = tamper.edited(lines[6], purpose="something harmless")
    write_lines(bundle, lines)
    (bundle / "leaf-hashes.bin").write_bytes(b"".join(leaf_hash(line) for line in lines))
    assert_tampered(verify_bundle(bundle), ENTRIES_ALTERED, "log index from 5 to 8")


def test_deleted_entry_in_bundle(bundle: Path) -> None:
    lines = entry_lines(bundle)
    del lines[6]
    write_lines(bundle, lines)
    assert_tampered(verify_bundle(bundle), ENTRY_DELETED, "entry 6 was deleted")


def test_inserted_entry_in_bundle(bundle: Path) -> None:
    lines = entry_lines(bundle)
    lines.insert(6, tamper.edited(lines[6], exchange="forged"))
    write_lines(bundle, lines)
    assert_tampered(verify_bundle(bundle), ENTRY_INSERTED, "an entry was inserted at log index 6")


def test_reordered_entries_in_bundle(bundle: Path) -> None:
    lines = entry_lines(bundle)
    lines[3], lines[7] = lines[7], lines[3]
    write_lines(bundle, lines)
    assert_tampered(verify_bundle(bundle), ENTRIES_REORDERED, "log indices 3, 7")


def test_forged_checkpoint_in_bundle(bundle: Path) -> None:
    path = bundle / "checkpoints.jsonl"
    checkpoints = [json.loads(line) for line in path.read_text().splitlines()]
    body, _, signature = checkpoints[1]["note"].partition("\n\n")
    origin, size, _root = body.split("\n")
    checkpoints[1]["note"] = f"{origin}\n{size}\n{base64.b64encode(bytes(32)).decode()}\n\n{signature}"
    path.write_text("".join(json.dumps(c) + "\n" for c in checkpoints))
    assert_tampered(verify_bundle(bundle), CHECKPOINT_FORGED, "does not verify")


def test_altered_consistency_proof(bundle: Path) -> None:
    path = bundle / "consistency-proofs.jsonl"
    proofs = [json.loads(line) for line in path.read_text().splitlines()]
    proofs[0]["hashes"][0] = base64.b64encode(bytes(32)).decode()
    path.write_text("".join(json.dumps(p) + "\n" for p in proofs))
    assert_tampered(verify_bundle(bundle), PROOF_INVALID, "from tree size 5 to 9 does not verify")


def forged_bundle(original: Path, out: Path, key: Ed25519PrivateKey) -> Path:
    """The bundle an attacker without the broker's key would make: entry 6 rewritten, every
    checkpoint signed again with the attacker's own key, the attacker's key as verifier key."""
    lines = entry_lines(original)
    lines[6] = tamper.edited(lines[6], requester="someone-else")
    tree = LeafTree([leaf_hash(line) for line in lines])
    notes = [(size, sign_note(Checkpoint(ORIGIN, size, tree.root(size)).body(), ORIGIN, key)) for size in (5, 9, 13)]
    write_bundle(
        out,
        origin=ORIGIN,
        entries=iter(lines),
        leaves=tree.levels[0],
        checkpoints=notes,
        vkeys=[format_vkey(ORIGIN, key.public_key())],
        exported_at=datetime.now(UTC),
    )
    return out


def test_bundle_re_signed_with_another_key(bundle: Path, keys: KeyStore, tmp_path: Path) -> None:
    trusted = save_checkpoint(tmp_path / "trusted.txt")
    forged = forged_bundle(bundle, tmp_path / "forged", Ed25519PrivateKey.generate())
    # Self-consistent, keys included: only a pinned key or a checkpoint kept from before exposes it.
    assert_intact(verify_bundle(forged), 13)
    assert_tampered(
        verify_bundle(forged, "--key", vkey(keys)), CHECKPOINT_RESIGNED, "tree size 13", "re-signed with another key"
    )
    assert_tampered(
        verify_bundle(forged, "--trusted-checkpoint", str(trusted)),
        CHECKPOINT_RESIGNED,
        "your trusted checkpoint is signed only by",
    )


def test_rolled_back_bundle(log: Log, tmp_path: Path) -> None:
    log.grow(5, 4)
    old_bundle = export(tmp_path / "old.zip")
    log.grow(4)
    trusted = save_checkpoint(tmp_path / "trusted.txt")
    assert_tampered(verify_bundle(old_bundle, "--trusted-checkpoint", str(trusted)), ROLLBACK, "rolled back")


def test_forked_bundle(log: Log, engine: Engine, keys: KeyStore, tmp_path: Path) -> None:
    log.grow(5, 4)
    trusted = save_checkpoint(tmp_path / "trusted.txt")
    log.grow(4)
    # The operator, holding the broker's key, rewrites entry 6 and re-signs everything.
    tamper.change_body(engine, log.sessions, 6, rehash=True)
    tree = tamper.rebuild_tree(log.sessions)
    tamper.resign(log.sessions, tree, [5, 9, 13], keys.checkpoint_key()[1])
    forked = export(tmp_path / "forked.zip")
    assert_intact(verify_bundle(forked, "--key", vkey(keys)), 13)
    assert_tampered(verify_bundle(forked, "--key", vkey(keys), "--trusted-checkpoint", str(trusted)), FORK, "forked")


def test_unreadable_bundle_is_an_error_not_a_crash(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive")
    result = verify_bundle(junk)
    assert result.exit_code == 1
    assert "Error:" in result.output


def test_entries_with_many_facts_round_trip(log: Log, tmp_path: Path) -> None:
    """Non-ASCII and escaped characters survive export byte for byte (the hash would tell)."""
    from broker.audit.service import record
    from broker.db.session import unit_of_work

    with unit_of_work(log.sessions) as session:
        record(session, facts(1, reason='Straße\n"quoted" \u2028 tab\t'))
    log.integrate()
    assert_intact(verify_bundle(export(tmp_path / "bundle.tar.gz")), 1)


def test_rotated_keys_pinned_together(log: Log, keys: KeyStore, tmp_path: Path) -> None:
    log.grow(3)
    old_key = vkey(keys)
    keys.rotate()
    log.grow(2)
    bundle = export(tmp_path / "bundle")
    both = f"{vkey(keys)}\n{old_key}\n"  # as GET /v1/audit/keys lists them
    assert_intact(verify_bundle(bundle, "--key", both), 5)
    assert_tampered(verify_bundle(bundle, "--key", vkey(keys)), CHECKPOINT_RESIGNED, "tree size 3")
