"""Housekeeping of exchanges, run periodically by every serving process (``broker.background``).

Expires exchanges whose authority never answered (they end ``expired``, 504) and drops
evidence whose retention or preview time has passed. Any number of processes may sweep at
once: overdue exchanges are taken with ``SKIP LOCKED`` and the purge is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from broker.db.session import Database
from broker.exchange import repository
from broker.exchange.dependencies import ExchangeDependencies
from broker.logging import get_logger
from broker.tasks import service as tasks

log = get_logger(__name__)


class Sweeps:
    def __init__(
        self,
        database: Database,
        deps: ExchangeDependencies,
        expiry: timedelta,
        on_ended: Callable[[str], None],
    ) -> None:
        self._database = database
        self._deps = deps
        self._expiry = expiry
        # Told each exchange this sweep ended (after the commit): wakes its waiter and the callbacks.
        self._on_ended = on_ended

    def run_once(self) -> None:
        with self._database.unit_of_work() as session:
            expired = tasks.expire_overdue(session, self._deps, self._expiry)
            purged = repository.purge_evidence(session, self._deps.clock.now())
        if purged:
            log.info("evidence_purged", exchanges=purged)
        for finished in expired:
            log.info("exchange_expired", exchange=finished.exchange.id)
            self._on_ended(finished.exchange.id)
