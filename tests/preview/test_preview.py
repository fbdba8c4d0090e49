"""The citizen's preview end to end, through the OOTS gateway and the JSON API, on both databases.

Evidence that needs the citizen's approval is held (unsealed, never released) until they
approve it on /preview/{token}; declining or letting the preview expire drops it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import create_engine, select

from broker.db.models import Exchange, LogEntry, Preview
from tests.citizen.client import CitizenClient, csrf_of
from tests.conftest import SHARED_DIR, LiveBroker, http_server, start_broker, stop_process
from tests.oots.support import (
    DK_AGENT,
    GEBURT,
    MELDE,
    PREVIEW_REQUIRED,
    EdmRequest,
    Person,
    evidence_of,
    failure_of,
    no_evidence_of,
    post_edm,
)
from tests.specimen import request_body

WITH_PREVIEW = "urn:test:geburtsurkunde-mit-vorschau"
HASTY_TTL = 2.0  # seconds


@pytest.fixture(scope="module")
def requester(live_broker: LiveBroker, preview_type: str) -> str:
    # The page links back only to the requester's registered origins.
    origins = ["https://portal.example"]
    return live_broker.add_client("requester", GEBURT, MELDE, preview_type, agent=DK_AGENT, callback_origins=origins)


@pytest.fixture(scope="module")
def preview_type(live_broker: LiveBroker) -> str:
    """An evidence type whose evidence is released only after the citizen's preview."""
    admin = live_broker.add_client("admin")
    with live_broker.client(admin) as client:
        current = client.get("/v1/admin/registry")
        document = current.json()
        if not any(t["id"] == WITH_PREVIEW for t in document["evidence_types"]):
            geburt = next(t for t in document["evidence_types"] if t["id"] == GEBURT)
            document["evidence_types"].append(
                {
                    **geburt,
                    "id": WITH_PREVIEW,
                    "title": "Geburtsurkunde (mit Vorschau)",
                    "oots_classifications": ["CertificateOfBirthWithPreview"],
                    "preview_required": True,
                }
            )
            document["routes"].append(
                {"evidence_type": WITH_PREVIEW, "ars_prefix": "13004", "authority": "standesamt-13004"}
            )
            for basis in document["legal_bases"]:
                if GEBURT in basis["evidence_types"]:
                    basis["evidence_types"].append(WITH_PREVIEW)
            # Replacing the registry names the version it replaces.
            answer = client.put("/v1/admin/registry", json=document, headers={"If-Match": current.headers["etag"]})
            assert answer.status_code == 200, answer.text
    return WITH_PREVIEW


def rows(broker: LiveBroker, exchange_id: str) -> tuple[Exchange, Preview | None, list[tuple[str, Any]]]:
    engine = create_engine(broker.database_url)
    with engine.connect() as connection:
        exchange = connection.execute(select(Exchange).where(Exchange.id == exchange_id)).one()
        preview = connection.execute(select(Preview).where(Preview.exchange_id == exchange_id)).one_or_none()
        entries = connection.execute(
            select(LogEntry.event, LogEntry.body).where(LogEntry.exchange_id == exchange_id).order_by(LogEntry.seq)
        ).all()
    engine.dispose()
    return exchange, preview, [(e.event, e.body) for e in entries]  # type: ignore[return-value]


def exchange_id_of(broker: LiveBroker, external_ref: str) -> str:
    engine = create_engine(broker.database_url)
    with engine.connect() as connection:
        found = connection.execute(select(Exchange.id).where(Exchange.external_ref == external_ref)).scalar_one()
    engine.dispose()
    return str(found)


def decide(broker: LiveBroker, location: str, decision: str, citizen: str = "erika") -> httpx.Response:
    """The citizen signs in and decides on the preview page."""
    with CitizenClient(broker.base_url) as browser:
        browser.sign_in(citizen)
        return browser.decide_preview(location, decision)


def edm(broker: LiveBroker, token: str, request: EdmRequest) -> httpx.Response:
    with broker.client(token) as client:
        return post_edm(client, request.xml())


# --- the OOTS round trip ----------------------------------------------------------------------


def first_request(broker: LiveBroker, token: str, **fields: Any) -> tuple[EdmRequest, str]:
    request = EdmRequest(possibility_for_preview=True, **fields)
    failure = failure_of(edm(broker, token, request))
    assert (failure.code, failure.reason, failure.exception_type) == (
        "EDM:ERR:0002",
        "preview.required",
        "rs:AuthorizationExceptionType",
    )
    assert failure.severity == PREVIEW_REQUIRED
    location = failure.slots["PreviewLocation"]
    assert location.startswith(broker.base_url + "/preview/")
    assert failure.slots["PreviewMethod"] == "GET"
    assert {lang.lower() for lang in failure.slots["PreviewDescription"]} == {"en", "de"}
    return request, location


