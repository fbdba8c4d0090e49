"""The log's request digests are keyed: a digest cannot be turned back into the subject by guessing."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from typing import Any

from sqlalchemy import create_engine, select

from broker.db.models import LogEntry
from tests.conftest import LiveBroker
from tests.specimen import MELDE, request_body

GIVEN_NAMES = ("Anna", "Erika", "Maria", "Petra", "Sabine")
FAMILY_NAMES = ("Meyer", "Mustermann", "Schmidt", "Schulz")


def unkeyed(body: dict[str, Any]) -> str:
    """What the log held before: SHA-256 of the canonical request (the request model's fields as
    the API had them), subject included."""
    canonical = {
        "evidence_type": MELDE,
        "jurisdiction": None,
        "subject": {"idnr": None, "family_name": None, "given_name": None, "birth_date": None},
        "purpose": None,
        "legal_basis": None,
        "explicit_request": False,
        "consent_id": None,
        "preview": False,
        "callback_url": None,
    }
    canonical.update({k: v for k, v in body.items() if k != "subject"})
    canonical["subject"] = {**canonical["subject"], "birth_place": None, "birth_name": None, **body["subject"]}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_request_digest_cannot_be_brute_forced(live_broker: LiveBroker) -> None:
    requester = live_broker.add_client("requester", MELDE)
    with live_broker.client(requester) as client:
        exchange = client.post("/v1/evidence-requests", json=request_body()).json()
    engine = create_engine(live_broker.database_url)
    with engine.connect() as connection:
        bodies = connection.execute(select(LogEntry.body).where(LogEntry.exchange_id == exchange["id"])).scalars()
        digests = {json.loads(body)["request_digest"] for body in bodies}
    engine.dispose()
    assert len(digests) == 1 and None not in digests
    # An auditor's guesses over names and a span of birth dates (the review found Erika in 0.16 s).
    guesses = {
        unkeyed(request_body(subject={"family_name": f, "given_name": g, "birth_date": str(d)}))
        for f in FAMILY_NAMES
        for g in GIVEN_NAMES
        for d in (date(1964, 8, 1) + timedelta(days=n) for n in range(31))
    }
    assert unkeyed(request_body()) in guesses  # the guess set does contain the truth
    assert not digests & guesses
