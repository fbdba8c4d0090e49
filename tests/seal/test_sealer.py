"""Sealing in signer processes (broker.seal.sealer.ProcessSealer), with real child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from broker.keys.store import KeyStore
from broker.seal.sealer import KeySealer, ProcessSealer, SignerUnavailable
from broker.seal.xades import SealingError, verify_sealed_evidence_detailed
from broker.xml.hardened import XmlLimits
from tests.faults import wait_for
from tests.processes import alive, signer_pids
from tests.seal.test_xades import EVIDENCE, c14n, trusted

LIMITS = XmlLimits(max_bytes=64 * 1024)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


@pytest.fixture
def sealer(store: KeyStore) -> Iterator[ProcessSealer]:
    pool = ProcessSealer(store, 2, LIMITS, timeout_seconds=30)
    pool.start()
    try:
        yield pool
    finally:
        pool.close()


def signed_by(store: KeyStore, sealed: bytes) -> bytes:
    """The DER of the certificate that sealed ``sealed``, after checking the seal covers EVIDENCE."""
    result = verify_sealed_evidence_detailed(sealed, trusted(store))
    assert c14n(result.document) == c14n(etree.fromstring(EVIDENCE))
    return result.certificate.fingerprint(result.certificate.signature_hash_algorithm)  # type: ignore[arg-type]


def test_the_seal_is_the_one_made_in_the_thread(store: KeyStore, sealer: ProcessSealer) -> None:
    in_thread = KeySealer(store).seal(EVIDENCE)
    in_signer = sealer.seal(EVIDENCE)
    assert signed_by(store, in_signer) == signed_by(store, in_thread)
    # The same signature over the same document, but for its value and signing time.
    shape = [element.tag for element in etree.fromstring(in_thread).iter()]
    assert [element.tag for element in etree.fromstring(in_signer).iter()] == shape


def test_a_parsed_document_is_sealed_as_its_bytes(store: KeyStore, sealer: ProcessSealer) -> None:
    root = etree.fromstring(EVIDENCE)
    before = c14n(root)
    signed_by(store, sealer.seal(root))
    assert c14n(root) == before


def test_seals_run_in_the_signer_processes_side_by_side(store: KeyStore, sealer: ProcessSealer) -> None:
    assert len(signer_pids(os.getpid())) == 2
    with ThreadPoolExecutor(4) as threads:
        sealed = list(threads.map(lambda _: sealer.seal(EVIDENCE), range(40)))
    for document in sealed:
        signed_by(store, document)
    assert len(signer_pids(os.getpid())) == 2  # no signer was replaced


def test_a_rotation_takes_effect_at_the_next_seal(store: KeyStore, sealer: ProcessSealer) -> None:
    before = signed_by(store, sealer.seal(EVIDENCE))
    store.rotate()
    after = {signed_by(store, sealer.seal(EVIDENCE)) for _ in range(4)}  # both signers
    new_certificate = store.sealing_key()[1]
    assert after == {new_certificate.fingerprint(new_certificate.signature_hash_algorithm)}  # type: ignore[arg-type]
    assert before not in after


def test_a_document_the_signer_refuses_raises_sealing_error_and_the_signer_stays(store: KeyStore) -> None:
    failures: list[None] = []
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=30, on_failure=lambda: failures.append(None))
    try:
        signed_by(store, sealer.seal(EVIDENCE))
        pids = signer_pids(os.getpid())
        with pytest.raises(SealingError, match="already carries a ds:Signature"):
            sealer.seal(sealer.seal(EVIDENCE))
        signed_by(store, sealer.seal(EVIDENCE))  # the same signer, still in step
        assert signer_pids(os.getpid()) == pids
        assert failures == []  # the document's fault, not the signer's
    finally:
        sealer.close()


def test_documents_larger_than_a_pipe_go_both_ways(store: KeyStore) -> None:
    filler = "".join(f"<Ort>Schwerin {n}</Ort>" for n in range(12000)).encode()
    evidence = EVIDENCE.replace(b"<Ort>Schwerin</Ort>", filler)
    assert len(evidence) > 4 * 65536
    sealer = ProcessSealer(store, 1, XmlLimits(max_bytes=1024 * 1024), timeout_seconds=30)
    try:
        sealed = sealer.seal(evidence)
    finally:
        sealer.close()
    result = verify_sealed_evidence_detailed(sealed, trusted(store))
    assert c14n(result.document) == c14n(etree.fromstring(evidence))


def test_a_signer_gets_none_of_the_brokers_settings(store: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_OIDC_CLIENT_SECRET", "not-for-the-signer")
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=30)
    try:
        sealer.start()
        [pid] = signer_pids(os.getpid())
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    finally:
        sealer.close()
    assert not [variable for variable in environment if variable.startswith(b"BROKER_")]
    assert any(variable.startswith(b"PYTHONPATH=") for variable in environment)


# Signers that misbehave, started instead of the real one (they ignore the --max-bytes it is given).
_READS_A_REQUEST = (
    "import sys, time; i = sys.stdin.buffer; i.read(1); n = int.from_bytes(i.read(4), 'big'); i.read(n); "
)
_ANSWERS = "o = sys.stdout.buffer; o.write({answer!r}); o.flush(); time.sleep(60)"


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"0" + (1000).to_bytes(4, "big") + b"<short", "did not answer in time"),
        (b"0" + (1000).to_bytes(4, "big"), "did not answer in time"),
        (b"7" + (5).to_bytes(4, "big") + b"hello", "unknown status"),
        (b"0" + (2**31).to_bytes(4, "big"), "announced an answer of 2147483648 bytes"),
    ],
    ids=["cut-short", "no-payload", "unknown-status", "too-long"],
)
def test_a_signer_that_answers_nonsense_fails_the_seal_in_time(store: KeyStore, answer: bytes, why: str) -> None:
    command = (sys.executable, "-c", _READS_A_REQUEST + _ANSWERS.format(answer=answer))
    failures: list[None] = []
    sealer = ProcessSealer(
        store, 1, LIMITS, timeout_seconds=1, command=command, on_failure=lambda: failures.append(None)
    )
    try:
        started = time.monotonic()
        with pytest.raises(SignerUnavailable, match=why):
            sealer.seal(EVIDENCE)
        assert time.monotonic() - started < 5
        assert signer_pids(os.getpid()) == []  # killed, not waited for
        assert len(failures) == 1  # counted (broker_signer_failures_total)
    finally:
        sealer.close()


# The real signer, each seal 0.6 s slower.
_SLOW_SIGNER = (
    sys.executable,
    "-c",
    "import time; from broker.seal import signer as s; seal = s._seal; "
    "s._seal = lambda *a: (time.sleep(0.6), seal(*a))[1]; s.main()",
)


def test_waiting_for_a_free_signer_does_not_shorten_the_seal(store: KeyStore) -> None:
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=1, command=_SLOW_SIGNER)
    try:
        sealer.start()
        time.sleep(0.5)  # imported
        with ThreadPoolExecutor(2) as threads:
            calls = [threads.submit(sealer.seal, EVIDENCE) for _ in range(2)]
            # The second waits about 0.6 s for the signer, then gets its own second for the seal.
            for call in calls:
                signed_by(store, call.result(timeout=10))
    finally:
        sealer.close()


def test_close_waits_for_a_seal_under_way_and_refuses_later_ones(store: KeyStore) -> None:
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=5, command=_SLOW_SIGNER)
    sealer.start()
    with ThreadPoolExecutor(1) as threads:
        under_way = threads.submit(sealer.seal, EVIDENCE)
        time.sleep(0.3)
        sealer.close()
        signed_by(store, under_way.result(timeout=10))
    assert signer_pids(os.getpid()) == []
    started = time.monotonic()
    with pytest.raises(SignerUnavailable, match="stopping"):
        sealer.seal(EVIDENCE)
    assert time.monotonic() - started < 1
    assert signer_pids(os.getpid()) == []  # none started again


def test_a_signer_killed_while_idle_is_started_afresh(store: KeyStore, tmp_path: Path) -> None:
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=30)
    try:
        signed_by(store, sealer.seal(EVIDENCE))
        [pid] = signer_pids(os.getpid())
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), 10, "the signer to die")
        signed_by(store, sealer.seal(EVIDENCE))  # the key is sent to the new signer too
        [new_pid] = signer_pids(os.getpid())
        assert new_pid != pid
    finally:
        sealer.close()


@pytest.fixture
def hung(store: KeyStore) -> Iterator[tuple[ProcessSealer, int]]:
    """A pool of one signer with a one-second timeout, its signer stopped (SIGSTOP) after a seal."""
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=1)
    try:
        signed_by(store, sealer.seal(EVIDENCE))
        [pid] = signer_pids(os.getpid())
        os.kill(pid, signal.SIGSTOP)
        yield sealer, pid
    finally:
        sealer.close()


def test_a_signer_that_hangs_fails_the_seal_in_time_and_is_replaced(
    store: KeyStore, hung: tuple[ProcessSealer, int]
) -> None:
    sealer, pid = hung
    started = time.monotonic()
    with pytest.raises(SignerUnavailable, match="did not answer in time"):
        sealer.seal(EVIDENCE)
    assert time.monotonic() - started < 5
    assert not alive(pid)  # killed, not left stopped
    signed_by(store, sealer.seal(EVIDENCE))
    assert signer_pids(os.getpid()) != [pid]


def test_a_caller_waits_no_longer_than_the_timeout_for_a_free_signer(store: KeyStore) -> None:
    failures: list[None] = []
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=1, on_failure=lambda: failures.append(None))
    try:
        # The only signer taken, as by a call that holds it. (Holding it with a real call is a race:
        # that call gives it back at its own timeout, just before the waiting one's ends.)
        busy = sealer._idle.get()
        started = time.monotonic()
        with pytest.raises(SignerUnavailable, match="no signer process was free within 1 s"):
            sealer.seal(EVIDENCE)
        assert 0.9 < time.monotonic() - started < 3
        assert len(failures) == 1  # counted (broker_signer_failures_total)
        sealer._idle.put(busy)
        signed_by(store, sealer.seal(EVIDENCE))  # the signer given back serves the next call
    finally:
        sealer.close()


def test_a_caller_still_waiting_when_the_broker_stops_is_no_signer_failure(store: KeyStore) -> None:
    failures: list[None] = []
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=1, on_failure=lambda: failures.append(None))
    busy = sealer._idle.get()  # the only signer held, as by a call under way
    try:
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(sealer.seal, EVIDENCE)
            time.sleep(0.2)
            sealer.close()  # gives up on the held signer after its timeout
            with pytest.raises(SignerUnavailable, match="stopping"):
                waiting.result()
        assert failures == []  # stopping is not a signer that failed (broker_signer_failures_total)
    finally:
        busy.stop()


def test_close_ends_the_signers(store: KeyStore) -> None:
    sealer = ProcessSealer(store, 2, LIMITS, timeout_seconds=30)
    sealer.start()
    pids = signer_pids(os.getpid())
    assert len(pids) == 2
    sealer.close()
    assert not any(alive(pid) for pid in pids)


def test_the_signers_end_when_the_broker_is_killed(store: KeyStore) -> None:
    """kill -9 of the serving process leaves no signer behind: their input closes with it."""
    owner = textwrap.dedent(
        f"""
        import sys, time
        from broker.keys.store import KeyStore
        from broker.seal.sealer import ProcessSealer
        from broker.xml.hardened import XmlLimits
        sealer = ProcessSealer(KeyStore({str(store.keys_dir)!r}), 2, XmlLimits(max_bytes=65536), 30)
        sealer.start()
        print("started", flush=True)
        time.sleep(600)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", owner], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"started\n"
        pids = signer_pids(process.pid)
        assert len(pids) == 2
        process.kill()
        process.wait()
        wait_for(lambda: not any(alive(pid) for pid in pids), 10, "the orphaned signers to exit")
    finally:
        process.kill()
        process.wait()


