"""The browser-test tools on their own, without the broker: the OpenID Provider signs a citizen in
through Chromium for a relying party built from authlib, and the axe helper finds what it should.

The ID token is checked as authlib's own OpenID client checks it: joserfc verifies the signature
against the provider's JWKS and authlib's ``CodeIDToken`` validates the claims (``iss``, ``aud``,
``exp``, ``iat``, ``nonce``, ``auth_time``, ``acr``). The older ``authlib.jose`` does the same but
is deprecated in the authlib installed here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.browser.conftest import (
    ACR_HIGH,
    ACR_LOW,
    ACR_SUBSTANTIAL,
    CANCEL_BUTTON,
    LOGIN_INPUT,
    OidcProvider,
    StartOidcProvider,
    axe_violations,
    describe_violations,
    sign_in_at_provider,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

CLIENT_ID = "once-only-broker"
CLIENT_SECRET = "browser-test-client-secret"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "erika": {
        "claims": {
            "family_name": "Mustermann",
            "given_name": "Erika",
            "birthdate": "1964-08-12",
            "place_of_birth": "Berlin",
            "idnr": "12345678995",
        },
        "acr": ACR_SUBSTANTIAL,
    },
    "max": {
        "claims": {"family_name": "Mustermann", "given_name": "Max", "birthdate": "1960-01-01"},
        "acr": ACR_HIGH,
    },
    "lotte": {
        "claims": {"family_name": "Beispiel", "given_name": "Lotte", "birthdate": "1990-02-28"},
        "acr": ACR_LOW,
    },
}

ACCESSIBLE_PAGE = """<!DOCTYPE html>
<html lang="de">
<head><meta charset="utf-8"><title>Nachweis anfordern</title></head>
<body>
<main>
  <h1>Nachweis anfordern</h1>
  <form method="post" action="/send">
    <label for="purpose">Zweck</label>
    <input id="purpose" name="purpose" type="text">
    <button type="submit">Anfordern</button>
  </form>
</main>
</body>
</html>"""
INACCESSIBLE_PAGE = ACCESSIBLE_PAGE.replace(
    '<button type="submit">', '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><button type="submit">'
)
BACK_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><title>Back</title></head><body><main><h1>Back</h1></main></body></html>'
)
STRICT_CSP = "default-src 'none'; script-src 'none'; style-src 'none'; base-uri 'none'; form-action 'self'"


@dataclass
class Receiver:
    """A tiny loopback HTTP server: the relying party's redirect URI, and a page server."""

    server: ThreadingHTTPServer
    requests: list[str] = field(default_factory=list)
    pages: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def last_query(self, path: str = "/callback") -> dict[str, str]:
        """The query of the latest request to ``path`` (the redirect URI's by default)."""
        matching = [request for request in self.requests if urlsplit(request).path == path]
        assert matching, f"the browser never came to {path}: {self.requests}"
        return {key: values[0] for key, values in parse_qs(urlsplit(matching[-1]).query).items()}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            rp = holder[0]
            rp.requests.append(self.path)
            body, headers = rp.pages.get(urlsplit(self.path).path, (BACK_PAGE, {}))
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class RelyingParty:
    """An authlib OAuth2Client doing the code flow with PKCE (S256), nonce and state."""

    provider: OidcProvider
    redirect_uri: str
    metadata: dict[str, Any]
    client: OAuth2Client
    state: str = ""
    nonce: str = ""
    code_verifier: str = ""

    def authorization_url(self, **extra: Any) -> str:
        self.state, self.nonce, self.code_verifier = generate_token(24), generate_token(24), generate_token(64)
        url, _ = self.client.create_authorization_url(
            self.metadata["authorization_endpoint"],
            state=self.state,
            nonce=self.nonce,
            code_verifier=self.code_verifier,
            **extra,
        )
        return str(url)

    def finish(self, query: dict[str, str]) -> CodeIDToken:
        """Check the redirect, exchange the code, validate the ID token; returns its claims."""
        assert query.get("state") == self.state
        assert query.get("iss") == self.provider.issuer  # RFC 9207
        assert "code" in query, query
        token = self.client.fetch_token(
            self.metadata["token_endpoint"], code=query["code"], code_verifier=self.code_verifier
        )
        keys = KeySet.import_key_set(httpx.get(self.metadata["jwks_uri"]).json())
        decoded = jwt.decode(token["id_token"], keys, algorithms=self.metadata["id_token_signing_alg_values_supported"])
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "values": [self.provider.issuer]},
                "auth_time": {"essential": True},
                "acr": {"essential": True},
            },
            {"nonce": self.nonce, "client_id": CLIENT_ID, "access_token": token["access_token"]},
        )
        claims.validate(leeway=5)
        return claims


@pytest.fixture
def relying_party(oidc_provider: StartOidcProvider, receiver: Receiver) -> Iterator[RelyingParty]:
    redirect_uri = receiver.url("/callback")
    provider = oidc_provider(
        ACCOUNTS, [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [redirect_uri]}]
    )
    metadata = httpx.get(provider.discovery_url).json()
    client = OAuth2Client(
        CLIENT_ID, CLIENT_SECRET, scope="openid profile", redirect_uri=redirect_uri, code_challenge_method="S256"
    )
    with client:
        yield RelyingParty(provider, redirect_uri, metadata, client)


