"""/v1/consents on a real broker process (SQLite and PostgreSQL): the requester asks, gets the
citizen's approval link, and no exchange rests on the consent until the citizen granted it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.consent.artefact import verify
from broker.problems import Problem
from tests.conftest import LiveBroker, start_broker, stop_process
from tests.consent.support import citizen_pseudonyms, decide_as_citizen, revoke_as_citizen
from tests.specimen import ERIKA, MELDE, request_body


@pytest.fixture(scope="module")
def requester(live_broker: LiveBroker) -> str:
    return live_broker.add_client("requester", MELDE)


def consent_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": ERIKA,
        "evidence_types": [MELDE],
        "purpose": "Wohngeldantrag",
        "legal_basis": "§ 23 WoGG",
        "valid_until": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "max_uses": 2,
    }
    return body | overrides


def ask(broker: LiveBroker, token: str, **overrides: Any) -> httpx.Response:
    with broker.client(token) as client:
        return client.post("/v1/consents", json=consent_body(**overrides))


def with_consent(broker: LiveBroker, token: str, consent_id: str) -> httpx.Response:
    body = request_body(consent_id=consent_id, explicit_request=False, legal_basis=None)
    with broker.client(token) as client:
        return client.post("/v1/evidence-requests", json=body)


def test_a_request_answers_with_the_citizens_approval_link(live_broker: LiveBroker, requester: str) -> None:
    answer = ask(live_broker, requester)
    assert answer.status_code == 201, answer.text
    consent = answer.json()
    assert consent["state"] == "requested"
    assert (consent["purpose"], consent["legal_basis"]) == ("wohngeld", "wogg-23")
    assert (consent["uses"], consent["max_uses"], consent["decided_at"], consent["artefact"]) == (0, 2, None, None)
    assert answer.headers["location"] == consent["links"]["self"] == f"/v1/consents/{consent['id']}"
    # In development, without BROKER_PUBLIC_URL: the address the request came in on.
    assert consent["links"]["approval"] == f"{live_broker.base_url}/citizen/consents/{consent['id']}"


def test_no_exchange_rests_on_a_consent_until_the_citizen_grants_it(live_broker: LiveBroker, requester: str) -> None:
    consent_id = ask(live_broker, requester).json()["id"]
    refused = with_consent(live_broker, requester, consent_id)
    assert (refused.status_code, refused.json()["reason"]) == (403, "consent.invalid")
    assert "not granted" in refused.json()["detail"]

    decide_as_citizen(live_broker, consent_id)
    with live_broker.client(requester) as client:
        granted = client.get(f"/v1/consents/{consent_id}").json()
        jwks = client.get("/.well-known/broker-keys").json()
    assert granted["state"] == "granted" and granted["decided_at"] is not None
    # The requester receives the signed grant; it verifies against the broker's published keys.
    claims = verify(granted["artefact"], jwks)
    assert (claims["jti"], claims["purpose"], claims["legal_basis"], claims["max_uses"]) == (
        consent_id,
        "wohngeld",
        "wogg-23",
        2,
    )
    assert claims["sub"] in citizen_pseudonyms(live_broker)

    delivered = with_consent(live_broker, requester, consent_id)
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["consent_id"] == consent_id


def test_a_declined_consent_authorises_nothing(live_broker: LiveBroker, requester: str) -> None:
    consent_id = ask(live_broker, requester).json()["id"]
    decide_as_citizen(live_broker, consent_id, grant=False)
    with live_broker.client(requester) as client:
        declined = client.get(f"/v1/consents/{consent_id}").json()
    assert (declined["state"], declined["artefact"]) == ("declined", None)
    assert with_consent(live_broker, requester, consent_id).status_code == 403


def test_the_citizens_revocation_stops_the_next_exchange(live_broker: LiveBroker, requester: str) -> None:
    consent_id = ask(live_broker, requester).json()["id"]
    decide_as_citizen(live_broker, consent_id)
    assert with_consent(live_broker, requester, consent_id).status_code == 200
    revoke_as_citizen(live_broker, consent_id)
    refused = with_consent(live_broker, requester, consent_id)
    assert (refused.status_code, refused.json()["reason"]) == (403, "consent.invalid")
    assert "revoked" in refused.json()["detail"]


def test_the_requester_withdraws_its_request(live_broker: LiveBroker, requester: str) -> None:
    consent_id = ask(live_broker, requester).json()["id"]
    with live_broker.client(requester) as client:
        withdrawn = client.delete(f"/v1/consents/{consent_id}")
    assert withdrawn.status_code == 200 and withdrawn.json()["revoked_at"] is not None
    with pytest.raises(Problem) as refused:
        decide_as_citizen(live_broker, consent_id)
    assert refused.value.reason == "consent.revoked"


def test_a_consent_is_only_its_requesters(live_broker: LiveBroker, requester: str) -> None:
    consent_id = ask(live_broker, requester).json()["id"]
    other = live_broker.add_client("requester", MELDE)
    with live_broker.client(other) as client:
        assert client.get(f"/v1/consents/{consent_id}").status_code == 404
        assert client.delete(f"/v1/consents/{consent_id}").status_code == 404


@pytest.mark.parametrize(
    ("overrides", "status", "reason"),
    [
        ({"legal_basis": "§ 999 Erfunden"}, 422, "legal_basis.unknown"),
        ({"legal_basis": "§ 161 StPO", "evidence_types": [MELDE, "urn:de:nachweis:geburtsurkunde"]}, 422,
         "legal_basis.not_applicable"),
        ({"purpose": "Kindergeld"}, 201, None),
        ({"valid_until": "2001-01-01T00:00:00Z"}, 422, "consent.invalid_period"),
    ],
)  # fmt: skip
def test_a_request_names_registered_terms(
    live_broker: LiveBroker, overrides: dict[str, Any], status: int, reason: str | None
) -> None:
    # A client that may ask for Meldebescheinigungen for any registered purpose.
    token = live_broker.add_client("requester", MELDE)
    answer = ask(live_broker, token, **overrides)
    assert answer.status_code == status, answer.text
    assert answer.json().get("reason") == reason


def test_the_approval_link_uses_the_public_url(seeded_database_url: str, tmp_path: Path) -> None:
    extra = {"BROKER_PUBLIC_URL": "https://broker.example/"}
    process, broker = start_broker(seeded_database_url, tmp_path, extra)
    try:
        token = broker.add_client("requester", MELDE)
        consent = ask(broker, token).json()
    finally:
        stop_process(process)
    assert consent["links"]["approval"] == f"https://broker.example/citizen/consents/{consent['id']}"
