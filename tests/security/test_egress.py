"""Outbound requests go only where they should (real brokers, both databases).

Before this, ``callback_url`` took any URL (the review made the broker POST to
``http://127.0.0.1:…/internal/admin/…``), registry updates took ``file://``, ``gopher://`` and
loopback endpoints, to which the broker then sent a subject's name and birth date, and the
citizen's preview linked back to whatever ``returnurl`` said. Now one egress policy
(``broker/egress.py``) decides every outbound call: https only, callbacks only to the
requester's registered origins, no loopback, private or link-local address unless allow-listed,
checked again at connect time, no redirects.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from broker.db.models import CallbackDelivery, Exchange
from tests.citizen.client import CitizenClient, csrf_of
from tests.conftest import PRODUCTION_SIGN_IN, LiveBroker, fresh_broker
from tests.security.outbound import (
    Listener,
    Receiver,
    push_authority,
    push_authority_spec,
    route_to,
    wait_until,
)
from tests.specimen import MELDE, request_body

PRODUCTION = {
    "BROKER_ENV": "production",
    "BROKER_PUBLIC_URL": "https://broker.example",
    "BROKER_EGRESS_ALLOW": "",
    "BROKER_BACKGROUND_INTERVAL_SECONDS": "0.3",
    **PRODUCTION_SIGN_IN,
}


@pytest.fixture(scope="module")
def production(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveBroker]:
    """A broker as deployed: production, nothing allow-listed."""
    yield from fresh_broker(backend, request, tmp_path_factory.mktemp(f"egress-{backend}"), PRODUCTION)


@pytest.fixture(scope="module")
def production_admin(production: LiveBroker) -> str:
    return production.add_client("admin")


@pytest.fixture(scope="module")
def local_name() -> str:
    """A host name (not an address, not localhost) that resolves to this machine: what an
    attacker's DNS answers after the name was accepted."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)}
    except OSError:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    if not all(address.startswith(("127.", "::1")) for address in addresses):
        pytest.skip(f"this machine's name {name!r} does not resolve to loopback only: {addresses}")
    return name


def cli_add(broker: LiveBroker, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "broker.cli", "clients", "add", f"portal-{uuid.uuid4().hex[:8]}", *args]
    return subprocess.run(command, env=broker.env, capture_output=True, text=True, timeout=60)


def post(broker: LiveBroker, token: str, body: dict[str, Any]) -> httpx.Response:
    with broker.client(token) as client:
        return client.post("/v1/evidence-requests", json=body)


def fields(answer: httpx.Response) -> list[str]:
    return [error["field"] for error in answer.json().get("errors", [])]


@pytest.mark.parametrize(
    ("callback_origin", "said"),
    [
        ("http://127.0.0.1:9", "https"),
        ("https://127.0.0.1", "loopback"),
        ("https://2130706433", "loopback"),
        ("https://169.254.169.254", "link-local"),
        ("https://10.1.2.3", "private"),
        ("https://portal.example/hooks", "without a path"),
        ("gopher://portal.example", "scheme"),
    ],
)
def test_a_callback_origin_the_policy_refuses_is_not_registered(
    production: LiveBroker, callback_origin: str, said: str
) -> None:
    done = cli_add(production, "--role", "requester", "--allow", MELDE, "--callback-origin", callback_origin)
    assert done.returncode != 0 and said in done.stderr, done.stdout + done.stderr


def test_only_requesters_register_callback_origins(production: LiveBroker) -> None:
    done = cli_add(production, "--role", "auditor", "--callback-origin", "https://portal.example")
    assert done.returncode != 0 and "requesters only" in done.stderr


