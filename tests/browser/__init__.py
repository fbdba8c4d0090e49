"""Browser tests: headless Chromium (Playwright) against the broker and a real OpenID Provider."""
