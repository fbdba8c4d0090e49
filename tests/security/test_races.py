"""Limits hold under concurrency: consent uses, and one Idempotency-Key (real broker, both databases)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from broker.db.models import Exchange, LogEntry
from tests.conftest import LiveBroker
from tests.consent.support import decide_as_citizen
from tests.specimen import ERIKA, MELDE, request_body

PARALLEL = 16


def _all_at_once(
    broker: LiveBroker, token: str, requests: list[tuple[dict[str, Any], dict[str, str]]]
) -> list[httpx.Response]:
    def send(request: tuple[dict[str, Any], dict[str, str]]) -> httpx.Response:
        body, headers = request
        with broker.client(token) as client:
            return client.post("/v1/evidence-requests", json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def test_a_consent_is_never_used_more_than_max_uses(live_broker: LiveBroker) -> None:
    token = live_broker.add_client("requester", MELDE)
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    consent = {
        "subject": ERIKA,
        "evidence_types": [MELDE],
        "purpose": "Wohngeldantrag",
        "valid_until": until,
        "max_uses": 3,
    }
    with live_broker.client(token) as client:
        created = client.post("/v1/consents", json=consent)
    assert created.status_code == 201, created.text
    decide_as_citizen(live_broker, created.json()["id"])
    body = request_body(consent_id=created.json()["id"], explicit_request=False, legal_basis=None)
    answers = _all_at_once(live_broker, token, [(body, {})] * PARALLEL)
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) == 3, statuses
    assert all(
        a.status_code == 403 and a.json()["reason"] == "consent.invalid" for a in answers if a.status_code != 200
    )
    with live_broker.client(token) as client:
        assert client.get(f"/v1/consents/{created.json()['id']}").json()["uses"] == 3


def test_one_idempotency_key_makes_one_exchange_and_one_authority_call(live_broker: LiveBroker) -> None:
    token = live_broker.add_client("requester", MELDE)
    key = f"race-{uuid.uuid4()}"
    answers = _all_at_once(live_broker, token, [(request_body(), {"Idempotency-Key": key})] * 8)
    assert [a.status_code for a in answers] == [200] * 8, [a.text[:200] for a in answers if a.status_code != 200]
    assert len({a.json()["id"] for a in answers}) == 1
    engine = create_engine(live_broker.database_url)
    with engine.connect() as connection:
        exchanges = connection.execute(select(Exchange.id).where(Exchange.idempotency_key == key)).scalars().all()
        # One `routed` entry: the authority was asked once.
        routed = connection.scalar(
            select(func.count())
            .select_from(LogEntry)
            .where(LogEntry.exchange_id.in_(exchanges), LogEntry.event == "routed")
        )
    engine.dispose()
    assert len(exchanges) == 1 and routed == 1
