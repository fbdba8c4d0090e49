"""The citizen's side in a real browser against a real OpenID Provider, end to end.

A broker whose citizens sign in at the provider of ``oidc_provider.mjs``; headless Chromium
clicks through the pages; axe-core checks each of them (no serious or critical violation).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import (
    ACR_HIGH,
    ACR_LOW,
    axe_violations,
    describe_violations,
    sign_in_at_provider,
    start_oidc_provider,
    submit,
)
from tests.citizen.client import CitizenClient
from tests.conftest import SHARED_DIR, LiveBroker, free_port, fresh_broker
from tests.specimen import ERIKA, ERIKA_IDNR, MELDE, request_body

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ERIKA_CLAIMS = {
    "family_name": ERIKA["family_name"],
    "given_name": ERIKA["given_name"],
    "birthdate": ERIKA["birth_date"],
    "place_of_birth": "Schwerin",
    "idnr": ERIKA_IDNR,
}
ACCOUNTS = {
    "erika": {"claims": ERIKA_CLAIMS, "acr": ACR_HIGH},
    "erika-low": {"claims": ERIKA_CLAIMS, "acr": ACR_LOW},
    "jan": {
        "claims": {"family_name": "Schulz", "given_name": "Jan", "birthdate": "1990-01-01"},
        "acr": ACR_HIGH,
    },
}


@dataclass
class Setup:
    broker: LiveBroker
    requester: str


@pytest.fixture(scope="module")
def setup(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A provider, and a broker whose citizens sign in there, on a database of its own (whose log
    only this broker's keys sign: the browser checks every checkpoint signature)."""
    directory = tmp_path_factory.mktemp(f"citizen-flows-{backend}")
    port = free_port()
    client = {"client_id": "once-only-broker", "client_secret": uuid.uuid4().hex}
    callback = f"http://127.0.0.1:{port}/citizen/callback"
    provider = start_oidc_provider(ACCOUNTS, [{**client, "redirect_uris": [callback]}], directory / "provider")
    env = {
        "BROKER_SCHEMA_PATH": str(SHARED_DIR / "oots" / "xsd"),
        "BROKER_OIDC_ISSUER": provider.issuer,
        "BROKER_OIDC_CLIENT_ID": client["client_id"],
        "BROKER_OIDC_CLIENT_SECRET": client["client_secret"],
        "BROKER_OIDC_CLAIM_IDNR": "idnr",
    }
    try:
        for broker in fresh_broker(backend, request, directory, env, port):
            yield Setup(broker, broker.add_client("requester", MELDE))
    finally:
        provider.stop()


def accessible(page: Page) -> None:
    violations = axe_violations(page)
    assert violations == [], f"{page.url}:\n{describe_violations(violations)}"


def ask_with_preview(setup: Setup) -> dict[str, Any]:
    with setup.broker.client(setup.requester) as client:
        answer = client.post("/v1/evidence-requests", json=request_body(preview=True))
    assert answer.status_code == 202, answer.text
    exchange: dict[str, Any] = answer.json()
    return exchange


def open_as(page: Page, setup: Setup, path: str, login: str) -> None:
    """Open one of the citizen's pages and sign in at the provider from there."""
    page.goto(setup.broker.base_url + path)
    accessible(page)  # the page that asks to sign in
    page.get_by_role("link", name="Anmelden").click()
    sign_in_at_provider(page, login)
    assert page.url == setup.broker.base_url + path


def cockpit_when_logged(page: Page, setup: Setup) -> None:
    deadline = time.monotonic() + 20
    while True:
        page.goto(setup.broker.base_url + "/citizen")
        if "noch nicht im Log" not in page.content() or time.monotonic() > deadline:
            return
        time.sleep(0.3)


def test_erika_approves_her_preview_and_her_cockpit_proves_it(page: Page, setup: Setup) -> None:
    """The README's "The citizen's side", in a browser."""
    exchange = ask_with_preview(setup)
    open_as(page, setup, exchange["links"]["preview"], "erika")
    assert page.get_by_text("1964-08-12").count() == 1 and page.get_by_text("Mustermann").count() >= 1
    accessible(page)
    submit(page, page.get_by_role("button", name="Übermitteln"))
    assert "zugestimmt" in page.content()
    accessible(page)

    with setup.broker.client(setup.requester) as client:
        now = client.get(exchange["links"]["self"]).json()
        assert now["state"] == "delivered"
        assert b"Mustermann" in client.get(now["evidence"]["href"]).content

    cockpit_when_logged(page, setup)
    marks = page.locator("[data-proof]")
    marks.first.wait_for()
    page.wait_for_function("() => !document.querySelector('[data-proof=pending]')", timeout=10_000)
    states = {marks.nth(i).get_attribute("data-proof") for i in range(marks.count())}
    assert states == {"ok"}, states
    assert page.get_by_text("✓ im Log bestätigt").count() == marks.count()
    accessible(page)


