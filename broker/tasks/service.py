"""The pull queue and the end of remote exchanges. Never commits: the caller's unit of work does.

A task is the query for one exchange, waiting for its authority: ``pending`` → ``leased`` (an
adapter took it; the lease runs out after ``task_lease_seconds`` and the task can be taken
again) → ``done`` (the authority's answer was accepted) or ``failed`` (refused answer, or the
exchange ended without one). The payload holds the subject, so it is erased when a task ends.

Whatever process receives an authority's answer — the pull result, or a push call's answer in
the worker that made it — ends the exchange with :func:`finish`, which locks the exchange row so
that an answer, a second answer and the expiry sweep cannot both end it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from adapters.protocol import AdapterOutcome, EvidenceQuery, OutcomeKind, Subject
from adapters.signing import SignatureError, SignedMessage, load_public_key, verify
from adapters.wire import JSON, XML, GarbageAnswer, decode_answer, media_type
from broker.clients import repository as clients
from broker.clients.service import Principal
from broker.clock import as_utc
from broker.db.models import AdapterTask, Exchange
from broker.exchange import lifecycle
from broker.exchange import repository as exchanges
from broker.exchange.dependencies import ExchangeDependencies
from broker.exchange.lifecycle import State
from broker.exchange.service import conclude
from broker.logging import get_logger
from broker.ops import metrics
from broker.problems import Problem
from broker.tasks import repository
from broker.xml.hardened import check_well_formed

log = get_logger(__name__)


@dataclass(frozen=True)
class LeasedTask:
    id: str
    lease_until: datetime
    attempt: int
    query: dict[str, Any]


@dataclass(frozen=True)
class Finished:
    exchange: Exchange
    problem: Problem | None


def enqueue(session: Session, query: EvidenceQuery, now: datetime) -> AdapterTask:
    # No relationship ties this row to its exchange, so the flush would not know the exchange row must come first.
    session.flush()
    return repository.add(
        session,
        AdapterTask(
            id=str(uuid.uuid4()),
            exchange_id=query.request_id,
            authority_id=query.authority_id,
            state="pending",
            payload=query.to_json(),
            attempts=0,
            created_at=now,
        ),
    )


def lease(session: Session, authority_id: str, now: datetime, lease_for: timedelta, limit: int) -> list[LeasedTask]:
    leased = []
    for task in repository.claimable(session, authority_id, now, limit):
        if task.payload is None:  # cannot happen for an open task; never hand out an empty one
            continue
        taken = LeasedTask(task.id, now + lease_for, task.attempts + 1, dict(task.payload))
        repository.mark_leased(session, task.id, taken.lease_until)
        leased.append(taken)
    return leased


def finish(
    session: Session,
    deps: ExchangeDependencies,
    exchange_id: str,
    outcome: AdapterOutcome,
    subject: Subject | None,
) -> Finished | None:
    """End a routed exchange with the authority's outcome; None if it has ended already.

    ``subject`` is the one the query asked about (evidence about anyone else is not delivered;
    None if it is no longer known). The exchange row is locked first, so that an answer, a second
    answer and the expiry sweep cannot both end it.
    """
    exchange = exchanges.lock(session, exchange_id)
    if exchange is None or exchange.state != State.ROUTED or exchange.evidence_type_id is None:
        return None
    evidence_type = deps.registry.get().evidence_type(exchange.evidence_type_id)
    requester = clients.name_of(session, exchange.requester_id)
    problem = conclude(session, deps, exchange, requester, evidence_type, outcome, subject)
    ended = "done" if problem is None or problem.status < 500 else "failed"
    repository.close_open(session, exchange_id, ended, deps.clock.now())
    return Finished(exchange, problem)


def expire_overdue(
    session: Session, deps: ExchangeDependencies, max_age: timedelta, limit: int = 100
) -> list[Finished]:
    """End every exchange that has waited longer than ``max_age`` for its authority: ``expired``."""
    now = deps.clock.now()
    ended = []
    for exchange in exchanges.overdue(session, now - max_age, limit):
        problem = Problem(
            504,
            "exchange.expired",
            f"The authority did not answer within {max_age.total_seconds():g} s; the exchange expired.",
        )
        ended.append(_end(session, exchange, State.EXPIRED, problem, now))
    return ended


def fail(session: Session, deps: ExchangeDependencies, exchange_id: str, problem: Problem) -> Finished | None:
    """End a routed exchange ``failed`` with the broker's own ``problem``; None if it has ended already."""
    exchange = exchanges.lock(session, exchange_id)
    if exchange is None or exchange.state != State.ROUTED:
        return None
    return _end(session, exchange, State.FAILED, problem, deps.clock.now())


def _end(session: Session, exchange: Exchange, state: State, problem: Problem, now: datetime) -> Finished:
    requester = clients.name_of(session, exchange.requester_id)
    lifecycle.transition(session, exchange, state, at=now, requester=requester, problem=problem)
    repository.close_open(session, exchange.id, "failed", now)
    return Finished(exchange, problem)


# --- answers posted by pull adapters ---------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """What became of an adapter's answer. ``refusal``: answer the adapter with this problem, but
    only after committing — the exchange's end must be kept either way."""

    task_id: str
    exchange_id: str
    exchange_state: str
    replayed: bool
    finished: Finished | None = None
    refusal: Problem | None = None