def test_readiness_proves_the_first_seal_with_a_probe(store: KeyStore) -> None:
    failures: list[None] = []
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=30, on_failure=lambda: failures.append(None))
    try:
        assert signer_pids(os.getpid()) == []  # not started yet
        assert sealer.readiness() == "ok"
        assert len(signer_pids(os.getpid())) == 1  # the probe started it and sealed
        assert failures == []
    finally:
        sealer.close()
    assert sealer.readiness() == "stopped"


def test_readiness_trusts_a_recent_seal_and_probes_once_it_is_older(
    store: KeyStore, hung: tuple[ProcessSealer, int]
) -> None:
    sealer, pid = hung  # sealed a moment ago, then its only signer was stopped
    started = time.monotonic()
    assert sealer.readiness() == "ok"  # no probe: the seal a moment ago vouches for it
    assert time.monotonic() - started < 0.5 and alive(pid)
    sealer._trust_seconds = 0  # as once TRUSTED_SECONDS have passed without a seal
    assert sealer.readiness() == "unavailable"  # the probe met the stopped signer
    assert not alive(pid)
    assert sealer.readiness() == "ok"  # the next probe started it afresh: ready again by itself


def test_readiness_after_a_failed_seal_says_so_then_probes_and_recovers(
    store: KeyStore, hung: tuple[ProcessSealer, int]
) -> None:
    sealer, pid = hung
    with pytest.raises(SignerUnavailable):
        sealer.seal(EVIDENCE)  # an exchange's seal fails
    assert not alive(pid)
    assert sealer.readiness() == "unavailable"  # believed for a moment, no probe
    assert signer_pids(os.getpid()) == []  # none started again yet
    sealer._trust_seconds = 0  # as once TRUSTED_SECONDS have passed
    assert sealer.readiness() == "ok"  # probed with a signer started afresh
    assert signer_pids(os.getpid()) not in ([], [pid])