def test_erika_grants_a_consent_and_revokes_it_in_her_cockpit(page: Page, setup: Setup) -> None:
    body = {
        "subject": {k: ERIKA[k] for k in ("family_name", "given_name", "birth_date")},
        "evidence_types": [MELDE],
        "purpose": "Wohngeldantrag",
        "legal_basis": "§ 23 WoGG",
        "valid_until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "max_uses": 1,
    }
    with setup.broker.client(setup.requester) as client:
        consent = client.post("/v1/consents", json=body).json()
    approval = consent["links"]["approval"].removeprefix(setup.broker.base_url)
    open_as(page, setup, approval, "erika")
    assert "Wohngeldantrag" in page.content()
    accessible(page)
    submit(page, page.get_by_role("button", name="Einwilligen"))
    assert "Sie haben eingewilligt" in page.content()
    accessible(page)
    with setup.broker.client(setup.requester) as client:
        assert client.get(consent["links"]["self"]).json()["state"] == "granted"
    page.goto(setup.broker.base_url + "/citizen")
    assert "erteilt" in page.content()
    submit(page, page.get_by_role("button", name="Widerrufen").first)
    assert "widerrufen" in page.content()
    with setup.broker.client(setup.requester) as client:
        assert client.get(consent["links"]["self"]).json()["revoked_at"] is not None


def test_a_tampered_proof_turns_the_browsers_mark_red(page: Page, setup: Setup) -> None:
    with setup.broker.client(setup.requester) as client:
        assert client.post("/v1/evidence-requests", json=request_body()).status_code == 200
    open_as(page, setup, "/citizen", "erika")
    cockpit_when_logged(page, setup)

    def tamper(route: Any) -> None:
        response = route.fetch()
        body = response.text()
        # Change one inclusion-proof hash of the first proven entry.
        body = re.sub(r'("hashes":\["[A-Za-z0-9+/])[A-Za-z0-9+/]', lambda m: m.group(1) + "A", body, count=1)
        if '"hashes":["A' not in body:
            body = re.sub(r'("hashes":\[")[A-Za-z0-9+/]', lambda m: m.group(1) + "B", body, count=1)
        route.fulfill(response=response, body=body)

    page.route(setup.broker.base_url + "/citizen", tamper)
    page.goto(setup.broker.base_url + "/citizen")
    page.wait_for_function("() => !document.querySelector('[data-proof=pending]')", timeout=10_000)
    assert page.locator("[data-proof=bad]").count() >= 1
    assert page.get_by_text("✗ Prüfung fehlgeschlagen").count() >= 1


def test_another_citizen_sees_nothing_and_cannot_decide(page: Page, setup: Setup) -> None:
    exchange = ask_with_preview(setup)
    open_as(page, setup, exchange["links"]["preview"], "jan")
    assert "Mustermann" not in page.content() and "andere Person" in page.content()
    accessible(page)
    with setup.broker.client(setup.requester) as client:
        assert client.get(exchange["links"]["self"]).json()["state"] == "awaiting_preview"


def test_a_sign_in_below_the_level_is_refused(page: Page, setup: Setup) -> None:
    exchange = ask_with_preview(setup)
    open_as(page, setup, exchange["links"]["preview"], "erika-low")
    assert "Mustermann" not in page.content() and "Vertrauensniveau" in page.content()
    accessible(page)


def test_the_pages_work_without_javascript(chromium: Browser, setup: Setup) -> None:
    context = chromium.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        exchange = ask_with_preview(setup)
        page.goto(setup.broker.base_url + exchange["links"]["preview"])
        page.get_by_role("link", name="Anmelden").click()
        # The provider's own page is plain HTML too.
        sign_in_at_provider(page, "erika")
        submit(page, page.get_by_role("button", name="Ablehnen"))
        assert "abgelehnt" in page.content()
        page.goto(setup.broker.base_url + "/citizen")
        assert "Datenschutzcockpit" in page.content() and "JavaScript" in page.content()
        submit(page, page.get_by_role("button", name="Abmelden"))
        assert "Sie sind abgemeldet" in page.content()
    finally:
        context.close()
    with setup.broker.client(setup.requester) as client:
        assert client.get(exchange["links"]["self"]).json()["problem"]["reason"] == "preview.declined"


def test_a_forged_callback_signs_nobody_in(setup: Setup) -> None:
    """A callback the broker did not start (no state of its own in the session) is refused."""
    with CitizenClient(setup.broker.base_url) as browser:
        answer = browser.get("/citizen/callback", params={"code": "stolen", "state": "guessed"})
        assert answer.status_code == 400 and "fehlgeschlagen" in answer.text
        assert 'id="log-proofs"' not in browser.get("/citizen").text
        # The provider's error comes back as a failed sign-in, not an error of the broker.
        denied = browser.get("/citizen/callback", params={"error": "access_denied", "state": "x"})
        assert denied.status_code == 400
