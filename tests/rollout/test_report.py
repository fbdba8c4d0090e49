"""The rollout report: everything escaped, and in headless Chromium (Playwright) a page that
shows the matrix, the gaps and the chart without asking the network for anything."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from broker.rollout.report import render
from broker.rollout.schemas import RolloutOut
from tests.browser.conftest import axe_violations, describe_violations
from tests.registry.support import demo_database
from tests.rollout.support import add_exchanges, matrix_of

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Request, Route


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RolloutOut]:
    """The demo's matrix with some days of exchanges (the page does not depend on the backend)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('rollout-report') / 'broker.db'}"
    for database in demo_database(url):
        hour = timedelta(hours=1)
        add_exchanges(
            database,
            [("delivered", None, 0.2, n * 7 * hour, False) for n in range(30)]
            + [("failed", "authority.timeout", 5.0, n * 11 * hour, False) for n in range(6)],
        )
        yield matrix_of(database)


def test_every_value_is_escaped(matrix: RolloutOut) -> None:
    hostile = '<script>alert("x")</script>'
    office = matrix.offices[0].model_copy(update={"name": hostile, "kreis": hostile})
    gaps = [g.model_copy(update={"office_name": hostile, "kreis": hostile}) for g in matrix.gaps]
    page = render(matrix.model_copy(update={"offices": [office, *matrix.offices[1:]], "gaps": gaps}))
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_the_report_opens_offline_in_a_browser(matrix: RolloutOut, chromium: Browser, tmp_path: Path) -> None:
    report = tmp_path / "rollout.html"
    report.write_text(render(matrix), encoding="utf-8")
    context = chromium.new_context()
    requested: list[str] = []
    blocked: list[str] = []

    def only_local(route: Route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    def seen(request: Request) -> None:
        requested.append(request.url)

    context.route("**/*", only_local)
    context.on("request", seen)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(report.as_uri(), wait_until="load")

        assert page.title().startswith("Rollout coverage")
        assert page.locator("h1").inner_text().startswith("Rollout coverage")
        gap_rows = page.locator("table").first.locator("tbody tr")
        assert gap_rows.count() == 3
        assert "Amt Vorpommern-Greifswald 17" in gap_rows.first.inner_text()
        captions = page.locator("caption").all_inner_texts()
        kreise = [c for c in captions if "offices," in c]
        assert len(kreise) == 8 and kreise[0].startswith("Vorpommern-Greifswald (13075)")  # gaps first
        chart = page.locator("svg[role=img]")
        assert chart.is_visible() and chart.bounding_box() is not None
        assert page.locator("svg rect.bar-errors").count() >= 14
        violations = axe_violations(page)
        assert violations == [], describe_violations(violations)
    finally:
        context.close()
    assert blocked == []
    assert requested == [report.as_uri()]
    assert errors == []
