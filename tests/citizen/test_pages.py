"""The citizen's pages on a real broker (development sign-in): the cockpit and the citizen's
copy, signing in and out, CSRF, and the development sign-in existing only in development."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.citizen.client import CitizenClient, csrf_of
from tests.conftest import PRODUCTION_SIGN_IN, LiveBroker, start_broker
from tests.specimen import MELDE, request_body


def wait_for_log(browser: CitizenClient) -> str:
    """The cockpit once every exchange's latest entry is integrated into a signed checkpoint."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page = browser.get("/citizen").text
        if "noch nicht im Log" not in page:
            return page
        time.sleep(0.3)
    raise AssertionError("the log integrator did not integrate the entry")


def test_the_cockpit_shows_the_citizens_exchanges_and_the_copy_downloads(live_broker: LiveBroker) -> None:
    requester = live_broker.add_client("requester", MELDE)
    with live_broker.client(requester) as client:
        answer = client.post("/v1/evidence-requests", json=request_body())
        assert answer.status_code == 200, answer.text
        jans = client.post(
            "/v1/evidence-requests",
            json=request_body(subject={"family_name": "Schulz", "given_name": "Jan", "birth_date": "1990-01-01"}),
        )
    exchange_id = answer.json()["id"]
    jans_id = jans.json()["exchange"]["id"]  # refused (two registered Jan Schulz), still his exchange
    with CitizenClient(live_broker.base_url) as browser:
        first = browser.get("/citizen")
        assert first.status_code == 200 and "Anmelden" in first.text and exchange_id not in first.text
        browser.sign_in("erika")
        page = wait_for_log(browser)
        assert "requester-" in page and "Meldebescheinigung" in page and "Wohngeldantrag" in page
        assert "§ 23 WoGG" in page and "übermittelt" in page
        assert 'id="log-proofs"' in page and 'src="/citizen/static/proof.js"' in page
        assert "Schulz" not in page and "Mustermann" not in page  # names of nobody, not even her own
        csp = browser.get("/citizen").headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1]
        copy = browser.get("/citizen/export.json")
        assert copy.status_code == 200 and copy.headers["content-disposition"].startswith("attachment")
        entries = copy.json()["entries"]
        assert any(item["content"]["exchange"] == exchange_id for item in entries)
        assert not any(item["content"]["exchange"] == jans_id for item in entries)
        script = browser.get("/citizen/static/proof.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert browser.get("/citizen/static/..%2Fservice.py").status_code == 404

        # Signing out needs the form's token; afterwards the cockpit asks to sign in again.
        assert browser.post("/citizen/logout").status_code == 403
        token = csrf_of(browser.get("/citizen").text)
        assert browser.post("/citizen/logout", data={"csrf": token}).status_code == 200
        assert "Anmelden" in browser.get("/citizen").text and browser.get("/citizen/export.json").status_code == 200
        assert "entries" not in browser.get("/citizen/export.json").text


def test_a_sign_in_leads_back_only_to_the_citizens_pages(live_broker: LiveBroker) -> None:
    with CitizenClient(live_broker.base_url) as browser:
        for wanted, landing in (
            ("/citizen", "/citizen"),
            ("/preview/" + "A" * 43, "/preview/" + "A" * 43),
            ("https://evil.example/", "/citizen"),
            ("//evil.example/x", "/citizen"),
            ("/v1/admin/registry", "/citizen"),
        ):
            start = browser.get("/citizen/login", params={"next": wanted})
            assert start.status_code == 303 and start.headers["location"].startswith("/citizen/dev-login")
            form = browser.get(start.headers["location"])
            answer = browser.post(
                "/citizen/dev-login",
                data={"citizen": "erika", "assurance": "high", "csrf": csrf_of(form.text), "next": wanted},
            )
            assert answer.headers["location"] == landing


def test_the_development_sign_in_needs_its_forms_token(live_broker: LiveBroker) -> None:
    with CitizenClient(live_broker.base_url) as browser:
        browser.get("/citizen/dev-login")
        refused = browser.post("/citizen/dev-login", data={"citizen": "erika", "assurance": "high"})
        assert refused.status_code == 403 and browser.get("/citizen").text.count("Anmelden") >= 1
        assert 'id="log-proofs"' not in browser.get("/citizen").text


def test_the_session_cookie_is_secure_httponly_and_lax(live_broker: LiveBroker) -> None:
    with CitizenClient(live_broker.base_url) as browser:
        cookie = browser.get("/citizen/dev-login").headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=lax" in cookie and "path=/" in cookie


def test_production_has_no_development_sign_in(seeded_database_url: str, tmp_path: Path) -> None:
    production = {
        "BROKER_ENV": "production",
        "BROKER_PUBLIC_URL": "https://broker.example",
        **PRODUCTION_SIGN_IN,
    }
    process, broker = start_broker(seeded_database_url, tmp_path, production)
    try:
        with CitizenClient(broker.base_url) as browser:
            assert browser.get("/citizen/dev-login").status_code == 404
            assert browser.post("/citizen/dev-login", data={"citizen": "erika"}).status_code == 404
            assert "Entwicklungsumgebung" not in browser.get("/citizen").text
    finally:
        process.terminate()
        process.wait(timeout=10)
    # Asking for it outside development stops the broker before it serves anyone.
    refused = subprocess.run(
        [sys.executable, "-m", "broker.cli", "serve", "--port", "1"],
        env={**broker.env, **production, "BROKER_CITIZEN_SIGNIN": "development"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "development sign-in" in refused.stderr and "Traceback" not in refused.stderr


def test_the_development_sign_in_shows_its_banner(live_broker: LiveBroker) -> None:
    page = httpx.get(f"{live_broker.base_url}/citizen/dev-login", timeout=30)
    assert page.status_code == 200 and "Entwicklungsumgebung" in page.text


@pytest.mark.parametrize("path", ["/citizen/consents/not-a-uuid", "/citizen/consents/" + "0" * 36])
def test_consent_pages_need_a_sign_in(live_broker: LiveBroker, path: str) -> None:
    page = httpx.get(live_broker.base_url + path, timeout=30)
    assert page.status_code == 200 and "/citizen/login" in page.text


def _session_cookie(broker: LiveBroker, issued: float, auth_time: float) -> str:
    """A session cookie as the broker would sign it (the test can read the broker's keys)."""
    import base64
    import json

    import itsdangerous

    from broker.citizen.session import derive_key
    from broker.keys.store import KeyStore

    secret = KeyStore(broker.keys_dir, origin="x").pseudonym_secret()
    citizen = {
        "idnr": None,
        "name": "ps1:someone",
        "assurance": "high",
        "auth_time": int(auth_time),
        "method": "development",
        "sid": "forged-for-the-test",
        "issued": int(issued),
    }
    data = base64.b64encode(json.dumps({"citizen": citizen}).encode())
    return itsdangerous.TimestampSigner(derive_key(secret)).sign(data).decode()


def test_a_session_ends_its_lifetime_after_the_sign_in_however_fresh_its_cookie(live_broker: LiveBroker) -> None:
    now = time.time()
    with CitizenClient(live_broker.base_url) as browser:
        browser.cookie = _session_cookie(live_broker, issued=now - 60, auth_time=now - 60)
        assert 'id="log-proofs"' in browser.get("/citizen").text  # a valid session
        # Freshly signed (the cookie's own timestamp is now), but the sign-in was 31 minutes ago.
        browser.cookie = _session_cookie(live_broker, issued=now - 31 * 60, auth_time=now - 31 * 60)
        assert 'id="log-proofs"' not in browser.get("/citizen").text
        # A sign-in in the future is no sign-in.
        browser.cookie = _session_cookie(live_broker, issued=now + 3600, auth_time=now)
        assert 'id="log-proofs"' not in browser.get("/citizen").text


def test_signing_out_ends_every_copy_of_the_session(live_broker: LiveBroker) -> None:
    with CitizenClient(live_broker.base_url) as browser, CitizenClient(live_broker.base_url) as thief:
        browser.sign_in("erika")
        page = browser.get("/citizen").text
        thief.cookie = browser.cookie
        assert 'id="log-proofs"' in thief.get("/citizen").text
        assert browser.post("/citizen/logout", data={"csrf": csrf_of(page)}).status_code == 200
        assert 'id="log-proofs"' not in thief.get("/citizen").text
        assert "entries" not in thief.get("/citizen/export.json").text


def test_a_next_address_with_a_line_break_leads_home(live_broker: LiveBroker) -> None:
    with CitizenClient(live_broker.base_url) as browser:
        form = browser.get("/citizen/dev-login")
        answer = browser.post(
            "/citizen/dev-login",
            data={"citizen": "erika", "assurance": "high", "csrf": csrf_of(form.text), "next": "/citizen\n"},
        )
        assert answer.headers["location"] == "/citizen"
