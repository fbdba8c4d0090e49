"""A citizen's browser without a browser, for the subprocess tests: httpx with the session cookie.

httpx's cookie jar (rightly) never sends a ``Secure`` cookie over plain http, and the test
brokers listen on loopback http; this client carries the broker's session cookie itself.
Browsers treat loopback as a secure context and keep the cookie (the Chromium tests show it).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from broker.citizen.session import COOKIE_NAME

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


class CitizenClient:
    def __init__(self, base_url: str) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)
        self.cookie: str | None = None

    def __enter__(self) -> CitizenClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.cookie is not None:
            headers["Cookie"] = f"{COOKIE_NAME}={self.cookie}"
        response = self._client.request(method, url, headers=headers, **kwargs)
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            if name == COOKIE_NAME:
                value = rest.split(";", 1)[0]
                self.cookie = None if value in ("", "null") or "max-age=0" in header.lower() else value
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def sign_in(self, citizen: str = "erika", assurance: str = "high") -> None:
        """The development sign-in (test brokers run with BROKER_ENV=development)."""
        form = self.get("/citizen/dev-login")
        assert form.status_code == 200, form.text
        answer = self.post(
            "/citizen/dev-login",
            data={"citizen": citizen, "assurance": assurance, "csrf": csrf_of(form.text), "next": "/citizen"},
        )
        assert answer.status_code == 303, answer.text

    def decide_preview(self, location: str, decision: str) -> httpx.Response:
        """Open the preview page as this citizen and press a button on it."""
        page = self.get(location)
        token = csrf_of(page.text) if 'name="csrf"' in page.text else ""
        return self.post(location, data={"decision": decision, "csrf": token})
