"""Readiness: can this process serve now? One named check per thing a request may need.

``/readyz`` answers 200 only when every check passes, else a 503 problem that names each check's
state, so an operator (or an orchestrator's log) sees *what* is wrong, not just that something is.
Every check is cheap and bounded: one short read transaction, a few bytes written and deleted,
keys and schemas already in memory, and the seal's state (the latest seal's outcome while it is
recent, else one probe seal bounded by the seal's timeout: ``Sealer.readiness``).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import make_url, text

from broker.audit import repository as audit_repository
from broker.audit.integrator import BackgroundIntegrator
from broker.db.migrate import current_revisions, head_revisions
from broker.db.session import Database
from broker.exchange.dependencies import Sealer
from broker.keys.store import KeyStore
from broker.problems import FULL_RETRY_SECONDS, UNAVAILABLE_RETRY_SECONDS, Problem, storage_problem
from broker.settings import Settings
from broker.xml.catalogue import SchemaCatalogue

OK = "ok"
# States that do not make the process unready: background integration turned off by
# configuration (BROKER_INTEGRATE_INTERVAL_SECONDS=0) is a choice, not a fault.
PASSING = frozenset({OK, "off"})
# The integrator is stuck when queued entries wait longer than this many of its intervals, and
# at least STUCK_MIN_SECONDS, without this process's integrator making progress meanwhile.
STUCK_INTERVALS = 60
STUCK_MIN_SECONDS = 30.0
_PROBE_BYTES = b"readyz\n"


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(state in PASSING for state in self.checks.values())

    def problem(self) -> Problem:
        """The 503 answer of an unready process; the reason names the storage failure if there is one."""
        failing = ", ".join(f"{name} {state}" for name, state in self.checks.items() if state not in PASSING)
        detail = f"The broker is not ready: {failing}."
        states = {self.checks.get("database"), self.checks.get("disk")}
        if "full" in states:
            return Problem(503, "storage.full", detail, checks=self.checks, retry_after=FULL_RETRY_SECONDS)
        if "unavailable" in states:
            return Problem(
                503, "storage.unavailable", detail, checks=self.checks, retry_after=UNAVAILABLE_RETRY_SECONDS
            )
        return Problem(503, "not_ready", detail, checks=self.checks)


def check(
    settings: Settings,
    database: Database,
    keys: KeyStore,
    catalogue: SchemaCatalogue,
    integrator: BackgroundIntegrator,
    sealer: Sealer,
    now: datetime,
) -> Readiness:
    checks = {"database": OK, "revision": "unknown", "keys": keys_state(keys), "catalogue": _catalogue(catalogue)}
    oldest_queued: datetime | None = None
    try:
        with database.read() as session:
            session.execute(text("SELECT 1"))
            current = current_revisions(session.connection())
            oldest_queued = audit_repository.oldest_queued_at(session)
    except Exception as error:
        checks["database"] = _storage_state(error) or "error"
        checks["integrator"] = "unknown"
    else:
        checks["revision"] = _revision(current)
        checks["integrator"] = integrator_state(
            integrator.enabled,
            integrator.interval,
            integrator.seconds_since_progress(),
            None if oldest_queued is None else (now - _aware(oldest_queued)).total_seconds(),
        )
    checks["disk"] = disk_state(_probe_directory(settings))
    # Last: a probe (when no seal answered in the last seconds) may wait for a signer.
    checks["seal"] = sealer.readiness()
    return Readiness(checks)


def integrator_state(enabled: bool, interval: float, idle_seconds: float, queued_age_seconds: float | None) -> str:
    """``off``, ``stuck`` or ``ok``.

    Stuck needs both: the oldest queued entry waits beyond the bound (entries are integrated, by
    this process or another, within a few intervals normally) and this process's integrator has
    made no progress within it either (a large backlog being worked through is not stuck).
    """
    if not enabled:
        return "off"
    bound = max(STUCK_MIN_SECONDS, STUCK_INTERVALS * interval)
    if queued_age_seconds is not None and queued_age_seconds > bound and idle_seconds > bound:
        return "stuck"
    return OK


def disk_state(directory: Path) -> str:
    """``ok``, ``full`` or ``unwritable``: a few bytes written, synced and deleted in ``directory``."""
    probe = directory / f".readyz-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, _PROBE_BYTES)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        return _storage_state(error) or "unwritable"
    finally:
        probe.unlink(missing_ok=True)
    return OK


def _probe_directory(settings: Settings) -> Path:
    # SQLite writes next to its database file (the database, its WAL); a PostgreSQL deployment
    # writes locally only to its keys directory (key rotation, first start).
    if settings.is_sqlite:
        database = make_url(settings.database_url).database
        if database and database != ":memory:":
            return Path(database).resolve().parent
    return Path(settings.keys_dir)


def _storage_state(error: BaseException) -> str | None:
    problem = storage_problem(error)
    if problem is None:
        return None
    return "full" if problem.reason == "storage.full" else "unavailable"


def _revision(current: frozenset[str]) -> str:
    if current == head_revisions():
        return OK
    # Not migrated at all, or at another revision (an upgrade pending, or a newer broker's).
    return "not_migrated" if not current else "mismatch"


def keys_state(keys: KeyStore) -> str:
    if not keys.initialised:
        # The directory lost the keys since the start: this process signs on with the keys it
        # loaded, but a restart would be refused (broker/keys/fingerprints.py).
        return "missing"
    try:
        # Loaded once and kept; re-read only when the manifest changed on disk (a rotation).
        keys.checkpoint_key()
        keys.sealing_key()
    except Exception:
        return "unloadable"
    # Damaged or other keys in the directory: the loaded ones are kept, but a restart would be refused.
    if keys.unreadable:
        return "unreadable"
    return "replaced" if keys.replaced else OK


def _catalogue(catalogue: SchemaCatalogue) -> str:
    # Compiled when the process started (a broken schema stops the start); an empty one
    # would refuse every evidence document.
    return OK if catalogue.namespaces() else "empty"


def _aware(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; the broker stores UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