def test_discovery_states_what_the_broker_relies_on(relying_party: RelyingParty) -> None:
    metadata = relying_party.metadata
    assert metadata["issuer"] == relying_party.provider.issuer
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["acr_values_supported"] == [ACR_LOW, ACR_SUBSTANTIAL, ACR_HIGH]
    assert {"family_name", "given_name", "birthdate", "place_of_birth", "idnr", "acr", "auth_time"} <= set(
        metadata["claims_supported"]
    )


@pytest.mark.parametrize(("login", "acr"), [("erika", ACR_SUBSTANTIAL), ("max", ACR_HIGH), ("lotte", ACR_LOW)])
def test_sign_in_gives_a_valid_id_token_with_the_claims(
    relying_party: RelyingParty, receiver: Receiver, page: Page, login: str, acr: str
) -> None:
    before = int(time.time())
    page.goto(relying_party.authorization_url())
    sign_in_at_provider(page, login)
    assert page.url.startswith(relying_party.redirect_uri)

    claims = relying_party.finish(receiver.last_query())

    expected = ACCOUNTS[login]["claims"]
    assert claims["sub"] == login
    assert claims["family_name"] == expected["family_name"]
    assert claims["given_name"] == expected["given_name"]
    assert claims["birthdate"] == expected["birthdate"]
    assert claims["acr"] == acr
    assert claims["nonce"] == relying_party.nonce
    assert claims["aud"] == CLIENT_ID
    assert before - 1 <= claims["auth_time"] <= int(time.time()) + 1
    if login == "erika":
        assert claims["place_of_birth"] == "Berlin"
        assert claims["idnr"] == "12345678995"


def test_prompt_login_and_max_age_ask_again_else_the_session_is_reused(
    relying_party: RelyingParty, receiver: Receiver, page: Page
) -> None:
    page.goto(relying_party.authorization_url())
    sign_in_at_provider(page, "erika")
    first = relying_party.finish(receiver.last_query())

    # A second request without prompt: the provider's session answers, no sign-in page.
    page.goto(relying_party.authorization_url())
    page.wait_for_url(f"{relying_party.redirect_uri}?**")
    assert relying_party.finish(receiver.last_query())["auth_time"] == first["auth_time"]

    time.sleep(1.1)  # auth_time counts seconds
    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        page.goto(relying_party.authorization_url(**extra))
        sign_in_at_provider(page, "erika")
        again = relying_party.finish(receiver.last_query())
        assert again["auth_time"] > first["auth_time"], extra


def test_cancel_at_the_provider_returns_access_denied(
    relying_party: RelyingParty, receiver: Receiver, page: Page
) -> None:
    page.goto(relying_party.authorization_url())
    page.locator(CANCEL_BUTTON).click()
    page.wait_for_url(f"{relying_party.redirect_uri}?**")
    query = receiver.last_query()
    assert query["error"] == "access_denied"
    assert query["state"] == relying_party.state


def test_an_unknown_login_is_refused(relying_party: RelyingParty, receiver: Receiver, page: Page) -> None:
    page.goto(relying_party.authorization_url())
    with pytest.raises(AssertionError, match="Unknown login name"):
        sign_in_at_provider(page, "nobody")
    assert page.locator(LOGIN_INPUT).is_visible()
    assert not [request for request in receiver.requests if request.startswith("/callback")]


def test_pkce_is_required(relying_party: RelyingParty, receiver: Receiver) -> None:
    response = httpx.get(
        relying_party.metadata["authorization_endpoint"],
        params={
            "client_id": CLIENT_ID,
            "response_type": "code",
            "scope": "openid profile",
            "redirect_uri": relying_party.redirect_uri,
            "state": "s",
            "nonce": "n",
        },
    )
    assert response.status_code == 303
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(relying_party.redirect_uri)
    assert location.params["error"] == "invalid_request"
    assert "PKCE" in location.params["error_description"]


def test_axe_passes_an_accessible_page(page: Page) -> None:
    page.set_content(ACCESSIBLE_PAGE)
    violations = axe_violations(page)
    assert violations == [], describe_violations(violations)


def test_axe_finds_an_image_without_alternative_text(page: Page) -> None:
    page.set_content(INACCESSIBLE_PAGE)
    violations = axe_violations(page)
    assert [violation["id"] for violation in violations] == ["image-alt"]
    assert "image-alt (critical)" in describe_violations(violations)


def test_axe_runs_under_a_strict_content_security_policy(page: Page, receiver: Receiver) -> None:
    receiver.pages["/strict"] = (INACCESSIBLE_PAGE, {"Content-Security-Policy": STRICT_CSP})
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(receiver.url("/strict"))
    assert [violation["id"] for violation in axe_violations(page)] == ["image-alt"]
    # The page's CSP was enforced all along (it blocked the image), yet axe ran.
    assert any("Content Security Policy" in text for text in console), console


def test_acr_values_asking_more_than_the_account_has_get_the_account_level(
    relying_party: RelyingParty, receiver: Receiver, page: Page
) -> None:
    # The provider does not raise a level it cannot give: the relying party must check `acr`.
    page.goto(relying_party.authorization_url(acr_values=ACR_HIGH))
    sign_in_at_provider(page, "erika")
    assert relying_party.finish(receiver.last_query())["acr"] == ACR_SUBSTANTIAL


def test_the_provider_sign_in_page_is_accessible(relying_party: RelyingParty, page: Page) -> None:
    page.goto(relying_party.authorization_url())
    page.locator(LOGIN_INPUT).wait_for()
    violations = axe_violations(page)
    assert violations == [], describe_violations(violations)
