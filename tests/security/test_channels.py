"""Every channel holds the same line: the level of assurance on the JSON API, and citizen links that
never come from the Host header (real broker processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from broker.db.models import Exchange
from tests.conftest import PRODUCTION_SIGN_IN, SHARED_DIR, LiveBroker, free_port, start_broker, stop_process
from tests.oots.support import DK_AGENT, EdmRequest, failure_of, post_edm
from tests.specimen import GEBURT, MELDE, request_body

PUBLIC_URL = "https://broker.example"


def test_the_json_api_refuses_a_citizen_authenticated_below_the_evidence_types_level(live_broker: LiveBroker) -> None:
    token = live_broker.add_client("requester", MELDE)
    with live_broker.client(token) as client:
        low = client.post("/v1/evidence-requests", json=request_body(assurance="low"))
        enough = client.post("/v1/evidence-requests", json=request_body(assurance="substantial"))
        bogus = client.post("/v1/evidence-requests", json=request_body(assurance="very high"))
    assert low.status_code == 403, low.text
    assert low.json()["reason"] == "assurance.insufficient" and low.json()["exchange"]["state"] == "rejected"
    assert low.json()["errors"][0]["field"] == "assurance"
    assert enough.status_code == 200, enough.text
    assert bogus.status_code == 422
    engine = create_engine(live_broker.database_url)
    with engine.connect() as connection:
        reason = connection.scalar(select(Exchange.reason).where(Exchange.id == low.json()["exchange"]["id"]))
    engine.dispose()
    assert reason == "assurance.insufficient"


def test_outside_development_the_broker_does_not_start_without_its_public_url(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BROKER_DATABASE_URL": f"sqlite:///{tmp_path / 'broker.db'}",
        "BROKER_KEYS_DIR": str(tmp_path / "keys"),
        "BROKER_ENV": "production",
        "BROKER_PUBLIC_URL": "",
        **PRODUCTION_SIGN_IN,
    }
    for public_url in ("", "http://broker.example", "broker.example"):
        done = subprocess.run(
            [sys.executable, "-m", "broker.cli", "serve", "--port", str(free_port())],
            env={**env, "BROKER_PUBLIC_URL": public_url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert "BROKER_PUBLIC_URL" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def production_broker(seeded_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    env = {
        "BROKER_ENV": "production",
        "BROKER_PUBLIC_URL": PUBLIC_URL,
        "BROKER_SCHEMA_PATH": str(SHARED_DIR / "oots" / "xsd"),
        **PRODUCTION_SIGN_IN,
    }
    process, broker = start_broker(seeded_database_url, tmp_path_factory.mktemp("production"), env)
    try:
        yield broker
    finally:
        stop_process(process)


def test_preview_links_name_the_public_url_whatever_the_host_header(production_broker: LiveBroker) -> None:
    token = production_broker.add_client("requester", GEBURT, agent=DK_AGENT)
    request = EdmRequest(possibility_for_preview=True)
    with production_broker.client(token) as client:
        client.headers["Host"] = "attacker.example"
        answer = post_edm(client, request.xml())
    location = failure_of(answer).slots["PreviewLocation"]
    assert location.startswith(PUBLIC_URL + "/preview/"), location
