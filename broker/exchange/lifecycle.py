"""The one place an exchange changes state.

An exchange moves along this table, and only along it::

    received ─→ authorised ─→ routed ─→ delivered
        │            │           ├────→ awaiting_preview ─→ delivered | rejected | expired
        └────────────┴─→ rejected├────→ failed
                                 └────→ expired

``delivered``, ``rejected``, ``failed`` and ``expired`` are terminal. :func:`transition` is the
only code that assigns ``Exchange.state``: it refuses a move the table does not allow (a bug, or
a race that lost: callers lock the exchange row or settle a conditional update first), records
the step in the provenance log in the caller's transaction, and queues the requester's callback
when the exchange reaches a terminal state — exactly once, because no state follows a terminal
one. Whatever else a step changes (the evidence, its expiry, the authority) the caller sets
before calling.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from broker.audit.repository import QueuedEntry
from broker.audit.service import EntryFacts, record
from broker.callbacks import service as callbacks
from broker.db.models import Exchange
from broker.logging import get_logger
from broker.ops import metrics
from broker.problems import Problem

log = get_logger(__name__)


class State(StrEnum):
    RECEIVED = "received"
    AUTHORISED = "authorised"
    ROUTED = "routed"
    AWAITING_PREVIEW = "awaiting_preview"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    FAILED = "failed"
    EXPIRED = "expired"


TERMINAL: frozenset[State] = frozenset({State.DELIVERED, State.REJECTED, State.FAILED, State.EXPIRED})

TRANSITIONS: dict[State, frozenset[State]] = {
    State.RECEIVED: frozenset({State.AUTHORISED, State.REJECTED}),
    State.AUTHORISED: frozenset({State.ROUTED, State.REJECTED}),
    State.ROUTED: frozenset({State.DELIVERED, State.AWAITING_PREVIEW, State.FAILED, State.EXPIRED}),
    State.AWAITING_PREVIEW: frozenset({State.DELIVERED, State.REJECTED, State.EXPIRED}),
    **{state: frozenset() for state in TERMINAL},
}

# The log event that records reaching a state. ``authorised`` has none: the ``routed`` entry
# that follows in the same transaction states everything an auditor could read of it.
EVENTS: dict[State, str | None] = {
    State.RECEIVED: "received",
    State.AUTHORISED: None,
    State.ROUTED: "routed",
    State.AWAITING_PREVIEW: "preview_requested",
    State.DELIVERED: "delivered",
    State.REJECTED: "refused",
    State.FAILED: "failed",
    State.EXPIRED: "expired",
}

# States whose entries name the outcome reached (the others are steps along the way).
_OUTCOME_STATES = frozenset({State.AWAITING_PREVIEW, *TERMINAL})


class TransitionRefused(RuntimeError):
    """A move the lifecycle does not allow: a programming error, never a caller's mistake."""


def state_of(exchange: Exchange) -> State:
    return State(exchange.state)


def is_terminal(state: str | None) -> bool:
    return state in TERMINAL


def receive(session: Session, exchange: Exchange, *, at: datetime, requester: str) -> QueuedEntry:
    """Start a new exchange's life: it enters ``received`` and the log records the request."""
    if exchange.state is not None:
        raise TransitionRefused(f"exchange {exchange.id} has a life already ({exchange.state})")
    exchange.state = State.RECEIVED
    exchange.created_at = exchange.updated_at = at
    session.add(exchange)
    return step(session, exchange, "received", at=at, requester=requester)


def transition(
    session: Session,
    exchange: Exchange,
    to: State,
    *,
    at: datetime,
    requester: str,
    problem: Problem | None = None,
) -> QueuedEntry | None:
    """Move ``exchange`` to ``to``; returns the log entry that records it (None for ``authorised``).

    A ``problem`` states why a ``rejected``, ``failed`` or ``expired`` exchange ended; it is kept
    on the exchange (status, reason code, detail) and its reason code goes to the log.
    """
    current = state_of(exchange)
    if to not in TRANSITIONS[current]:
        raise TransitionRefused(f"exchange {exchange.id}: {current} → {to} is not a move of the lifecycle")
    if (problem is None) != (to not in (State.REJECTED, State.FAILED, State.EXPIRED)):
        raise TransitionRefused(f"exchange {exchange.id}: {to} needs a problem exactly when it is a failure")
    exchange.state = to
    exchange.updated_at = at
    if problem is not None:
        exchange.status_code = problem.status
        exchange.reason = problem.reason
        exchange.reason_detail = problem.detail
    elif to is State.DELIVERED:
        exchange.status_code = 200
    elif to is State.AWAITING_PREVIEW:
        exchange.status_code = 202
    event = EVENTS[to]
    entry = None
    if event is not None:
        outcome = to.value if to in _OUTCOME_STATES else None
        reason = problem.reason if problem is not None else None
        entry = step(session, exchange, event, at=at, requester=requester, outcome=outcome, reason=reason)
    if to in TERMINAL:
        callbacks.enqueue(session, exchange, at)
        # Counted once the transaction commits; the one place an exchange's end is measured.
        metrics.exchange_ended(session, exchange, at)
        log.info("exchange_ended", exchange=exchange.id, state=to.value, reason=exchange.reason)
    return entry


def step(
    session: Session,
    exchange: Exchange,
    event: str,
    *,
    at: datetime,
    requester: str,
    outcome: str | None = None,
    reason: str | None = None,
) -> QueuedEntry:
    """Record a step of the exchange in the provenance log: a transition's, or one that changes no
    state (the citizen's preview decision)."""
    return record(
        session,
        EntryFacts(
            event=event,
            time=at,
            exchange=exchange.id,
            requester=requester,
            authority=exchange.authority_id,
            evidence_type=exchange.evidence_type_id,
            purpose=exchange.purpose,
            legal_basis=exchange.legal_basis,
            consent=exchange.consent_id,
            outcome=outcome,
            reason=reason,
            request_digest=exchange.request_digest,
            evidence_digest=exchange.evidence_digest,
            subject=exchange.subject_pseudonym,
        ),
    )


def problem_of(exchange: Exchange) -> Problem | None:
    """Why an exchange was refused or failed, as it was recorded; None while it has not."""
    if exchange.reason is None or exchange.status_code is None:
        return None
    return Problem(exchange.status_code, exchange.reason, exchange.reason_detail or "")