def _task_for(session: Session, principal: Principal, task_id: str) -> AdapterTask:
    task = repository.lock(session, task_id)
    if task is None or principal.authority_id is None or task.authority_id != principal.authority_id:
        raise Problem(404, "task.not_found", f"No task {task_id!r} for this adapter.")
    return task


def answer(
    session: Session,
    deps: ExchangeDependencies,
    principal: Principal,
    task_id: str,
    path: str,
    content_type: str | None,
    body: bytes,
    headers: Mapping[str, str],
    expect: str,
) -> Accepted:
    """Take an adapter's result (``expect`` XML) or failure (``expect`` JSON) for a task.

    The same body again is answered as the first time; a different body for a finished task is
    a conflict. A result that fails the signature, the protocol or the schema ends the exchange
    ``failed`` with that reason and is refused to the adapter with the same reason.
    """
    task = _task_for(session, principal, task_id)
    digest = hashlib.sha256(expect.encode() + b"\n" + body).hexdigest()
    if task.state in ("done", "failed"):
        if task.result_digest is None:
            raise Problem(410, "task.closed", "The task ended without an answer (its exchange expired).")
        if task.result_digest != digest:
            raise Problem(409, "task.answer_conflict", "The task was answered before with a different body.")
        exchange = exchanges.lock(session, task.exchange_id)
        state = exchange.state if exchange is not None else "unknown"
        refusal = None
        if exchange is not None and exchange.reason in _REFUSED:
            refusal = _refusal(task.id, state, exchange.reason or "", exchange.reason_detail or "")
        return Accepted(task.id, task.exchange_id, state, replayed=True, refusal=refusal)
    if media_type(content_type) not in ((XML, "text/xml") if expect == XML else (JSON,)):
        raise Problem(415, "task.media_type", f"Send the {'result' if expect == XML else 'failure'} as {expect}.")
    outcome = _verified_outcome(deps, task, path, content_type, body, headers)
    if expect == JSON and outcome.kind is OutcomeKind.EVIDENCE:
        outcome = AdapterOutcome.failure("authority.garbage", "a failure must not carry evidence")
    task.result_digest = digest
    finished = finish(session, deps, task.exchange_id, outcome, _subject_of(task))
    if finished is None:  # the exchange ended meanwhile (expired): there is nobody to deliver to
        repository.close(session, task.id, "failed", deps.clock.now())
        gone = Problem(410, "task.closed", "The exchange of this task has ended; the answer was not used.")
        return Accepted(task.id, task.exchange_id, "ended", False, None, gone)
    log.info("task_answered", task=task.id, exchange=task.exchange_id, state=finished.exchange.state)
    # A pull authority's call lasts from queueing the task to its answer; counted if this commits.
    authority, waited = task.authority_id, (deps.clock.now() - as_utc(task.created_at)).total_seconds()
    metrics.after_commit(session, lambda: metrics.authority_called(authority, "pull", outcome, waited))
    refusal = None
    if finished.problem is not None and finished.problem.reason in _REFUSED:
        refusal = _refusal(task.id, finished.exchange.state, finished.problem.reason, finished.problem.detail)
    return Accepted(task.id, task.exchange_id, finished.exchange.state, False, finished, refusal)


def _subject_of(task: AdapterTask) -> Subject | None:
    """Whom the task asked about, read from its payload before the payload is erased."""
    try:
        return EvidenceQuery.from_json(dict(task.payload or {})).subject
    except (KeyError, TypeError, ValueError, AttributeError):  # a payload that is no query asked about nobody
        return None


def _verified_outcome(
    deps: ExchangeDependencies,
    task: AdapterTask,
    path: str,
    content_type: str | None,
    body: bytes,
    headers: Mapping[str, str],
) -> AdapterOutcome:
    authority = deps.registry.get().authorities.get(task.authority_id)
    if authority is None or not authority.public_key_pem:
        return AdapterOutcome.failure("authority.no_key", f"authority {task.authority_id} has no registered key")
    try:
        verify(
            SignedMessage(content_type or "", body, method="POST", path=path),
            headers,
            load_public_key(authority.public_key_pem),
        )
    except SignatureError as error:
        reason = "authority.unsigned" if error.reason == "signature.missing" else "authority.bad_signature"
        return AdapterOutcome.failure(reason, f"{error.reason}: {error.detail}")
    try:
        return decode_answer(content_type, body, check_well_formed)
    except GarbageAnswer as error:
        return AdapterOutcome.failure("authority.garbage", str(error))


_REFUSAL_STATUS = {"authority.unsigned": 401, "authority.bad_signature": 401, "authority.garbage": 400}
# Answers the broker did not accept (the exchange failed because of them): the adapter is told so.
_REFUSED = {
    *_REFUSAL_STATUS,
    "evidence.invalid",
    "evidence.subject_mismatch",
    "evidence.subject_unverifiable",
    "authority.no_key",
}


def _refusal(task_id: str, exchange_state: str, reason: str, detail: str) -> Problem:
    return Problem(
        _REFUSAL_STATUS.get(reason, 422),
        reason,
        f"The answer was refused and the exchange ended {exchange_state}: {detail}",
        task=task_id,
        exchange_state=exchange_state,
    )