def test_signers_that_cannot_start_keep_readiness_unavailable_and_probes_spaced(store: KeyStore) -> None:
    failures: list[None] = []
    broken = (sys.executable, "-c", "import sys; sys.exit(3)")
    sealer = ProcessSealer(store, 2, LIMITS, 5, command=broken, on_failure=lambda: failures.append(None))
    try:
        assert sealer.readiness() == "unavailable"
        assert len(failures) == 1  # a failed probe is a signer failure (broker_signer_failures_total)
        for _ in range(20):  # asked again and again: the failure stands, no probe starts a process
            assert sealer.readiness() == "unavailable"
        assert len(failures) == 1
        sealer._trust_seconds = 0  # as once TRUSTED_SECONDS have passed
        assert sealer.readiness() == "unavailable"  # probed again, not remembered for good
        assert len(failures) == 2
    finally:
        sealer.close()


def test_a_call_during_a_slow_first_probe_waits_a_moment_and_says_starting(store: KeyStore) -> None:
    silent = (sys.executable, "-c", "import time; time.sleep(60)")  # never answers
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=4, command=silent)
    try:
        with ThreadPoolExecutor(1) as pool:
            probing = pool.submit(sealer.readiness)
            wait_for(sealer._probing.locked, 5, "the first call to probe")
            started = time.monotonic()
            assert sealer.readiness() == "starting"  # no seal yet; it did not probe a second time
            assert 0.9 < time.monotonic() - started < 3  # waited PROBE_WAIT_SECONDS, not the probe
            assert probing.result() == "unavailable"
        assert sealer.readiness() == "unavailable"
    finally:
        sealer.close()


