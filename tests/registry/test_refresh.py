"""A registry change made by another process reaches a serving broker within
``BROKER_REGISTRY_REFRESH_SECONDS``, and not before: two real brokers on one database (per
backend), the change made by ``broker rollout deactivate`` in a third process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import LiveBroker, fresh_broker, start_broker, stop_process
from tests.specimen import MELDE, request_body

SCHWERIN = "melderegister-13004"
# The broker that reads the registry often, and the one that does not read it again in this test.
OFTEN = {"BROKER_REGISTRY_REFRESH_SECONDS": "0.2"}
RARELY = {"BROKER_REGISTRY_REFRESH_SECONDS": "3600"}


@pytest.fixture(scope="module")
def brokers(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveBroker, LiveBroker]]:
    directory = tmp_path_factory.mktemp(f"registry-refresh-{backend}")
    (directory / "often").mkdir()
    (directory / "rarely").mkdir()
    for often in fresh_broker(backend, request, directory / "often", OFTEN):
        process, rarely = start_broker(often.database_url, directory / "rarely", RARELY)
        try:
            yield often, rarely
        finally:
            stop_process(process)


def _state(broker: LiveBroker, token: str) -> tuple[int, str | None]:
    """The answer to Erika's request for a Meldebescheinigung from Schwerin: status and reason."""
    with broker.client(token) as client:
        answer = client.post("/v1/evidence-requests", json=request_body())
    problem = answer.json().get("reason") if answer.status_code >= 400 else None
    return answer.status_code, problem


def test_a_change_by_another_process_reaches_each_broker_at_its_refresh(
    brokers: tuple[LiveBroker, LiveBroker],
) -> None:
    often, rarely = brokers
    token = often.add_client("requester", MELDE)
    assert _state(often, token) == (200, None)
    assert _state(rarely, token) == (200, None)

    done = subprocess.run(
        [sys.executable, "-m", "broker.cli", "rollout", "deactivate", SCHWERIN],
        env=often.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    changed = time.monotonic()

    # Within a few refreshes of 0.2 s (the bound leaves room for a loaded machine).
    deadline = changed + 4
    while (state := _state(often, token)) == (200, None) and time.monotonic() < deadline:
        time.sleep(0.1)
    refused_after = time.monotonic() - changed
    # The office's route is back to pending: no competent authority for this request.
    assert state == (404, "route.not_found")
    assert refused_after < 4

    # Longer than the default of 5 s: a broker that read the registry by the default, or at
    # every request, would refuse by now; this one keeps the routes it read at its start.
    time.sleep(max(0.0, 6 - (time.monotonic() - changed)))
    assert _state(rarely, token) == (200, None)
