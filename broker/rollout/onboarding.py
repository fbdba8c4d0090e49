"""Onboarding an authority (``broker rollout onboard``): the conformance kit, then its routes.

The kit asks the authority over the network (push) or waits for its adapter to answer (pull), so
it runs outside any write transaction; its verdicts and the activation that a pass brings are
one transaction after it (``service.record_check``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from broker.clock import Clock
from broker.db.session import Database
from broker.registry import repository as registry_repository
from broker.registry import service as registry_service
from broker.registry.schemas import AuthoritySpec
from broker.rollout import service
from broker.tasks.conformance import CaseResult


class ConformanceCheck(Protocol):
    """Runs the conformance kit against an authority: ``tasks.conformance.Battery`` for real, a
    scripted list of verdicts in tests."""

    def __call__(self, authority: AuthoritySpec) -> Sequence[CaseResult]: ...


class Onboarding:
    def __init__(self, database: Database, check: ConformanceCheck, clock: Clock) -> None:
        self._database = database
        self._check = check
        self._clock = clock

    def onboard(self, authority_id: str, *, actor: str) -> service.Onboarded:
        """Run the kit against the registered authority; activate its routes if it passed.
        Raises the registry's 404 problem for an unknown authority."""
        with self._database.read() as session:
            authority = registry_service.authority_of(registry_repository.read_document(session), authority_id)
        started = self._clock.now()
        results = self._check(authority)
        with self._database.unit_of_work() as session:
            return service.record_check(
                session, authority, results, started_at=started, actor=actor, now=self._clock.now()
            )
