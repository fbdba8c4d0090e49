"""No free text in the append-only log: purposes and legal bases are registry vocabularies.

Before this, a requester could write any string ("HIV-positiv lt. Arztbrief") into ``purpose``,
``legal_basis`` and even ``evidence_type`` of a refused request, and it stayed in the Merkle
tree for ever. Now requests, consents, grants and OOTS requests name registered entries (by id,
or by exact name / citation); anything else is refused with 422 naming the field, and the
exchange and its log entries keep registry ids only (null for what was not registered) and the
reason code. Real brokers, both databases.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from broker.db.models import Exchange, LogEntry
from tests.conftest import LiveBroker
from tests.oots.support import DK_AGENT, GEBURT, EdmRequest, failure_of, post_edm
from tests.specimen import ERIKA, GEWERBE, MELDE, request_body


def secret() -> str:
    """Free text nobody may write into the log; unique, so that finding it anywhere is proof."""
    return f"HIV-positiv lt. Arztbrief {uuid.uuid4().hex}"


def post(broker: LiveBroker, token: str, body: dict[str, Any]) -> httpx.Response:
    with broker.client(token) as client:
        return client.post("/v1/evidence-requests", json=body)


def stored(broker: LiveBroker, exchange_id: str) -> tuple[Exchange, list[dict[str, Any]]]:
    """The exchange row and its log entries."""
    engine = create_engine(broker.database_url)
    with engine.connect() as connection:
        row = connection.execute(select(Exchange).where(Exchange.id == exchange_id)).one()
        bodies = connection.execute(
            select(LogEntry.body).where(LogEntry.exchange_id == exchange_id).order_by(LogEntry.seq)
        ).scalars()
        entries = [json.loads(body) for body in bodies]
    engine.dispose()
    return row, entries  # type: ignore[return-value]  # a Row with the same attributes


def nowhere_in_the_log(broker: LiveBroker, text: str) -> bool:
    engine = create_engine(broker.database_url)
    with engine.connect() as connection:
        found = any(text.encode() in bytes(body) for body in connection.execute(select(LogEntry.body)).scalars())
    engine.dispose()
    return not found


@pytest.fixture(scope="module")
def requester(live_broker: LiveBroker) -> str:
    """May ask for Meldebescheinigungen and Gewerbeanmeldungen for any registered purpose."""
    return live_broker.add_client("requester", MELDE, GEWERBE)


@pytest.mark.parametrize("field", ["legal_basis", "purpose", "evidence_type"])
def test_an_unregistered_term_is_refused_and_leaves_no_text(
    live_broker: LiveBroker, requester: str, field: str
) -> None:
    text = secret()
    answer = post(live_broker, requester, request_body(**{field: text}))
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["reason"] == f"{field}.unknown"
    assert [e["field"] for e in problem["errors"]] == [field]
    assert text not in answer.text  # nor echoed
    exchange_id = problem["exchange"]["id"]
    row, entries = stored(live_broker, exchange_id)
    assert (row.state, row.reason) == ("rejected", f"{field}.unknown")
    column = {"evidence_type": "evidence_type_id"}.get(field, field)
    assert getattr(row, column) is None and text not in (row.reason_detail or "")
    assert [(e["event"], e["reason"], e[field]) for e in entries] == [
        ("received", None, None),
        ("refused", f"{field}.unknown", None),
    ]
    assert nowhere_in_the_log(live_broker, text)


def test_every_unregistered_field_is_named(live_broker: LiveBroker, requester: str) -> None:
    answer = post(live_broker, requester, request_body(purpose=secret(), legal_basis=secret()))
    assert answer.status_code == 422
    assert [(e["field"], e["reason"]) for e in answer.json()["errors"]] == [
        ("purpose", "purpose.unknown"),
        ("legal_basis", "legal_basis.unknown"),
    ]


def test_registered_terms_by_name_or_id_are_logged_as_ids(live_broker: LiveBroker, requester: str) -> None:
    by_name = post(live_broker, requester, request_body(purpose="Wohngeldantrag", legal_basis="§ 23 WoGG"))
    by_id = post(live_broker, requester, request_body(purpose="wohngeld", legal_basis="wogg-23"))
    for answer in (by_name, by_id):
        assert answer.status_code == 200, answer.text
        exchange = answer.json()
        assert (exchange["purpose"], exchange["legal_basis"]) == ("wohngeld", "wogg-23")
        _, entries = stored(live_broker, exchange["id"])
        assert {(e["purpose"], e["legal_basis"], e["evidence_type"]) for e in entries} == {
            ("wohngeld", "wogg-23", MELDE)
        }


def test_a_legal_basis_covers_only_its_evidence_types(live_broker: LiveBroker, requester: str) -> None:
    # § 68 EStG (Kindergeld) covers Melde- and Geburtsurkunden, no Gewerbeanmeldung.
    answer = post(live_broker, requester, request_body(GEWERBE, legal_basis="§ 68 EStG"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["reason"] == "legal_basis.not_applicable"
    assert [e["field"] for e in answer.json()["errors"]] == ["legal_basis"]
    _, entries = stored(live_broker, answer.json()["exchange"]["id"])
    assert entries[-1]["reason"] == "legal_basis.not_applicable" and entries[-1]["legal_basis"] == "estg-68"


def test_grants_name_registered_evidence_types_and_purposes(live_broker: LiveBroker) -> None:
    def add(grant: str) -> subprocess.CompletedProcess[str]:
        name = f"portal-{uuid.uuid4().hex[:8]}"
        args = [sys.executable, "-m", "broker.cli", "clients", "add", name, "--role", "requester", "--allow", grant]
        return subprocess.run(args, env=live_broker.env, capture_output=True, text=True, timeout=60)

    text = secret()
    for refused, why in (
        (add(f"{MELDE}={text}"), "no such purpose"),
        (add("urn:de:nachweis:erfunden"), "no evidence type"),
    ):
        assert refused.returncode != 0 and why in refused.stderr, refused.stderr
    granted = add(f"{MELDE}=Wohngeldantrag")  # by name; the request below names it by id
    assert granted.returncode == 0, granted.stderr
    token = granted.stdout.strip().splitlines()[-1]
    assert post(live_broker, token, request_body(purpose="wohngeld")).status_code == 200
    other = post(live_broker, token, request_body(purpose="Kindergeld"))
    assert (other.status_code, other.json()["reason"]) == (403, "policy.not_granted")
    assert nowhere_in_the_log(live_broker, text)


def test_consents_name_registered_evidence_types_purposes_and_legal_bases(
    live_broker: LiveBroker, requester: str
) -> None:
    text = secret()
    consent = {
        "subject": ERIKA,
        "evidence_types": [MELDE],
        "purpose": "Wohngeldantrag",
        "valid_until": "2099-01-01T00:00:00Z",
    }
    with live_broker.client(requester) as client:
        unknown_purpose = client.post("/v1/consents", json={**consent, "purpose": text})
        unknown_type = client.post("/v1/consents", json={**consent, "evidence_types": [MELDE, text]})
        unknown_basis = client.post("/v1/consents", json={**consent, "legal_basis": text})
        requested = client.post("/v1/consents", json={**consent, "legal_basis": "§ 23 WoGG"})
    assert unknown_purpose.status_code == 422 and unknown_purpose.json()["reason"] == "purpose.unknown"
    assert [e["field"] for e in unknown_purpose.json()["errors"]] == ["purpose"]
    assert unknown_type.status_code == 422 and unknown_type.json()["reason"] == "evidence_type.unknown"
    assert [e["field"] for e in unknown_type.json()["errors"]] == ["evidence_types.1"]
    assert unknown_basis.status_code == 422 and unknown_basis.json()["reason"] == "legal_basis.unknown"
    assert [e["field"] for e in unknown_basis.json()["errors"]] == ["legal_basis"]
    assert requested.status_code == 201, requested.text
    assert (requested.json()["purpose"], requested.json()["legal_basis"]) == ("wohngeld", "wogg-23")
    assert nowhere_in_the_log(live_broker, text)


def test_an_oots_procedure_is_a_registered_purpose(live_broker: LiveBroker) -> None:
    token = live_broker.add_client("requester", GEBURT, agent=DK_AGENT)
    text = secret()
    with live_broker.client(token) as client:
        failure = failure_of(post_edm(client, EdmRequest(procedure=text).xml()))
        answer = post_edm(client, EdmRequest().xml())
    assert (failure.code, failure.reason) == ("EDM:ERR:0003", "purpose.unknown")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("multipart/related")
    assert nowhere_in_the_log(live_broker, text)


def test_a_consent_id_carries_no_text_and_only_the_requesters_own_consent_is_logged(
    live_broker: LiveBroker, requester: str
) -> None:
    text = secret()
    consent_by_text = request_body(consent_id=text[:36], explicit_request=False, legal_basis=None)
    refused = post(live_broker, requester, consent_by_text)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "consent_id"
    # A well-formed id that is not a consent of this requester (another requester's id could be
    # one): refused, and neither the row nor the log names it.
    stranger = str(uuid.uuid4())
    answer = post(live_broker, requester, request_body(consent_id=stranger, explicit_request=False, legal_basis=None))
    assert answer.status_code == 403 and answer.json()["reason"] == "consent.invalid", answer.text
    assert stranger not in answer.text
    row, entries = stored(live_broker, answer.json()["exchange"]["id"])
    assert row.consent_id is None and [e["consent"] for e in entries] == [None, None]
    assert nowhere_in_the_log(live_broker, stranger) and nowhere_in_the_log(live_broker, text[:36])
