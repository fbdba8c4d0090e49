"""The broker's domain metrics for Prometheus: every name, label and bucket is defined here.

Two kinds, measured in two ways:

* Counters and histograms of what happened — exchanges by how they ended, authority calls —
  live in this process's default registry. The exchange lifecycle reports an exchange once, when
  it reaches its terminal state, and the report is applied only when that transaction commits
  (:func:`after_commit`): a rolled-back ending is not counted, a replayed one not twice.
* Gauges of the state the database holds — the pull queue, the callback outbox, the log
  integrator's backlog and checkpoints — and of this process's circuit breakers are computed at
  scrape time by :class:`DomainGauges`, in one short read transaction of cheap indexed queries.
  So every worker process reports the same numbers and nothing goes stale between scrapes.

Label values are bounded and never personal: registry ids of evidence types and authorities
(bounded by configuration), bindings, channels, states and reason codes (the code's own stable
vocabulary). Never an exchange id, a name, a requester or anything a caller typed; a value that
does not look like one of those is replaced by ``other`` (see :func:`_code`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from adapters.http_push import Breakers
from adapters.protocol import AdapterOutcome, OutcomeKind
from broker.audit import repository as log_repository
from broker.callbacks import repository as callback_repository
from broker.clock import as_utc
from broker.db.models import Exchange
from broker.db.session import Database
from broker.logging import get_logger
from broker.registry.schemas import AuthoritySpec
from broker.tasks import repository as task_repository

log = get_logger(__name__)

# From a 5 ms in-process answer to a push authority at its 30 s limit (the registry's timeouts
# go up to 120 s; anything slower falls into +Inf, which is an alert on its own).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The label value of what an exchange does not have (no authority before routing, no reason
# when delivered), and of a value that is not one of the bounded vocabulary.
NONE = "none"
OTHER = "other"

EXCHANGES = Counter(
    "broker_exchanges_total",
    "Exchanges that reached a terminal state, by evidence type, authority, channel, outcome and reason code",
    ["evidence_type", "authority", "channel", "outcome", "reason"],
)
EXCHANGE_SECONDS = Histogram(
    "broker_exchange_duration_seconds",
    "Time from an exchange's receipt to its terminal state, for exchanges routed to an authority",
    ["authority", "binding"],
    buckets=DURATION_BUCKETS,
)
AUTHORITY_CALLS = Counter(
    "broker_authority_calls_total",
    "Calls to authorities by result: ok (answered by the protocol), error (a wrong answer), "
    "unavailable (unreachable, timed out, 5xx, connection lost)",
    ["authority", "binding", "result"],
)
SIGNER_FAILURES = Counter(
    "broker_signer_failures_total",
    "Seals that failed because a signer process died, hung, answered nonsense or could not start "
    "(each answered 503 seal.unavailable, or /readyz seal unavailable for its probe; the signer is started afresh)",
)
AUTHORITY_CALL_SECONDS = Histogram(
    "broker_authority_call_duration_seconds",
    "Duration of an authority call; for the pull binding from queueing the task to the answer",
    ["authority", "binding"],
    buckets=DURATION_BUCKETS,
)

# The gauges DomainGauges computes at scrape time (names here, beside the others).
BREAKER_STATE = "broker_authority_breaker_state"
PULL_QUEUE_DEPTH = "broker_pull_queue_depth"
PULL_QUEUE_OLDEST = "broker_pull_queue_oldest_seconds"
OUTBOX_DEPTH = "broker_callback_outbox_depth"
OUTBOX_OLDEST = "broker_callback_outbox_oldest_seconds"
LOG_QUEUE_DEPTH = "broker_log_queue_depth"
LOG_QUEUE_OLDEST = "broker_log_queue_oldest_seconds"
LOG_TREE_SIZE = "broker_log_tree_size"
CHECKPOINT_AGE = "broker_log_checkpoint_age_seconds"
DATABASE_UP = "broker_metrics_database_up"
BREAKER_STATES = ("closed", "half_open", "open")


class CallResult(StrEnum):
    OK = "ok"
    ERROR = "error"
    UNAVAILABLE = "unavailable"


# Failures that say the authority is not there (they also trip the circuit breaker).
UNAVAILABLE_REASONS = frozenset(
    {"authority.unreachable", "authority.timeout", "authority.server_error", "authority.connection_lost"}
)
# Failures of calls the broker never made: the breaker was open, the authority has no key, the
# egress policy refused its address. They end exchanges (counted there), but are no call.
NOT_CALLED_REASONS = frozenset({"authority.unavailable", "authority.no_key", "authority.egress_refused"})

# Reason codes are dotted lower-case words (``authority.timeout``); anything else is not one.
_CODE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*")
_MAX_CODE = 64
_MAX_ID = 200

# Which binding an authority has, for the exchange duration's label: the registry snapshot of
# the serving process, given by the composition root (use_registry). Prometheus metrics are
# process-wide, so is this; without it (in-process tests) the binding is "unknown".
AuthorityLookup = Callable[[], Mapping[str, AuthoritySpec]]


def _no_registry() -> Mapping[str, AuthoritySpec]:
    return {}


_authorities: AuthorityLookup = _no_registry


def use_registry(authorities: AuthorityLookup) -> None:
    global _authorities
    _authorities = authorities


def _code(value: str | None) -> str:
    if value is None:
        return NONE
    return value if len(value) <= _MAX_CODE and _CODE.fullmatch(value) else OTHER


def _registry_id(value: str | None) -> str:
    # Only registry ids reach the exchange row (terms.resolve), bounded by configuration.
    if value is None:
        return NONE
    return value if 0 < len(value) <= _MAX_ID and value.isprintable() else OTHER


def _binding_of(authority_id: str) -> str:
    spec = _authorities().get(authority_id)
    return spec.binding if spec is not None else "unknown"


# --- applied when the transaction commits ---------------------------------------------------

_PENDING = "broker.ops.metrics.pending"


def after_commit(session: Session, observe: Callable[[], None]) -> None:
    """Apply ``observe`` once the session's current transaction commits; drop it if it does not."""
    session.info.setdefault(_PENDING, []).append(observe)