def test_oots_preview_round_trip_approved(live_broker: LiveBroker, requester: str) -> None:
    request, location = first_request(live_broker, requester)
    exchange_id = exchange_id_of(live_broker, request.id)
    exchange, preview, entries = rows(live_broker, exchange_id)
    assert (exchange.state, exchange.evidence_digest is not None) == ("awaiting_preview", True)
    assert preview is not None and preview.state == "pending"
    assert [e for e, _ in entries] == ["received", "routed", "preview_requested"]
    assert location.rsplit("/", 1)[1] not in str(preview.token_hash)  # only the hash is stored

    # (A request that comes back before the citizen decided waits for the decision:
    # tests/oots/test_flows.py.)
    with CitizenClient(live_broker.base_url) as browser:
        browser.sign_in("erika")
        page = browser.get(location)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert "Mustermann" in page.text and "1964-08-12" in page.text and "Standesamt Schwerin" in page.text
    assert page.text.count('<form class="inline" method="post">') == 2

    approved = decide(live_broker, location, "approve")
    assert approved.status_code == 200 and "zugestimmt" in approved.text

    third = EdmRequest(possibility_for_preview=True, preview_location=location)
    found = evidence_of(edm(live_broker, requester, third))
    assert found.root.get("requestId") == third.id
    assert b"Mustermann" in found.evidence and b"Signature" in found.evidence
    exchange, preview, entries = rows(live_broker, exchange_id)
    assert exchange.state == "delivered" and preview is not None and preview.state == "approved"
    assert [e for e, _ in entries] == ["received", "routed", "preview_requested", "preview_decided", "delivered"]
    assert b'"outcome":"approved"' in entries[3][1]

    # Single use: the decision stands, the page says so.
    assert decide(live_broker, location, "decline").status_code == 409
    with CitizenClient(live_broker.base_url) as browser:
        browser.sign_in("erika")
        after = browser.get(location)
    assert after.status_code == 200 and "bereits entschieden" in after.text
    assert 'name="decision"' not in after.text


def test_oots_preview_declined(live_broker: LiveBroker, requester: str) -> None:
    request, location = first_request(live_broker, requester)
    assert decide(live_broker, location, "decline").status_code == 200
    # The EC's test case TC08 expects an answer without evidence, not an error.
    second = EdmRequest(possibility_for_preview=True, preview_location=location)
    assert no_evidence_of(edm(live_broker, requester, second)).get("requestId") == second.id
    exchange, preview, entries = rows(live_broker, exchange_id_of(live_broker, request.id))
    assert (exchange.state, exchange.evidence) == ("rejected", None)
    assert preview is not None and preview.state == "declined"
    assert [e for e, _ in entries][-2:] == ["preview_decided", "refused"]


def test_the_preview_location_is_only_good_for_its_own_request(live_broker: LiveBroker, requester: str) -> None:
    _, location = first_request(live_broker, requester)
    stranger = live_broker.add_client("requester", GEBURT, agent=DK_AGENT)
    for token, request in (
        (stranger, EdmRequest(preview_location=location)),
        (requester, EdmRequest(preview_location=location, person=Person(given_name="Erik"))),
        (requester, EdmRequest(preview_location=location.rsplit("/", 1)[0] + "/" + "A" * 43)),
        (requester, EdmRequest(preview_location="https://preview.example.com/requests?session=1")),
    ):
        failure = failure_of(edm(live_broker, token, request))
        assert (failure.code, failure.reason) == ("EDM:ERR:0003", "oots.preview_location_unknown")


def test_a_type_released_only_after_preview(live_broker: LiveBroker, requester: str, preview_type: str) -> None:
    request = EdmRequest(classification="CertificateOfBirthWithPreview", type_identifier="x")
    refused = failure_of(edm(live_broker, requester, request))
    assert (refused.code, refused.reason) == ("EDM:ERR:0007", "preview.impossible")
    first_request(live_broker, requester, classification="CertificateOfBirthWithPreview", type_identifier="x")
    # The JSON API holds it for preview without being asked to.
    body = request_body(preview_type)
    with live_broker.client(requester) as client:
        answer = client.post("/v1/evidence-requests", json=body)
    assert answer.status_code == 202 and answer.json()["state"] == "awaiting_preview"


# --- the JSON API ---------------------------------------------------------------------------------


