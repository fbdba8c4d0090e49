"""Fixtures of the browser tests: headless Chromium (Playwright) and a real OpenID Provider.

The tools come from outside PyPI: Debian's ``chromium`` (``/usr/bin/chromium``), Node.js, and the
npm packages of ``tests/browser/package-lock.json`` (``oidc-provider``, ``axe-core``), installed
by ``make test``. Without them the tests that need them skip, naming what is missing; with
``BROKER_TEST_REQUIRE_BROWSER=1`` (CI sets it) they fail instead.

Fixtures:

``oidc_provider``  (function scope) a factory ``start(accounts, clients) -> OidcProvider``; every
    provider it started is stopped at teardown. ``accounts`` maps a login name to
    ``{"claims": {...}, "acr": ACR_…}``; each client is ``{"client_id", "client_secret",
    "redirect_uris": [...]}`` plus any further client metadata. See ``oidc_provider.mjs`` for
    what the provider does (code flow, PKCE S256 required, claims in the ID token, ``acr`` and
    ``auth_time`` always there, consent granted automatically).
``chromium``  (module scope) the Playwright ``Browser``.
``page``  (function scope) a ``Page`` in a fresh browser context: no cookies from other tests.

The ``page`` context enforces the pages' Content-Security-Policy, as the citizen's browser does
(no ``bypass_csp``), so a test sees what a CSP blocks. :func:`axe_violations` still works there:
it evaluates axe-core through Playwright's ``page.evaluate`` (the DevTools protocol), which no
CSP of the page governs, instead of adding a ``<script>`` element, which a strict CSP refuses.

Helpers: :func:`sign_in_at_provider`, :func:`axe_violations`, :func:`describe_violations`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

BROWSER_DIR = Path(__file__).resolve().parent
NODE_MODULES = BROWSER_DIR / "node_modules"
PROVIDER_SCRIPT = BROWSER_DIR / "oidc_provider.mjs"
AXE_SCRIPT = NODE_MODULES / "axe-core" / "axe.min.js"
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts, which
# this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRE_ENV = "BROKER_TEST_REQUIRE_BROWSER"

# The eIDAS levels of assurance the provider knows (its `acr_values_supported`).
ACR_LOW = "http://eidas.europa.eu/LoA/low"
ACR_SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"
ACR_HIGH = "http://eidas.europa.eu/LoA/high"

# As long as a test broker gets: under the whole suite's load, loading oidc-provider and making
# its RSA key once took more than 20 s.
PROVIDER_START_TIMEOUT = 60.0
SIGN_IN_TIMEOUT_MS = 20_000
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_REPORTED_IMPACTS = frozenset({"serious", "critical"})

# The provider's sign-in page (see oidc_provider.mjs).
LOGIN_INPUT = "input#login"
SIGN_IN_BUTTON = "button#sign-in"
CANCEL_BUTTON = "button#cancel"
LOGIN_ERROR = "#login-error"


def missing_browser_tools() -> list[str]:
    """What the browser tests need and this machine lacks (empty when all is there)."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (Debian packages chromium, chromium-driver)")
    if shutil.which("node") is None:
        missing.append("node (Node.js) on PATH")
    for package in ("oidc-provider", "axe-core"):
        if not (NODE_MODULES / package).is_dir():
            missing.append(f"{NODE_MODULES / package} (npm ci --prefix tests/browser)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the Python package playwright (pip install -e '.[test]')")
    return missing


def browser_tools_available() -> bool:
    return not missing_browser_tools()


def require_browser_tools() -> None:
    """Skip the calling test when a tool is missing, or fail it under BROKER_TEST_REQUIRE_BROWSER=1."""
    missing = missing_browser_tools()
    if not missing:
        return
    reason = "browser tests need " + "; ".join(missing)
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


