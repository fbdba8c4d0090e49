"""The seal's signer processes under a real broker process (BROKER_SEAL_PROCESSES), on SQLite and
PostgreSQL: the evidence is sealed there, a signer that fails costs one request a 503
seal.unavailable with nothing written, and no signer outlives its broker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from broker.seal.sealer import TRUSTED_SECONDS
from tests.conftest import LiveBroker, start_broker, stop_process
from tests.exchange.test_api import post, validate_evidence
from tests.faults import assert_storage_problem, seed_database, wait_for
from tests.processes import alive, children, signer_pids
from tests.specimen import GEBURT, MELDE, request_body


@pytest.fixture
def broker(database_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], LiveBroker]]:
    seed_database(database_url)
    process, live = start_broker(database_url, tmp_path, {"BROKER_SEAL_TIMEOUT_SECONDS": "1"})
    try:
        yield process, live
    finally:
        stop_process(process)


def counts(broker: LiveBroker) -> tuple[int, int]:
    """Exchanges and log entries in the broker's database."""
    engine = create_engine(broker.database_url)
    with engine.connect() as connection:
        exchanges = connection.execute(text("SELECT count(*) FROM exchanges")).scalar_one()
        entries = connection.execute(text("SELECT count(*) FROM log_entries")).scalar_one()
    engine.dispose()
    return exchanges, entries


def signer_failures(broker: LiveBroker, token: str) -> float:
    with broker.client(token) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    [family] = [f for f in text_string_to_metric_families(answer.text) if f.name == "broker_signer_failures"]
    return sum(sample.value for sample in family.samples if sample.name == "broker_signer_failures_total")


def test_a_hung_signer_costs_a_503_and_nothing_is_written(broker: tuple[subprocess.Popen[bytes], LiveBroker]) -> None:
    process, live = broker
    requester = live.add_client("requester", MELDE, GEBURT)
    monitor = live.add_client("metrics")
    delivered = post(live, requester, request_body())
    assert delivered.status_code == 200, delivered.text
    pids = signer_pids(process.pid)
    assert len(pids) == 2  # the default
    before = counts(live)
    assert signer_failures(live, monitor) == 0

    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    answer = post(live, requester, request_body())
    body = assert_storage_problem(answer, "seal.unavailable")
    assert body["status"] == 503
    assert counts(live) == before  # the exchange and its entries rolled back: nothing acknowledged
    assert [alive(pid) for pid in pids].count(False) == 1  # the hung signer was killed, not left stopped
    assert signer_failures(live, monitor) == 1

    # The next requests are sealed by signers started afresh (the other stopped one is replaced
    # when it too fails a seal).
    for _ in range(3):
        answer = post(live, requester, request_body())
        if answer.status_code == 200:
            break
        assert_storage_problem(answer, "seal.unavailable")
    assert answer.status_code == 200, answer.text
    with live.client(requester) as client:
        evidence = client.get(answer.json()["evidence"]["href"])
    validate_evidence(evidence.content, live, "meldebescheinigung.xsd")
    logs = live.logs()
    assert "seal_unavailable" in logs and "unhandled_error" not in logs


def test_readyz_names_a_signer_that_does_not_seal_and_recovers_by_itself(database_url: str, tmp_path: Path) -> None:
    seed_database(database_url)
    # The probe that meets the stopped signer waits this long; the one after it starts a signer
    # afresh within it, also on a loaded machine.
    env = {"BROKER_SEAL_PROCESSES": "1", "BROKER_SEAL_TIMEOUT_SECONDS": "3"}
    process, live = start_broker(database_url, tmp_path, env)
    try:
        requester = live.add_client("requester", MELDE)
        assert post(live, requester, request_body()).status_code == 200
        [pid] = signer_pids(process.pid)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(TRUSTED_SECONDS)  # the last exchange's seal no longer vouches for the signer
        with live.client() as client:
            unready = client.get("/readyz")
            assert unready.status_code == 503, unready.text
            body = unready.json()
            assert body["reason"] == "not_ready" and "seal unavailable" in body["detail"]
            assert {name for name, state in body["checks"].items() if state != "ok"} == {"seal"}
            assert not alive(pid)  # the probe's timeout killed the stopped signer
            # Out of service, the process gets no exchange to prove it: a later probe does.
            wait_for(lambda: client.get("/readyz").status_code == 200, 10, "a probe to find the signer sealing")
            assert client.get("/readyz").json()["checks"]["seal"] == "ok"
        assert post(live, requester, request_body()).status_code == 200
    finally:
        stop_process(process)


def test_no_signer_outlives_a_killed_broker(broker: tuple[subprocess.Popen[bytes], LiveBroker]) -> None:
    process, _ = broker
    pids = signer_pids(process.pid)
    assert len(pids) == 2
    process.kill()
    process.wait()
    wait_for(lambda: not any(alive(pid) for pid in pids), 10, "the signers to exit with their broker")


def test_each_worker_has_its_own_signers_and_takes_them_along(database_url: str, tmp_path: Path) -> None:
    seed_database(database_url)
    process, live = start_broker(database_url, tmp_path, workers=2)
    signers: dict[int, list[int]] = {}
    try:
        requester = live.add_client("requester", MELDE)
        for _ in range(4):
            answer = post(live, requester, request_body())
            assert answer.status_code == 200, answer.text
        signers.update((worker, signer_pids(worker)) for worker in children(process.pid) if signer_pids(worker))
        assert len(signers) == 2 and all(len(pids) == 2 for pids in signers.values())
    finally:
        stop_process(process)
    every = [pid for pids in signers.values() for pid in pids]
    wait_for(lambda: not any(alive(pid) for pid in every), 10, "every worker's signers to exit with the broker")