def test_a_callback_url_must_be_under_a_registered_origin(production: LiveBroker) -> None:
    internal = Listener()
    try:
        token = production.add_client("requester", MELDE, callback_origins=["https://portal.example"])
        without_origins = production.add_client("requester", MELDE)
        refused = [
            (token, f"http://127.0.0.1:{internal.port}/internal/admin/registry"),
            (token, "https://portal.example.evil.test/hook"),
            (token, "https://portal.example:8443/hook"),
            (token, "http://portal.example/hook"),
            (token, "https://portal.example@127.0.0.1/hook"),
            (token, "https://[::1/hook"),
            (without_origins, "https://portal.example/hook"),
        ]
        for requester, url in refused:
            answer = post(production, requester, request_body(callback_url=url))
            assert answer.status_code == 422, (url, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["reason"] == "callback_url.not_allowed" and fields(answer) == ["callback_url"]
        engine = create_engine(production.database_url)
        with engine.connect() as connection:
            urls = [url for _, url in refused]
            assert connection.execute(select(Exchange.id).where(Exchange.callback_url.in_(urls))).first() is None
        engine.dispose()
        time.sleep(1)  # a few rounds of the callback sender
        assert internal.connections == 0
    finally:
        internal.close()


REFUSED_ENDPOINTS = [
    "file:///etc/passwd",
    "gopher://127.0.0.1:70/_POST",
    "http://127.0.0.1:9/evidence",
    "https://127.0.0.1/evidence",
    "https://127.1/evidence",
    "https://[::1]/evidence",
    "https://[::ffff:127.0.0.1]/evidence",
    "https://localhost/evidence",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/evidence",
    "https://192.168.0.10/evidence",
    "https://user:secret@authority.example/evidence",
    "http://authority.example/evidence",
]


def test_authority_endpoints_are_checked_when_written(production: LiveBroker, production_admin: str) -> None:
    for url in REFUSED_ENDPOINTS:
        answer = push_authority(production, production_admin, url)
        assert answer.status_code == 422, (url, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert fields(answer) == ["endpoint_url"], (url, answer.text)
    with production.client(production_admin) as client:
        document = client.get("/v1/admin/registry").json()
        assert not any(a.get("endpoint_url") in REFUSED_ENDPOINTS for a in document["authorities"])
        good = push_authority_spec("https://authority.example/evidence")
        bad = push_authority_spec("https://10.0.0.1/evidence")
        # A whole document states every section; allow_empty, so that the endpoint is what is refused.
        replacement = {
            "evidence_types": [],
            "purposes": [],
            "legal_bases": [],
            "authorities": [good, bad],
            "routes": [],
            "offices": [],
        }
        answer = client.put(
            "/v1/admin/registry", json=replacement, params={"allow_empty": "true"}, headers={"If-Match": "*"}
        )
    assert answer.status_code == 422, answer.text
    assert answer.json()["reason"] == "endpoint_url.not_allowed"
    assert fields(answer) == ["authorities.1.endpoint_url"]


def test_the_address_is_checked_again_when_the_broker_connects(
    production: LiveBroker, production_admin: str, local_name: str
) -> None:
    """A name passes when written (it may not resolve yet); where it points is checked when the
    broker connects, and nothing is sent to a loopback address, neither evidence requests nor callbacks."""
    authority, receiver = Listener(), Listener()
    try:
        added = push_authority(production, production_admin, f"https://{local_name}:{authority.port}/evidence")
        assert added.status_code in (200, 201), added.text
        ars = route_to(production, production_admin, added.json()["id"])
        answer = post(production, production.add_client("requester", MELDE), request_body(jurisdiction=ars))
        assert answer.status_code == 502, answer.text
        assert answer.json()["reason"] == "authority.egress_refused"

        origin = f"https://{local_name}:{receiver.port}"
        token = production.add_client("requester", MELDE, callback_origins=[origin])
        delivered = post(production, token, request_body(callback_url=f"{origin}/hook"))
        assert delivered.status_code == 200, delivered.text
        engine = create_engine(production.database_url)
        query = select(CallbackDelivery.last_error).where(CallbackDelivery.exchange_id == delivered.json()["id"])

        def last_error() -> str | None:
            with engine.connect() as connection:
                return connection.scalar(query)

        assert wait_until(lambda: last_error() is not None, 10)
        engine.dispose()
        assert "egress" in (last_error() or "")
        assert (authority.connections, receiver.connections) == (0, 0)
    finally:
        authority.close()
        receiver.close()


def test_redirects_are_never_followed(live_broker: LiveBroker) -> None:
    """An authority and a callback receiver that redirect to an internal address: the broker
    does not follow (on loopback, which the development broker may call)."""
    internal = Listener()
    redirector = Receiver(307, f"http://127.0.0.1:{internal.port}/internal/admin/registry")
    try:
        admin = live_broker.add_client("admin")
        added = push_authority(live_broker, admin, f"{redirector.origin}/evidence")
        assert added.status_code in (200, 201), added.text
        ars = route_to(live_broker, admin, added.json()["id"])
        token = live_broker.add_client("requester", MELDE, callback_origins=[redirector.origin])
        answer = post(live_broker, token, request_body(jurisdiction=ars, callback_url=f"{redirector.origin}/hook"))
        assert answer.status_code == 502 and answer.json()["reason"] == "authority.refused", answer.text
        # The push call, then the callback of the failed exchange: each redirected, neither followed.
        assert wait_until(lambda: [path for _, path, _ in redirector.received] == ["/evidence", "/hook"], 10)
        time.sleep(0.5)
        assert internal.connections == 0
    finally:
        redirector.close()
        internal.close()


def test_the_preview_links_back_only_to_the_requesters_origins(live_broker: LiveBroker) -> None:
    token = live_broker.add_client("requester", MELDE, callback_origins=["https://portal.example"])
    exchange = post(live_broker, token, request_body(preview=True)).json()
    page_url = live_broker.base_url + exchange["links"]["preview"]
    with CitizenClient(live_broker.base_url) as erika:
        erika.sign_in("erika")
        for returnurl in ("https://evil.example/phish", "https://portal.example.evil.example/", "javascript:alert(1)"):
            page = erika.get(page_url, params={"returnurl": returnurl})
            assert page.status_code == 200 and "evil" not in page.text and "javascript" not in page.text
        page = erika.get(page_url, params={"returnurl": "https://portal.example/antrag/7"})
        assert 'value="https://portal.example/antrag/7"' in page.text  # carried into the decision form
        csrf = csrf_of(page.text)
        decided = erika.post(
            page_url, data={"decision": "decline", "csrf": csrf, "returnurl": "https://evil.example/phish"}
        )
        assert decided.status_code == 200 and "evil" not in decided.text
        again = erika.post(
            page_url, data={"decision": "approve", "csrf": csrf, "returnurl": "https://portal.example/antrag/7"}
        )
        assert again.status_code == 409 and 'href="https://portal.example/antrag/7"' in again.text