def v1_request(broker: LiveBroker, token: str) -> dict[str, Any]:
    body = request_body(preview=True)
    with broker.client(token) as client:
        answer = client.post("/v1/evidence-requests", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert answer.status_code == 202, answer.text
    exchange: dict[str, Any] = answer.json()
    assert exchange["state"] == "awaiting_preview" and "evidence" not in exchange
    assert re.fullmatch(r"/preview/[A-Za-z0-9_-]{43}", exchange["links"]["preview"])
    assert answer.headers["location"] == exchange["links"]["self"]
    return exchange


def test_v1_preview_approved(live_broker: LiveBroker, requester: str) -> None:
    exchange = v1_request(live_broker, requester)
    location = live_broker.base_url + exchange["links"]["preview"]
    with live_broker.client(requester) as client:
        assert client.get(f"{exchange['links']['self']}/evidence").status_code == 409  # nothing released yet
        assert client.get(exchange["links"]["self"]).json()["links"]["preview"] == exchange["links"]["preview"]
    with CitizenClient(live_broker.base_url) as browser:
        browser.sign_in("erika")
        assert "Mustermann" in browser.get(location).text
    assert decide(live_broker, location, "approve").status_code == 200
    with live_broker.client(requester) as client:
        now = client.get(exchange["links"]["self"]).json()
        assert now["state"] == "delivered" and "preview" not in now["links"]
        evidence = client.get(now["evidence"]["href"])
    assert evidence.status_code == 200 and b"Signature" in evidence.content


def test_the_requester_cannot_see_or_decide_the_preview(live_broker: LiveBroker, requester: str) -> None:
    """The review's attack: the requester holds the link; it opens, and approves, the preview itself."""
    exchange = v1_request(live_broker, requester)
    location = live_broker.base_url + exchange["links"]["preview"]
    with CitizenClient(live_broker.base_url) as requester_browser:
        page = requester_browser.get(location)
        # Nothing of the evidence, only the way to sign in.
        assert page.status_code == 200 and "/citizen/login?next=/preview/" in page.text
        assert "Mustermann" not in page.text and "1964" not in page.text and "Standesamt" not in page.text
        for form in ({"decision": "approve"}, {"decision": "approve", "csrf": "guessed"}):
            refused = requester_browser.post(location, data=form)
            assert refused.status_code == 401 and "Mustermann" not in refused.text
        # With a session of its own (the development sign-in as someone else), still nothing.
        requester_browser.sign_in("jan-schulz")
        stranger = requester_browser.get(location)
        assert stranger.status_code == 403 and "Mustermann" not in stranger.text
        assert requester_browser.decide_preview(location, "approve").status_code == 403
    with live_broker.client(requester) as client:
        assert client.get(exchange["links"]["self"]).json()["state"] == "awaiting_preview"
    row, preview, entries = rows(live_broker, exchange["id"])
    assert row.evidence is not None and preview is not None and preview.state == "pending"
    refusals = [body for event, body in entries if event == "preview_refused"]
    # Two looks and one decision by the stranger, each refused; recorded once (with no more than the reason).
    assert len(refusals) == 1 and b'"reason":"citizen.not_subject"' in refusals[0]
    # The citizen herself still decides.
    assert decide(live_broker, location, "approve").status_code == 200


def test_a_sign_in_below_the_evidence_types_level_is_refused(live_broker: LiveBroker, requester: str) -> None:
    exchange = v1_request(live_broker, requester)
    location = live_broker.base_url + exchange["links"]["preview"]
    with CitizenClient(live_broker.base_url) as browser:
        browser.sign_in("erika", assurance="low")
        page = browser.get(location)
        assert page.status_code == 403 and "Vertrauensniveau" in page.text and "Mustermann" not in page.text
        assert browser.post(location, data={"decision": "approve", "csrf": csrf_of(page.text)}).status_code == 403
    _, preview, entries = rows(live_broker, exchange["id"])
    assert preview is not None and preview.state == "pending"
    assert any(event == "preview_refused" and b"citizen.assurance_too_low" in body for event, body in entries)


def test_a_decision_without_the_forms_csrf_token_is_refused(live_broker: LiveBroker, requester: str) -> None:
    exchange = v1_request(live_broker, requester)
    location = live_broker.base_url + exchange["links"]["preview"]
    with CitizenClient(live_broker.base_url) as browser:
        browser.sign_in("erika")
        for form in ({"decision": "approve"}, {"decision": "approve", "csrf": "x" * 43}):
            assert browser.post(location, data=form).status_code == 403
    _, preview, _ = rows(live_broker, exchange["id"])
    assert preview is not None and preview.state == "pending"


def test_v1_preview_declined(live_broker: LiveBroker, requester: str) -> None:
    exchange = v1_request(live_broker, requester)
    assert decide(live_broker, live_broker.base_url + exchange["links"]["preview"], "decline").status_code == 200
    with live_broker.client(requester) as client:
        now = client.get(exchange["links"]["self"]).json()
        assert client.get(f"{exchange['links']['self']}/evidence").status_code == 409
    assert now["state"] == "rejected" and now["problem"]["reason"] == "preview.declined"


def test_unknown_and_malformed_preview_addresses(live_broker: LiveBroker) -> None:
    with CitizenClient(live_broker.base_url) as browser:
        browser.sign_in("erika")
        csrf = csrf_of(browser.get("/citizen").text)
        assert browser.get("/preview/" + "A" * 43).status_code == 404
        assert browser.get("/preview/short").status_code == 404
        assert browser.post("/preview/" + "A" * 43, data={"decision": "approve", "csrf": csrf}).status_code == 404
        assert browser.post("/preview/" + "A" * 43, data={"decision": "maybe", "csrf": csrf}).status_code == 422


def test_return_links_are_plain_web_addresses_only(live_broker: LiveBroker, requester: str) -> None:
    exchange = v1_request(live_broker, requester)
    location = live_broker.base_url + exchange["links"]["preview"]
    with CitizenClient(live_broker.base_url) as browser:
        browser.sign_in("erika")
        evil = browser.get(location, params={"returnurl": "javascript:alert(1)"}).text
        good = browser.get(location, params={"returnurl": "https://portal.example/back?x=<1>"}).text
    assert "javascript:" not in evil
    assert 'value="https://portal.example/back?x=&lt;1&gt;"' in good


# --- expiry ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hasty_broker(seeded_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """A broker whose previews expire after two seconds."""
    env = {
        "BROKER_SCHEMA_PATH": str(SHARED_DIR / "oots" / "xsd"),
        "BROKER_PREVIEW_TTL_MINUTES": str(HASTY_TTL / 60),
        "BROKER_OOTS_T2_SECONDS": str(HASTY_TTL),  # the OOTS requests' previews
    }
    process, broker = start_broker(seeded_database_url, tmp_path_factory.mktemp("hasty"), env)
    try:
        yield broker
    finally:
        stop_process(process)


def test_an_undecided_preview_expires_and_drops_the_evidence(hasty_broker: LiveBroker) -> None:
    token = hasty_broker.add_client("requester", GEBURT, MELDE, agent=DK_AGENT)
    exchange = v1_request(hasty_broker, token)
    _, oots_location = first_request(hasty_broker, token)
    time.sleep(HASTY_TTL + 0.5)
    location = hasty_broker.base_url + exchange["links"]["preview"]
    with CitizenClient(hasty_broker.base_url) as browser:
        browser.sign_in("erika")
        page = browser.get(location)
    assert page.status_code == 410 and "abgelaufen" in page.text
    assert decide(hasty_broker, location, "approve").status_code == 410
    with hasty_broker.client(token) as client:
        now = client.get(exchange["links"]["self"]).json()
    assert now["state"] == "expired" and now["problem"]["reason"] == "preview.expired"
    row, preview, entries = rows(hasty_broker, exchange["id"])
    assert row.evidence is None and preview is not None and preview.state == "expired"
    assert [e for e, _ in entries][-1] == "expired"

    late = failure_of(edm(hasty_broker, token, EdmRequest(preview_location=oots_location)))
    assert (late.code, late.reason, late.exception_type) == (
        "EDM:ERR:0005",
        "preview.expired",
        "rs:TimeoutExceptionType",
    )


class _CallbackSink(BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server interface
        _CallbackSink.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_requester_is_called_back_when_the_citizen_decides(live_broker: LiveBroker, preview_type: str) -> None:
    # Callbacks go only to a registered origin: a requester of its own for this receiver.
    with http_server(_CallbackSink) as origin:
        requester = live_broker.add_client(
            "requester", GEBURT, MELDE, preview_type, agent=DK_AGENT, callback_origins=[origin]
        )
        body = request_body(preview=True, callback_url=f"{origin}/hook")
        with live_broker.client(requester) as client:
            exchange = client.post("/v1/evidence-requests", json=body).json()
        assert decide(live_broker, live_broker.base_url + exchange["links"]["preview"], "approve").status_code == 200
        deadline = time.monotonic() + 20
        while not any(exchange["id"].encode() in b for b in _CallbackSink.received) and time.monotonic() < deadline:
            time.sleep(0.1)
    documents = [json.loads(b) for b in _CallbackSink.received]
    ended = [d for d in documents if d["exchange"]["id"] == exchange["id"]]
    assert [d["exchange"]["state"] for d in ended] == ["delivered"]