@event.listens_for(Session, "after_commit")
def _apply_committed(session: Session) -> None:
    for observe in session.info.pop(_PENDING, ()):
        try:
            observe()
        except Exception as error:  # the commit has happened: a metric must not fail the request
            log.warning("metric_not_recorded", error_type=type(error).__name__)


@event.listens_for(Session, "after_transaction_end")
def _drop_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    # Runs after after_commit; what is still pending at the end of the outermost transaction
    # belongs to one that was rolled back.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


# --- what the exchange lifecycle and the authority calls report ------------------------------


def exchange_ended(session: Session, exchange: Exchange, at: datetime) -> None:
    """An exchange reached its terminal state (``exchange.state``, ``exchange.reason``) at ``at``."""
    labels = (
        _registry_id(exchange.evidence_type_id),
        _registry_id(exchange.authority_id),
        _code(exchange.channel),
        _code(exchange.state),
        _code(exchange.reason),
    )
    authority = exchange.authority_id
    seconds = (as_utc(at) - as_utc(exchange.created_at)).total_seconds() if exchange.created_at else None

    def observe() -> None:
        EXCHANGES.labels(*labels).inc()
        # Refused before routing, an exchange never met an authority: its duration says nothing
        # about one, so only routed exchanges are timed.
        if authority is not None and seconds is not None:
            EXCHANGE_SECONDS.labels(_registry_id(authority), _binding_of(authority)).observe(max(seconds, 0.0))

    after_commit(session, observe)


def call_result(outcome: AdapterOutcome | None) -> CallResult:
    """What an authority call's outcome says about the authority (None: the call raised)."""
    if outcome is None:
        return CallResult.ERROR
    if outcome.kind is not OutcomeKind.FAILED:
        return CallResult.OK
    return CallResult.UNAVAILABLE if outcome.reason in UNAVAILABLE_REASONS else CallResult.ERROR


def authority_called(authority_id: str, binding: str, outcome: AdapterOutcome | None, seconds: float) -> None:
    """Record one call of an authority and its outcome; calls never made are not recorded."""
    if outcome is not None and outcome.reason in NOT_CALLED_REASONS:
        return
    authority = _registry_id(authority_id)
    AUTHORITY_CALLS.labels(authority, _code(binding), call_result(outcome).value).inc()
    AUTHORITY_CALL_SECONDS.labels(authority, _code(binding)).observe(max(seconds, 0.0))


@dataclass
class AuthorityCall:
    """A call being timed: set ``outcome`` when the authority answered."""

    authority_id: str
    binding: str
    outcome: AdapterOutcome | None = None


@contextmanager
def authority_call(authority_id: str, binding: str) -> Iterator[AuthorityCall]:
    """Time the block as one call of the authority; a block that raises counts as an error, unless
    what failed was the broker's own database (an in-process register reads it in the exchange's
    transaction): that says nothing about the authority, and would page its operators for an
    outage of the broker's storage (the 503s and /readyz say that one)."""
    call = AuthorityCall(authority_id, binding)
    started = time.perf_counter()
    try:
        yield call
    except SQLAlchemyError:
        raise
    except BaseException:
        authority_called(call.authority_id, call.binding, None, time.perf_counter() - started)
        raise
    authority_called(call.authority_id, call.binding, call.outcome, time.perf_counter() - started)


