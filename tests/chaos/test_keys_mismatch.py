"""A broker with a log, restarted with the wrong keys directory (the original incident: an empty
BROKER_KEYS_DIR made the broker generate new keys silently and sign checkpoints that forked the
log). On SQLite and PostgreSQL, with signed checkpoints and entries still queued in the log:

* `broker serve` with an empty directory, or with another broker's keys, refuses to start with
  one line naming the directory and what to do; `broker audit integrate` (the other way to
  extend the log) refuses too;
* neither leaves a trace: no key file made, no entry integrated, no checkpoint signed, no key
  recorded as the log's;
* started with the right directory the broker serves again, integrates what was queued, nothing
  acknowledged is lost and `broker audit verify` finds the log intact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from broker.db.models import Checkpoint, KeyFingerprint, LogEntry
from broker.db.session import make_engine
from broker.keys.store import KeyStore
from broker.seal.xades import verify_sealed_evidence
from tests.chaos.load import (
    Load,
    acknowledged,
    assert_audit_verifies,
    assert_dense,
    describe,
    missing_from_log,
    wait_integrated,
)
from tests.conftest import LiveBroker, free_port, start_broker, stop_process
from tests.faults import ready, seed_database, wait_for
from tests.specimen import MELDE
from tests.test_startup import assert_refused, run

INTEGRATING = {"BROKER_INTEGRATE_INTERVAL_SECONDS": "0.2"}
# A run whose entries stay queued, as after a crash between an exchange and the next integration.
NOT_INTEGRATING = {"BROKER_INTEGRATE_INTERVAL_SECONDS": "0"}


@dataclass(frozen=True)
class LogSnapshot:
    entries: list[tuple[int, int | None, bytes]]  # seq, log index, leaf hash
    checkpoints: list[tuple[int, bytes, str]]  # size, root, signed note
    fingerprints: list[tuple[str, str, str | None, str]]  # purpose, fingerprint, key id, how

    @property
    def queued(self) -> int:
        return sum(1 for _seq, index, _leaf in self.entries if index is None)


def snapshot(database_url: str) -> LogSnapshot:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            entries = connection.execute(select(LogEntry.seq, LogEntry.log_index, LogEntry.leaf_hash).order_by("seq"))
            checkpoints = connection.execute(
                select(Checkpoint.tree_size, Checkpoint.root_hash, Checkpoint.note).order_by("tree_size")
            )
            fingerprints = connection.execute(
                select(
                    KeyFingerprint.purpose, KeyFingerprint.fingerprint, KeyFingerprint.key_id, KeyFingerprint.how
                ).order_by(KeyFingerprint.id)
            )
            return LogSnapshot(
                [(seq, index, bytes(leaf)) for seq, index, leaf in entries],
                [(size, bytes(root), note) for size, root, note in checkpoints],
                [(purpose, value, kid, how) for purpose, value, kid, how in fingerprints],
            )
    finally:
        engine.dispose()


def exchanges(broker: LiveBroker, token: str, count: int) -> dict[str, dict[str, object]]:
    with Load(broker.base_url, token, threads=4) as load:
        load.wait(60, "exchanges", acknowledged=count)
    return acknowledged(load.snapshot())


def test_keys_dir_mismatch(database_url: str, tmp_path: Path) -> None:
    seed_database(database_url)
    runs = [tmp_path / f"run-{n}" for n in range(3)]
    for directory in runs:
        directory.mkdir()
    answers: dict[str, dict[str, object]] = {}
    process, broker = start_broker(database_url, runs[0], INTEGRATING)
    try:
        token = broker.add_client("requester", MELDE)
        answers |= exchanges(broker, token, 10)
        wait_integrated(database_url)
    finally:
        stop_process(process)
    process, broker = start_broker(database_url, runs[1], NOT_INTEGRATING)
    try:
        answers |= exchanges(broker, token, 5)
    finally:
        stop_process(process)
    before = snapshot(database_url)
    assert before.checkpoints and before.queued > 0, "the log should hold checkpoints and queued entries"

    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "other"
    KeyStore(other).checkpoint_key()
    KeyStore(other).pseudonym_secret()
    other_files = sorted(other.rglob("*"))
    for keys_dir, says in ((empty, (str(empty), "broker keys adopt --yes")), (other, ("did not sign",))):
        wrong = {**broker.env, "BROKER_KEYS_DIR": str(keys_dir)}
        serve = run("serve", "--host", "127.0.0.1", "--port", str(free_port()), env=wrong, timeout=60)
        assert_refused(serve, "BROKER_KEYS_DIR", *says)
        assert_refused(run("audit", "integrate", env=wrong), *says)
        assert snapshot(database_url) == before
    assert list(empty.iterdir()) == [], "keys were made in the empty directory"
    assert sorted(other.rglob("*")) == other_files

    # The right directory: the broker serves again and integrates what was queued.
    process, broker = start_broker(database_url, runs[2], INTEGRATING)
    try:
        answers |= exchanges(broker, token, 5)
        state = wait_integrated(database_url)
    finally:
        stop_process(process)
    assert missing_from_log(database_url, answers) == []
    assert_dense(state)
    after = snapshot(database_url)
    assert after.fingerprints == before.fingerprints  # the log's keys are still its keys, no others
    # What was integrated stays as it was; what was queued is integrated now, unchanged.
    now = {seq: (index, leaf) for seq, index, leaf in after.entries}
    for seq, index, leaf in before.entries:
        assert now[seq][1] == leaf and now[seq][0] is not None and index in (None, now[seq][0])
    assert after.checkpoints[: len(before.checkpoints)] == before.checkpoints
    assert_audit_verifies(broker.env)


def listing(directory: Path) -> list[Path]:
    """The files under ``directory``, without the readiness check's passing probes."""
    return sorted(p.relative_to(directory) for p in directory.rglob("*") if not p.name.startswith(".readyz-"))


