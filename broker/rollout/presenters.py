"""The rollout matrix for people: the lines of ``broker rollout status``, and the words and
numbers the report (``report.py``) shows in its cells."""

from __future__ import annotations

from datetime import datetime

from broker.clock import as_utc
from broker.rollout.schemas import CellOut, RolloutOut

# Office kinds as the summary names them (singular, plural).
KINDS = {
    "amt": ("Amt", "Ämter"),
    "amtsfreie_gemeinde": ("amtsfreie Gemeinde", "amtsfreie Gemeinden"),
    "kreisfreie_stadt": ("kreisfreie Stadt", "kreisfreie Städte"),
}
_HEADER = (
    "ARS",
    "OFFICE",
    "EVIDENCE TYPE",
    "STATUS",
    "AUTHORITY",
    "BINDING",
    "ROUTE",
    "CONFORMANCE PASSED",
    "LAST DELIVERY",
)


def moment(value: datetime | None) -> str:
    return "-" if value is None else as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def kinds(matrix: RolloutOut) -> str:
    """The offices by kind, e.g. ``114 Ämter, 2 kreisfreie Städte``."""
    named = []
    for kind, count in matrix.summary.kinds.items():
        singular, plural = KINDS.get(kind, (kind, kind))
        named.append(f"{count} {singular if count == 1 else plural}")
    return ", ".join(named) or "no offices"


def summary(matrix: RolloutOut) -> str:
    s = matrix.summary
    return (
        f"{kinds(matrix)} × {s.evidence_types} evidence types = {s.cells} cells: "
        f"{s.routed} routed, {s.pending} pending, {s.unrouted} unrouted"
    )


def window_figures(cell: CellOut) -> str:
    """The cell's figures over the matrix's window, e.g. ``12 exchanges, 8.3 % errors, p95 0.41 s``."""
    if not cell.exchanges:
        return "no exchanges"
    rate = f"{100 * (cell.error_rate or 0):.1f} % errors"
    p95 = "-" if cell.p95_seconds is None else f"{cell.p95_seconds:.2f} s"
    return f"{cell.exchanges} exchanges, {rate}, p95 {p95}"


def route_prefix(cell: CellOut) -> str:
    if cell.ars_prefix is None:
        return "-"
    return cell.ars_prefix or "(everywhere)"  # the empty prefix: a route for the whole country


def gap_text(cell: CellOut) -> str:
    """Why a cell does not route: the authority its route waits for, or no route at all."""
    if cell.status == "pending":
        waits = f"waits for {cell.authority} ({cell.binding}) to be onboarded"
        return "; ".join(filter(None, [waits, meanwhile(cell)]))
    return "no authority holds it for this office"


def meanwhile(cell: CellOut) -> str | None:
    """Who answers while the cell's route is pending (by a coarser active route), if anyone."""
    return f"meanwhile {cell.served_by} answers" if cell.status == "pending" and cell.served_by else None


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def status_lines(matrix: RolloutOut, gaps_only: bool = False) -> list[str]:
    titles = {t.id: t.title for t in matrix.evidence_types}
    lines = [f"rollout at {moment(matrix.generated_at)}: {summary(matrix)}"]
    names = {o.ars: o for o in matrix.offices}
    lines.append(f"gaps ({len(matrix.gaps)}):" if matrix.gaps else "gaps: none")
    for gap in matrix.gaps:
        office = names[gap.office]
        cell = next(c for c in office.cells if c.evidence_type == gap.evidence_type)
        lines.append(f"  {gap.office}  {gap.office_name}  {titles[gap.evidence_type]}  {gap.status}: {gap_text(cell)}")
    if gaps_only:
        return lines
    rows = [
        (
            office.ars,
            office.name,
            titles[cell.evidence_type],
            cell.status,
            cell.authority or "-",
            cell.binding or "-",
            route_prefix(cell),
            moment(cell.conformance_passed_at),
            moment(cell.last_delivered_at),
            window_figures(cell),
        )
        for office in matrix.offices
        for cell in office.cells
    ]
    header = (*_HEADER, f"LAST {matrix.window_hours} H")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines.append("")
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return lines
