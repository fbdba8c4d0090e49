"""The rollout matrix and the onboarding rules.

The matrix covers every office of the registry (``offices``: Ämter, amtsfreie Gemeinden,
kreisfreie Städte) × every evidence type. A cell resolves the office's area (its ARS) as a
request's jurisdiction would be, over active and pending routes alike: its most specific route
names the authority that holds the office's evidence, and the route's state whether it routes.
Alongside, per authority × evidence type: the latest passed conformance run and what the
exchanges say (last delivery, errors and p95 duration over a window).

Onboarding (``broker rollout onboard``, run by ``onboarding.Onboarding``) records the conformance
kit's run and, only when no case failed, activates the authority's pending routes;
``deactivate`` puts them back to pending. Both are registry changes with a log entry of their
own (``registry.service.set_route_states``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from broker.db.models import ConformanceRun
from broker.registry import repository as registry_repository
from broker.registry import service as registry_service
from broker.registry.schemas import AuthoritySpec, OfficeSpec
from broker.registry.service import RegistrySnapshot
from broker.rollout import repository
from broker.rollout.schemas import (
    CellOut,
    DayOut,
    EvidenceTypeOut,
    GapOut,
    OfficeOut,
    RolloutOut,
    SummaryOut,
)
from broker.tasks.conformance import CaseResult

WINDOW_HOURS = 24
HISTORY_DAYS = 14


# --- the matrix ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    prefix: str
    authority: str
    active: bool


def _most_specific(area: str, *tables: dict[str, str]) -> tuple[str, str] | None:
    """The longest prefix of ``area`` in any of the tables (prefix → authority), with its authority."""
    for length in range(len(area), -1, -1):
        for table in tables:
            if (authority := table.get(area[:length])) is not None:
                return area[:length], authority
    return None


def _route_of(registry: RegistrySnapshot, evidence_type: str, area: str) -> tuple[_Route | None, str | None]:
    """The area's most specific route of any state, and who answers it now (longest active)."""
    active = registry.routes.get(evidence_type, {})
    pending = registry.pending.get(evidence_type, {})
    served = _most_specific(area, active)
    found = _most_specific(area, active, pending)
    if found is None:
        return None, None
    prefix, authority = found
    return _Route(prefix, authority, active.get(prefix) == authority), served[1] if served else None