@pytest.mark.parametrize("replacement", ["empty", "other"])
def test_keys_dir_replaced_under_a_running_broker(database_url: str, tmp_path: Path, replacement: str) -> None:
    """The keys directory is replaced under a serving broker while clients send exchanges: by an
    empty one (a volume unmounted) or by another broker's keys. The broker goes on with the keys it
    loaded: it makes no keys there and signs or seals nothing with the ones it finds; /readyz
    says so meanwhile. Once the directory is back the log verifies with its keys."""
    seed_database(database_url)
    process, broker = start_broker(database_url, tmp_path, INTEGRATING)
    keys_dir, moved, other = broker.keys_dir, tmp_path / "keys-moved-away", tmp_path / "other"
    other.mkdir(mode=0o700)
    if replacement == "other":
        KeyStore(other).checkpoint_key()
        KeyStore(other).pseudonym_secret()
    found = listing(other)
    try:
        token = broker.add_client("requester", MELDE)
        with Load(broker.base_url, token, threads=4) as load, broker.client() as client:
            load.wait(60, "before the keys went", acknowledged=5)
            keys_dir.rename(moved)
            other.rename(keys_dir)
            replaced = time.monotonic()
            wait_for(lambda: client.get("/readyz").status_code == 503, 30, "not ready without its keys")
            expected = "missing" if replacement == "empty" else "replaced"
            assert client.get("/readyz").json()["checks"]["keys"] == expected
            load.wait(60, "while the keys were replaced", since=replaced, acknowledged=5)
            restored = time.monotonic()
            left = listing(keys_dir)
            keys_dir.rename(other)
            moved.rename(keys_dir)
            wait_for(lambda: ready(client), 30, "ready with its keys back")
            load.wait(60, "with the keys back", since=restored, acknowledged=5)
        outcomes = load.snapshot()
        assert left == found, "the broker changed the keys directory that replaced its own"
        assert all(o.status == 200 for o in outcomes), describe(outcomes)
        answers = acknowledged(outcomes)
        # Evidence sealed while the directory held no or other keys is sealed with the broker's own.
        meanwhile = next(o.body for o in outcomes if o.acknowledged and replaced <= o.started < restored)
        assert meanwhile is not None
        with broker.client(token) as client:
            evidence = client.get(f"/v1/evidence-requests/{meanwhile['id']}/evidence")
        certificates = [c.certificate for c in KeyStore(keys_dir).sealing_certificates()]
        verify_sealed_evidence(evidence.content, certificates)
        state = wait_integrated(database_url)
    finally:
        stop_process(process)
    assert missing_from_log(database_url, answers) == []
    assert_dense(state)
    assert_audit_verifies(broker.env)
