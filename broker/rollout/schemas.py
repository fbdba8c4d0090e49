"""The rollout matrix as ``GET /v1/admin/rollout`` answers it (and the command line and the
report show it): every office of the registry × every evidence type."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

# routed: an active route of the office's area leads to an authority; pending: its most specific
# route waits for its authority's onboarding; unrouted: no route at all.
CellStatus = Literal["routed", "pending", "unrouted"]


class CellOut(BaseModel):
    evidence_type: str
    status: CellStatus
    # The office's most specific route (longest ARS prefix of its area), active or pending.
    ars_prefix: str | None
    authority: str | None
    authority_name: str | None
    binding: str | None
    # How many offices this authority serves for the type by these routes: more than 1 for a
    # shared register (e.g. a Kreis-level Standesamt).
    offices_served: int = Field(ge=0)
    # Who answers the office's requests now: the authority above, or while its route is pending,
    # the one of a coarser active route (None: nobody).
    served_by: str | None
    # When the authority's latest passed conformance run (`broker rollout onboard`) ended.
    conformance_passed_at: datetime | None
    last_delivered_at: datetime | None
    # Over the window (window_hours): exchanges routed to the authority for the type that ended,
    # those that ended in an error of the authority (failed other than the register's "no such
    # subject" or "several", or expired), and the 95th percentile of their durations (receipt to
    # end, exchanges without a citizen's preview).
    exchanges: int = Field(ge=0)
    errors: int = Field(ge=0)
    error_rate: float | None
    p95_seconds: float | None


class OfficeOut(BaseModel):
    ars: str
    name: str
    kind: str
    kreis_key: str
    kreis: str
    gaps: int = Field(ge=0)
    cells: list[CellOut]


class GapOut(BaseModel):
    """A cell not routed, named."""

    office: str
    office_name: str
    kreis: str
    evidence_type: str
    status: CellStatus
    # The authority its pending route waits for (None where there is no route).
    authority: str | None


class EvidenceTypeOut(BaseModel):
    id: str
    title: str


class SummaryOut(BaseModel):
    offices: int
    # Office kind → how many (amt, amtsfreie_gemeinde, kreisfreie_stadt).
    kinds: dict[str, int]
    evidence_types: int
    cells: int
    routed: int
    pending: int
    unrouted: int


class DayOut(BaseModel):
    """What the matrix's authorities did on one day (UTC): exchanges that ended, of them errors."""

    day: date
    exchanges: int
    errors: int


class RolloutOut(BaseModel):
    generated_at: datetime
    window_hours: int
    evidence_types: list[EvidenceTypeOut]
    summary: SummaryOut
    # Every gap, by Kreis and office.
    gaps: list[GapOut]
    # Offices with gaps first, then by Regionalschlüssel.
    offices: list[OfficeOut]
    # Oldest first, one entry per day of the history (days without exchanges too).
    days: list[DayOut]