def test_a_call_during_a_stuck_probe_is_not_told_an_old_success(store: KeyStore) -> None:
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=4, trust_seconds=0)
    try:
        signed_by(store, sealer.seal(EVIDENCE))
        [pid] = signer_pids(os.getpid())
        os.kill(pid, signal.SIGSTOP)
        with ThreadPoolExecutor(1) as pool:
            probing = pool.submit(sealer.readiness)
            wait_for(sealer._probing.locked, 5, "the first call to probe")
            started = time.monotonic()
            assert sealer.readiness() == "unavailable"  # not the seal before the signer stopped
            assert 0.9 < time.monotonic() - started < 3
            assert probing.result() == "unavailable"
    finally:
        sealer.close()


def test_a_call_during_a_quick_probe_gets_its_outcome(store: KeyStore) -> None:
    sealer = ProcessSealer(store, 1, LIMITS, timeout_seconds=30)
    try:
        sealer.start()
        with ThreadPoolExecutor(4) as pool:
            states = list(pool.map(lambda _: sealer.readiness(), range(4)))
        assert states == ["ok"] * 4  # one probed, the others waited for it
    finally:
        sealer.close()


def test_a_probe_the_signer_refuses_is_not_repeated_at_once(store: KeyStore) -> None:
    # Documents over 40 bytes are refused by this signer (a SealingError, not a signer failure).
    sealer = ProcessSealer(store, 1, XmlLimits(max_bytes=10), timeout_seconds=30)
    probes: list[bytes] = []
    seal = sealer.seal

    def counted(evidence: bytes) -> bytes:
        probes.append(evidence)
        return seal(evidence)

    sealer.seal = counted  # type: ignore[method-assign]
    try:
        for _ in range(20):
            assert sealer.readiness() == "unavailable"
        assert len(probes) == 1
        sealer._trust_seconds = 0
        assert sealer.readiness() == "unavailable"
        assert len(probes) == 2
    finally:
        sealer.close()


def test_at_least_one_process() -> None:
    with pytest.raises(ValueError, match="at least one process"):
        ProcessSealer(KeyStore("/nonexistent"), 0, LIMITS, timeout_seconds=1)