@dataclass
class OidcProvider:
    """A running ``oidc_provider.mjs``; ``issuer`` is ``http://127.0.0.1:PORT``."""

    issuer: str
    process: subprocess.Popen[str]
    log_path: Path
    _log: IO[str] = field(repr=False)

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def output(self) -> str:
        """What the provider wrote to stderr so far (warnings, errors of failed requests); also
        once it is stopped (its log closed), which is when a failed start reports it."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


class StartOidcProvider(Protocol):
    def __call__(
        self, accounts: Mapping[str, Mapping[str, Any]], clients: Sequence[Mapping[str, Any]]
    ) -> OidcProvider: ...


def _forward_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def start_oidc_provider(
    accounts: Mapping[str, Mapping[str, Any]], clients: Sequence[Mapping[str, Any]], directory: Path
) -> OidcProvider:
    """Start the provider with its configuration written under ``directory``; wait for READY.

    The script binds port 0 itself and announces the port it got, so no other process can take
    the port between choosing and binding it.
    """
    require_browser_tools()
    node = shutil.which("node")
    assert node is not None
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "oidc_provider.json"
    config_path.write_text(json.dumps({"clients": list(clients), "accounts": dict(accounts)}), encoding="utf-8")
    log_path = directory / "oidc_provider.log"
    log = log_path.open("w", encoding="utf-8")
    process = subprocess.Popen(
        [node, str(PROVIDER_SCRIPT), "--config", str(config_path), "--port", "0", "--host", "127.0.0.1"],
        cwd=BROWSER_DIR,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_forward_lines, args=(process.stdout, lines), daemon=True).start()
    provider = OidcProvider(issuer="", process=process, log_path=log_path, _log=log)
    stdout: list[str] = []
    deadline = time.monotonic() + PROVIDER_START_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(remaining, 0.0)) if remaining > 0 else None
        except queue.Empty:
            line = None
        if line is not None and line.startswith("READY "):
            provider.issuer = line.split(maxsplit=1)[1].strip()
            return provider
        if line is not None:
            stdout.append(line)
            continue
        provider.stop()
        pytest.fail(
            f"the OpenID Provider did not become ready within {PROVIDER_START_TIMEOUT:.0f} s "
            f"(exit code {process.returncode});\nstdout:\n{''.join(stdout)}\nstderr:\n{provider.output()}"
        )


@pytest.fixture
def oidc_provider(tmp_path: Path) -> Iterator[StartOidcProvider]:
    """A factory: ``oidc_provider(accounts, clients)`` starts a provider, stopped at teardown."""
    started: list[OidcProvider] = []

    def start(accounts: Mapping[str, Mapping[str, Any]], clients: Sequence[Mapping[str, Any]]) -> OidcProvider:
        provider = start_oidc_provider(accounts, clients, tmp_path / f"oidc-provider-{len(started)}")
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.stop()


# Module scope: Playwright's sync API keeps an event loop running in the main thread while it is
# open, and later tests that run asyncio themselves must not find one.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    require_browser_tools()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A page in a fresh context (own cookies and storage); the pages' CSP is enforced."""
    context = chromium.new_context()
    context.set_default_timeout(SIGN_IN_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def sign_in_at_provider(page: Page, login: str, *, timeout_ms: int = SIGN_IN_TIMEOUT_MS) -> None:
    """Sign in at the provider's page as ``login`` and follow the redirect back to the client.

    Call it once the browser is on its way to the provider (after clicking the broker's sign-in,
    or ``page.goto`` of an authorization URL). The provider asks for no consent (it grants what
    the client asks for), so the next page is the client's redirect URI, loaded when this returns.
    Raises AssertionError when the provider refuses the login or shows an error.
    """
    page.locator(LOGIN_INPUT).wait_for(state="visible", timeout=timeout_ms)
    provider_origin = _origin(page.url)
    page.locator(LOGIN_INPUT).fill(login)
    page.locator(SIGN_IN_BUTTON).click()
    deadline = time.monotonic() + timeout_ms / 1000
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    while True:
        try:
            page.wait_for_url(lambda url: _origin(url) != provider_origin, wait_until="commit", timeout=250)
            break
        except PlaywrightTimeoutError:
            pass
        try:
            refused = page.locator(LOGIN_ERROR).count() > 0 or page.locator("[id^=error-]").count() > 0
        except PlaywrightError:  # the page is navigating; look again
            refused = False
        if refused or time.monotonic() > deadline:
            text = page.locator("main").inner_text() if page.locator("main").count() else page.content()
            raise AssertionError(f"signing in at the provider as {login!r} did not return to the client: {text}")
    page.wait_for_load_state("load", timeout=timeout_ms)


def submit(page: Page, button: Locator) -> None:
    """Click a form's submit button and return once the page its answer loads is there.

    Playwright's click returns once the navigation it starts is under way, not done: read right
    after it, ``page.content()`` can be the empty document of a page still loading.
    """
    with page.expect_navigation(wait_until="load"):
        button.click()


@cache
def _axe_source() -> str:
    return AXE_SCRIPT.read_text(encoding="utf-8")


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The axe-core violations (WCAG 2.0/2.1 A and AA rules) of impact serious or critical."""
    if not page.evaluate("() => typeof window.axe === 'object' && typeof window.axe.run === 'function'"):
        # Compiled as the body of a function evaluated over the DevTools protocol, not as a
        # <script> element, so the page's Content-Security-Policy does not block it.
        page.evaluate("() => {\n" + _axe_source() + "\n}")
    violations: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const result = await window.axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return result.violations;
        }""",
        AXE_TAGS,
    )
    return [violation for violation in violations if violation.get("impact") in AXE_REPORTED_IMPACTS]


def describe_violations(violations: Sequence[Mapping[str, Any]]) -> str:
    """A readable list for an assertion message: rule, impact, help and the offending elements."""
    lines = []
    for violation in violations:
        targets = [", ".join(map(str, node.get("target", []))) for node in violation.get("nodes", [])]
        lines.append(
            f"{violation.get('id')} ({violation.get('impact')}): {violation.get('help')} — {'; '.join(targets)}"
        )
    return "\n".join(lines)
