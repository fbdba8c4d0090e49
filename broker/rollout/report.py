"""The rollout report (``broker rollout report --out FILE.html``): one self-contained page an
operator can mail around.

Everything is in the file: inline CSS, an inline SVG chart, no script, no font, no image, and a
Content-Security-Policy that forbids fetching anything, so the page shows the same offline. The
matrix is a grid per Kreis (Kreise with gaps first, in each the offices with gaps first); every
colour comes with a symbol and a word, so the page reads without colour too. Every value goes
through :func:`esc`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from broker.rollout.presenters import gap_text, meanwhile, moment, route_prefix, summary, window_figures
from broker.rollout.schemas import CellOut, DayOut, OfficeOut, RolloutOut

# Symbol and word of each cell status; the colours are in _STYLE (contrast ≥ 4.5:1 on white).
STATUS = {"routed": ("✓", "routed"), "pending": ("◐", "pending"), "unrouted": ("✗", "no route")}
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:90rem;padding:0 1rem 2rem;color:#1b1b1b;"
    "line-height:1.4}"
    "h1{border-bottom:2px solid #004b76;padding-bottom:.5rem}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem;width:100%}"
    "caption{text-align:left;font-weight:600;padding:.25rem 0}"
    "th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border:1px solid #bbb;font-size:.9rem}"
    "thead th{background:#eef2f5}"
    ".routed{background:#e3f4e8;color:#0a5a26}"
    ".pending{background:#fff3cd;color:#6b5200}"
    ".unrouted{background:#fbe3e3;color:#8f0000}"
    ".status{font-weight:700}"
    ".small{display:block;color:#333;font-size:.8rem}"
    ".legend span{display:inline-block;padding:.2rem .6rem;margin-right:.5rem;border:1px solid #bbb}"
    "svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#1b1b1b}"
    ".bar-exchanges{fill:#2f6f9f}.bar-errors{fill:#b00020}"
)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def render(matrix: RolloutOut) -> str:
    title = f"Rollout coverage, {moment(matrix.generated_at)}"
    body = "".join(
        [
            f"<h1>{esc(title)}</h1>",
            f"<p>{esc(summary(matrix))}. Figures of the last {matrix.window_hours} hours per authority "
            "and evidence type: exchanges that ended, the share that failed through the authority, and the "
            "95th percentile of their durations.</p>",
            _legend(),
            _gaps(matrix),
            _chart(matrix.days),
            "<h2>Matrix by Kreis</h2>",
            *(_kreis(matrix, offices) for offices in _by_kreis(matrix.offices)),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(_CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _legend() -> str:
    items = "".join(
        f'<span class="{esc(status)}">{esc(symbol)} {esc(word)}</span>' for status, (symbol, word) in STATUS.items()
    )
    return f'<p class="legend">Legend: {items}</p>'


def _status(cell: CellOut) -> str:
    symbol, word = STATUS[cell.status]
    return f'<span class="status">{esc(symbol)} {esc(word)}</span>'


def _gaps(matrix: RolloutOut) -> str:
    if not matrix.gaps:
        return "<h2>Gaps</h2><p>None: every office is routed for every evidence type.</p>"
    titles = {t.id: t.title for t in matrix.evidence_types}
    cells = {(o.ars, c.evidence_type): c for o in matrix.offices for c in o.cells}
    rows = "".join(
        f'<tr class="{esc(gap.status)}"><td>{esc(gap.kreis)}</td><th scope="row">{esc(gap.office_name)}</th>'
        f"<td>{esc(gap.office)}</td><td>{esc(titles[gap.evidence_type])}</td>"
        f"<td>{_status(cell)} {esc(gap_text(cell))}</td></tr>"
        for gap in matrix.gaps
        for cell in [cells[gap.office, gap.evidence_type]]
    )
    return (
        f"<h2>Gaps ({len(matrix.gaps)})</h2><table><caption>Office × evidence type not routed</caption>"
        '<thead><tr><th scope="col">Kreis</th><th scope="col">Office</th><th scope="col">ARS</th>'
        f'<th scope="col">Evidence type</th><th scope="col">Why</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _by_kreis(offices: Iterable[OfficeOut]) -> list[list[OfficeOut]]:
    """The offices grouped by Kreis: Kreise with gaps first, then by key; in each, gaps first."""
    groups: dict[str, list[OfficeOut]] = {}
    for office in offices:
        groups.setdefault(office.kreis_key, []).append(office)
    ordered = sorted(groups.items(), key=lambda item: (not any(o.gaps for o in item[1]), item[0]))
    return [sorted(members, key=lambda o: (o.gaps == 0, o.ars)) for _, members in ordered]


def _kreis(matrix: RolloutOut, offices: list[OfficeOut]) -> str:
    first = offices[0]
    gaps = sum(o.gaps for o in offices)
    heading = f"{first.kreis} ({first.kreis_key}): {len(offices)} offices, {gaps} gaps"
    columns = "".join(f'<th scope="col">{esc(t.title)}</th>' for t in matrix.evidence_types)
    rows = "".join(
        f'<tr><th scope="row">{esc(office.name)}<span class="small">{esc(office.ars)}</span></th>'
        + "".join(_cell(cell) for cell in office.cells)
        + "</tr>"
        for office in offices
    )
    return (
        f'<table><caption>{esc(heading)}</caption><thead><tr><th scope="col">Office</th>{columns}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _cell(cell: CellOut) -> str:
    if cell.authority is None:
        return f'<td class="unrouted">{_status(cell)}</td>'
    shared = f", shared by {cell.offices_served} offices" if cell.offices_served > 1 else ""
    lines = [
        f"{cell.authority} ({cell.binding}), route {route_prefix(cell)}{shared}",
        f"conformance passed: {moment(cell.conformance_passed_at)}",
        f"last delivery: {moment(cell.last_delivered_at)}",
        window_figures(cell),
    ]
    if (fallback := meanwhile(cell)) is not None:
        lines.insert(0, fallback)
    details = "".join(f'<span class="small">{esc(line)}</span>' for line in lines)
    return f'<td class="{esc(cell.status)}">{_status(cell)}{details}</td>'


# The chart's geometry (SVG user units).
_WIDTH, _HEIGHT, _LEFT, _BOTTOM, _TOP = 760, 260, 48, 40, 16


def _chart(days: list[DayOut]) -> str:
    """Exchanges and errors per day as paired bars, with the numbers as a table beside."""
    if not days:
        return ""
    peak = max([d.exchanges for d in days] + [1])
    plot_height = _HEIGHT - _BOTTOM - _TOP
    slot = (_WIDTH - _LEFT - 8) / len(days)
    bar = max(slot / 2 - 2, 1)

    def y(value: int) -> float:
        return _TOP + plot_height * (1 - value / peak)

    parts = [
        f'<line x1="{_LEFT}" y1="{y(0):.1f}" x2="{_WIDTH - 4}" y2="{y(0):.1f}" stroke="#555"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{y(0):.1f}" stroke="#555"/>',
    ]
    for tick in sorted({0, peak // 2, peak}):
        parts.append(f'<text x="{_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>')
    for index, day in enumerate(days):
        x = _LEFT + 4 + index * slot
        for offset, value, kind in ((0.0, day.exchanges, "exchanges"), (bar, day.errors, "errors")):
            parts.append(
                f'<rect class="bar-{kind}" x="{x + offset:.1f}" y="{y(value):.1f}" width="{bar:.1f}" '
                f'height="{y(0) - y(value):.1f}"><title>{esc(day.day.isoformat())}: {value} {kind}</title></rect>'
            )
        parts.append(
            f'<text x="{x + bar:.1f}" y="{y(0) + 16:.1f}" text-anchor="middle">{esc(day.day.strftime("%m-%d"))}</text>'
        )
    legend_y = _HEIGHT - 8
    parts.append(
        f'<rect class="bar-exchanges" x="{_LEFT}" y="{legend_y - 9}" width="10" height="10"/>'
        f'<text x="{_LEFT + 14}" y="{legend_y}">exchanges</text>'
        f'<rect class="bar-errors" x="{_LEFT + 100}" y="{legend_y - 9}" width="10" height="10"/>'
        f'<text x="{_LEFT + 114}" y="{legend_y}">errors (authority failed)</text>'
    )
    first, last = days[0].day.isoformat(), days[-1].day.isoformat()
    rows = "".join(
        f'<tr><th scope="row">{esc(d.day.isoformat())}</th><td>{d.exchanges}</td><td>{d.errors}</td></tr>' for d in days
    )
    return (
        f"<h2>Exchanges and errors per day (UTC, {esc(first)} to {esc(last)})</h2>"
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="chart-title chart-desc" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" width="100%" style="max-width:{_WIDTH}px">'
        '<title id="chart-title">Exchanges and errors per day</title>'
        f'<desc id="chart-desc">Bars per day from {esc(first)} to {esc(last)}: exchanges that ended (blue) '
        f"and those the authority failed (red); the table below lists the numbers.</desc>{''.join(parts)}</svg>"
        "<details><summary>The numbers</summary><table><caption>Exchanges and errors per day</caption>"
        '<thead><tr><th scope="col">Day</th><th scope="col">Exchanges</th><th scope="col">Errors</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></details>"
    )