def matrix(
    session: Session, now: datetime, window_hours: int = WINDOW_HOURS, history_days: int = HISTORY_DAYS
) -> RolloutOut:
    """The matrix of the stored registry's offices × evidence types at ``now``."""
    document = registry_repository.read_document(session)
    registry = RegistrySnapshot.from_document(document)
    types = sorted(document.evidence_types, key=lambda t: t.id)
    resolved = {(office.ars, t.id): _route_of(registry, t.id, office.ars) for office in document.offices for t in types}
    pairs = sorted({(route.authority, t) for (_, t), (route, _) in resolved.items() if route is not None})
    served_count = Counter((route.authority, t) for (_, t), (route, _) in resolved.items() if route is not None)
    passes = repository.last_passes(session)
    since = now - timedelta(hours=window_hours)
    first_day = (now - timedelta(days=history_days - 1)).date()
    history_since = datetime.combine(first_day, datetime.min.time(), tzinfo=now.tzinfo)
    windows: dict[tuple[str, str], repository.Window] = {}
    last: dict[tuple[str, str], datetime | None] = {}
    days: Counter[date] = Counter()
    errors_by_day: Counter[date] = Counter()
    for authority_id, evidence_type in pairs:
        windows[authority_id, evidence_type] = repository.window(session, authority_id, evidence_type, since)
        last[authority_id, evidence_type] = repository.last_delivered(session, authority_id, evidence_type)
        for day, (count, errors) in repository.daily(session, authority_id, evidence_type, history_since).items():
            days[day] += count
            errors_by_day[day] += errors

    def cell(office: OfficeSpec, evidence_type: str) -> CellOut:
        route, served_by = resolved[office.ars, evidence_type]
        if route is None:
            return CellOut(
                evidence_type=evidence_type,
                status="unrouted",
                ars_prefix=None,
                authority=None,
                authority_name=None,
                binding=None,
                offices_served=0,
                served_by=served_by,
                conformance_passed_at=None,
                last_delivered_at=None,
                exchanges=0,
                errors=0,
                error_rate=None,
                p95_seconds=None,
            )
        authority = registry.authorities.get(route.authority)
        key = (route.authority, evidence_type)
        stats = windows[key]
        return CellOut(
            evidence_type=evidence_type,
            status="routed" if route.active else "pending",
            ars_prefix=route.prefix,
            authority=route.authority,
            authority_name=authority.name if authority else None,
            binding=authority.binding if authority else None,
            offices_served=served_count[key],
            served_by=served_by,
            conformance_passed_at=passes.get(route.authority),
            last_delivered_at=last[key],
            exchanges=stats.ended,
            errors=stats.errors,
            error_rate=stats.errors / stats.ended if stats.ended else None,
            p95_seconds=stats.p95_seconds,
        )

    offices = [_office_out(office, [cell(office, t.id) for t in types]) for office in document.offices]
    offices.sort(key=lambda o: (o.gaps == 0, o.ars))
    cells = [c for office in offices for c in office.cells]
    statuses = Counter(c.status for c in cells)
    return RolloutOut(
        generated_at=now,
        window_hours=window_hours,
        evidence_types=[EvidenceTypeOut(id=t.id, title=t.title) for t in types],
        summary=SummaryOut(
            offices=len(offices),
            kinds=dict(sorted(Counter(o.kind for o in offices).items())),
            evidence_types=len(types),
            cells=len(cells),
            routed=statuses["routed"],
            pending=statuses["pending"],
            unrouted=statuses["unrouted"],
        ),
        gaps=[
            GapOut(
                office=o.ars,
                office_name=o.name,
                kreis=o.kreis,
                evidence_type=c.evidence_type,
                status=c.status,
                authority=c.authority,
            )
            for o in sorted(offices, key=lambda o: o.ars)
            for c in o.cells
            if c.status != "routed"
        ],
        offices=offices,
        days=[
            DayOut(day=day, exchanges=days[day], errors=errors_by_day[day])
            for day in (first_day + timedelta(days=n) for n in range(history_days))
        ],
    )


def _office_out(office: OfficeSpec, cells: list[CellOut]) -> OfficeOut:
    return OfficeOut(
        ars=office.ars,
        name=office.name,
        kind=office.kind,
        kreis_key=office.ars[:5],
        kreis=office.kreis,
        gaps=sum(c.status != "routed" for c in cells),
        cells=cells,
    )


# --- onboarding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Onboarded:
    """What an onboarding did: the kit's verdicts, and how many routes it activated."""

    authority: str
    passed: bool
    results: tuple[CaseResult, ...]
    activated: int

    @property
    def failed(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if r.verdict == "FAIL")


def record_check(
    session: Session,
    checked: AuthoritySpec,
    results: Sequence[CaseResult],
    *,
    started_at: datetime,
    actor: str,
    now: datetime,
) -> Onboarded:
    """Keep the conformance run and, when it passed (cases ran, none failed), activate the
    authority's pending routes."""
    passed = bool(results) and not any(r.verdict == "FAIL" for r in results)
    repository.add_run(
        session,
        ConformanceRun(
            authority_id=checked.id,
            binding=checked.binding,
            started_at=started_at,
            finished_at=now,
            passed=passed,
            actor=actor,
            results=[{"case": r.case, "verdict": r.verdict, "detail": r.detail} for r in results],
        ),
    )
    activated = registry_service.set_route_states(session, checked.id, "active", actor=actor, now=now) if passed else 0
    return Onboarded(checked.id, passed, tuple(results), activated)


def deactivate(session: Session, authority_id: str, *, actor: str, now: datetime) -> int:
    """Put the authority's routes back to pending (they route nothing until it is onboarded
    again); returns how many changed."""
    return registry_service.set_route_states(session, authority_id, "pending", actor=actor, now=now)