# --- gauges computed at scrape time --------------------------------------------------------


class DomainGauges(Collector):
    """The gauges of the pull queue, the callback outbox, the log and the circuit breakers.

    Read when Prometheus scrapes, never cached: one read transaction, each query answered by an
    index (the tasks' (authority, state) index, the outbox's state index, the log queue's partial
    index, the checkpoints' primary key). The breakers are this process's own (each process keeps
    its breakers, ``adapters.http_push``): every push authority of the registry is reported,
    ``closed`` until this process has called it.
    """

    def __init__(
        self, database: Database, authorities: AuthorityLookup, breakers: Breakers, now: Callable[[], datetime]
    ) -> None:
        self._database = database
        self._authorities = authorities
        self._breakers = breakers
        self._now = now
        # A registry of its own: several containers (tests) may exist in one process, each with
        # its database, so this is not registered process-wide; /metrics appends its exposition.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def describe(self) -> Iterable[Metric]:
        # Nothing to check at registration (collect would query the database).
        return []

    def collect(self) -> Iterable[Metric]:
        authorities = self._authorities()
        yield self._breaker_states(authorities)
        pulled = sorted(a.id for a in authorities.values() if a.binding == "pull")
        try:
            yield from self._database_gauges(pulled)
        except Exception as error:  # the scrape still answers: the breakers and that the database is not
            log.warning("metrics_database_unavailable", error_type=type(error).__name__)
            yield _gauge(DATABASE_UP, "1 when the database gauges were read at this scrape", 0)
        else:
            yield _gauge(DATABASE_UP, "1 when the database gauges were read at this scrape", 1)

    def _breaker_states(self, authorities: Mapping[str, AuthoritySpec]) -> Metric:
        family = GaugeMetricFamily(
            BREAKER_STATE,
            "This process's circuit breaker of a push authority: 1 for its current state, else 0",
            labels=["authority", "state"],
        )
        states = self._breakers.states()
        for authority in sorted(a.id for a in authorities.values() if a.binding == "http_push"):
            current = states.get(authority, "closed")
            for state in BREAKER_STATES:
                family.add_metric([_registry_id(authority), state], 1 if state == current else 0)
        return family

    def _database_gauges(self, pulled: list[str]) -> list[Metric]:
        with self._database.read() as session:
            now = as_utc(self._now())
            tasks = task_repository.open_tasks(session, pulled)
            outbox_depth, outbox_oldest = callback_repository.pending_summary(session)
            log_depth = log_repository.queued_count(session)
            log_oldest = log_repository.oldest_queued_at(session)
            tree_size = log_repository.tree_size(session)
            checkpoint_at = log_repository.latest_checkpoint_at(session)
        # Built only after the reads succeeded: a scrape reports all of them or none.
        depth = GaugeMetricFamily(
            PULL_QUEUE_DEPTH, "Open tasks (pending or leased) of a pull authority", labels=["authority"]
        )
        oldest = GaugeMetricFamily(
            PULL_QUEUE_OLDEST, "Age of a pull authority's oldest open task (0 when none)", labels=["authority"]
        )
        for authority in pulled:
            count, first = tasks.get(authority, (0, None))
            depth.add_metric([_registry_id(authority)], count)
            oldest.add_metric([_registry_id(authority)], _age(now, first))
        metrics: list[Metric] = [
            depth,
            oldest,
            _gauge(OUTBOX_DEPTH, "Callbacks waiting to be delivered", outbox_depth),
            _gauge(OUTBOX_OLDEST, "Age of the oldest callback waiting (0 when none)", _age(now, outbox_oldest)),
            _gauge(LOG_QUEUE_DEPTH, "Log entries waiting for the integrator", log_depth),
            _gauge(LOG_QUEUE_OLDEST, "Age of the oldest log entry waiting (0 when none)", _age(now, log_oldest)),
            _gauge(LOG_TREE_SIZE, "Entries in the Merkle tree (the latest signed checkpoint's size)", tree_size),
        ]
        if checkpoint_at is not None:  # a log without a checkpoint has no age to report
            metrics.append(_gauge(CHECKPOINT_AGE, "Age of the newest signed checkpoint", _age(now, checkpoint_at)))
        return metrics


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _age(now: datetime, then: datetime | None) -> float:
    return 0.0 if then is None else max((now - as_utc(then)).total_seconds(), 0.0)
