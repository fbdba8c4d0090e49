"""The citizen's consent pages on a real broker (development sign-in): she sees who asks for
what and why, grants or declines, downloads the signed grant, and revokes it in the cockpit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from broker.consent.artefact import verify
from tests.citizen.client import CitizenClient, csrf_of
from tests.conftest import LiveBroker
from tests.specimen import ERIKA, MELDE, request_body


@pytest.fixture(scope="module")
def requester(live_broker: LiveBroker) -> str:
    return live_broker.add_client("requester", MELDE)


def ask(broker: LiveBroker, token: str) -> dict[str, Any]:
    body = {
        "subject": ERIKA,
        "evidence_types": [MELDE],
        "purpose": "Wohngeldantrag",
        "legal_basis": "§ 23 WoGG",
        "valid_until": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "max_uses": 3,
    }
    with broker.client(token) as client:
        answer = client.post("/v1/consents", json=body)
    assert answer.status_code == 201, answer.text
    consent: dict[str, Any] = answer.json()
    return consent


def exchange_on(broker: LiveBroker, token: str, consent_id: str) -> httpx.Response:
    with broker.client(token) as client:
        return client.post(
            "/v1/evidence-requests", json=request_body(consent_id=consent_id, explicit_request=False, legal_basis=None)
        )


def test_erika_grants_downloads_and_revokes(live_broker: LiveBroker, requester: str) -> None:
    consent = ask(live_broker, requester)
    approval = consent["links"]["approval"]
    with CitizenClient(live_broker.base_url) as erika:
        assert "/citizen/login" in erika.get(approval).text  # signing in comes first
        erika.sign_in("erika")
        page = erika.get(approval)
        assert page.status_code == 200
        for shown in ("Meldebescheinigung", "Wohngeldantrag", "§ 23 WoGG", "requester-", "3"):
            assert shown in page.text
        assert exchange_on(live_broker, requester, consent["id"]).json()["reason"] == "consent.invalid"
        # A decision needs the form's token.
        assert erika.post(approval, data={"decision": "grant"}).status_code == 403
        granted = erika.post(approval, data={"decision": "grant", "csrf": csrf_of(page.text)})
        assert granted.status_code == 200 and "eingewilligt" in granted.text
        again = erika.post(approval, data={"decision": "decline", "csrf": csrf_of(page.text)})
        assert again.status_code == 409

        with live_broker.client(requester) as client:
            seen = client.get(consent["links"]["self"]).json()
            jwks = client.get("/.well-known/broker-keys").json()
        assert seen["state"] == "granted" and seen["artefact"]
        claims = verify(seen["artefact"], jwks)
        assert claims["jti"] == consent["id"] and claims["evidence_types"] == [MELDE]
        download = erika.get(approval + "/artefact")
        assert download.status_code == 200 and download.text == seen["artefact"]
        assert exchange_on(live_broker, requester, consent["id"]).status_code == 200

        cockpit = erika.get("/citizen").text
        assert f"/citizen/consents/{consent['id']}/revoke" in cockpit
        revoked = erika.post(f"/citizen/consents/{consent['id']}/revoke", data={"csrf": csrf_of(cockpit)})
        assert revoked.status_code == 200 and "widerrufen" in revoked.text
    # At once: the next exchange on it is refused.
    refused = exchange_on(live_broker, requester, consent["id"])
    assert refused.status_code == 403 and refused.json()["reason"] == "consent.invalid"


def test_erika_declines(live_broker: LiveBroker, requester: str) -> None:
    consent = ask(live_broker, requester)
    with CitizenClient(live_broker.base_url) as erika:
        erika.sign_in("erika")
        page = erika.get(consent["links"]["approval"])
        declined = erika.post(consent["links"]["approval"], data={"decision": "decline", "csrf": csrf_of(page.text)})
        assert declined.status_code == 200 and "abgelehnt" in declined.text
        assert erika.get(consent["links"]["approval"] + "/artefact").status_code == 404
    with live_broker.client(requester) as client:
        assert client.get(consent["links"]["self"]).json()["state"] == "declined"
    assert exchange_on(live_broker, requester, consent["id"]).json()["reason"] == "consent.invalid"


def test_another_citizen_can_neither_see_nor_decide_erikas_consent(live_broker: LiveBroker, requester: str) -> None:
    consent = ask(live_broker, requester)
    with CitizenClient(live_broker.base_url) as jan:
        jan.sign_in("jan-schulz")
        page = jan.get(consent["links"]["approval"])
        assert page.status_code == 403 and "Wohngeldantrag" not in page.text
        csrf = csrf_of(jan.get("/citizen").text)
        assert jan.post(consent["links"]["approval"], data={"decision": "grant", "csrf": csrf}).status_code == 403
        assert jan.get(consent["links"]["approval"] + "/artefact").status_code == 403
    with live_broker.client(requester) as client:
        assert client.get(consent["links"]["self"]).json()["state"] == "requested"


def test_a_grant_needs_the_level_of_the_evidence_types(live_broker: LiveBroker, requester: str) -> None:
    consent = ask(live_broker, requester)  # a Meldebescheinigung needs "substantial"
    with CitizenClient(live_broker.base_url) as erika:
        erika.sign_in("erika", assurance="low")
        page = erika.get(consent["links"]["approval"])
        refused = erika.post(consent["links"]["approval"], data={"decision": "grant", "csrf": csrf_of(page.text)})
        assert refused.status_code == 403 and "Vertrauensniveau" in refused.text
    with live_broker.client(requester) as client:
        assert client.get(consent["links"]["self"]).json()["state"] == "requested"
