"""The rollout tests use the browser tests' Chromium for the report (one per module), not a copy."""

from tests.browser.conftest import chromium  # noqa: F401
