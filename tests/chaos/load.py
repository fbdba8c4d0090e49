"""Load on a real broker process, and what the database must hold afterwards.

:class:`Load` runs client threads that each send synchronous exchanges (Erika's Meldebescheinigung,
answered at once by the demo register) with an Idempotency-Key of their own, and records every
outcome: an answer (status, body, headers) or none (connection refused or cut, time-out).

The checks read the database directly: every acknowledged exchange (an answer 2xx) is a row, in
its terminal state, with its delivery entry in the log under the leaf hash of the receipt the
requester was given; the log's indices are dense; no Idempotency-Key made two exchanges; and
``broker audit verify`` finds the log intact.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select

from broker.db.models import Checkpoint, Exchange, LogEntry
from broker.db.session import make_engine
from tests.specimen import request_body

# A client gives up on an answer after this long: any request that takes longer is a hang.
CLIENT_TIMEOUT = 30.0
# What every client sends (each time under a new Idempotency-Key).
BODY = request_body()


@dataclass(frozen=True)
class Outcome:
    key: str
    started: float  # time.monotonic() when the request was sent
    seconds: float
    status: int | None = None  # None: no answer at all
    body: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None  # the transport error of a request without an answer

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Load:
    """``threads`` clients sending exchanges to ``base_url`` until :meth:`stop`; use as a context."""

    def __init__(self, base_url: str, token: str, threads: int = 8) -> None:
        self.base_url = base_url
        self.token = token
        self.outcomes: list[Outcome] = []
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(threads)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT + 10)
        assert not any(thread.is_alive() for thread in self._threads), "a client thread hangs"

    def wait(self, seconds: float, what: str, *, since: float = 0.0, acknowledged: int = 1) -> None:
        """Wait until ``acknowledged`` answers 2xx to requests sent after ``since``; fails after ``seconds``."""
        deadline = time.monotonic() + seconds
        with self._changed:
            while sum(1 for o in self.outcomes if o.acknowledged and o.started >= since) < acknowledged:
                left = deadline - time.monotonic()
                assert left > 0, f"{what}: fewer than {acknowledged} exchanges acknowledged within {seconds} s"
                self._changed.wait(left)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def _client(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=CLIENT_TIMEOUT) as client:
            while not self._stop.is_set():
                outcome = send(client, uuid.uuid4().hex)
                with self._changed:
                    self.outcomes.append(outcome)
                    self._changed.notify_all()
                if outcome.status is None or outcome.status >= 500:
                    time.sleep(0.05)  # no answer or a 503: the broker is down or busy, do not spin


def send(client: httpx.Client, key: str) -> Outcome:
    started = time.monotonic()
    try:
        answer = client.post("/v1/evidence-requests", json=BODY, headers={"Idempotency-Key": key})
    except httpx.TransportError as error:
        return Outcome(key, started, time.monotonic() - started, error=type(error).__name__)
    try:
        document = answer.json()
    except ValueError:
        document = None
    return Outcome(key, started, time.monotonic() - started, answer.status_code, document, dict(answer.headers))


def acknowledged(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    """Idempotency-Key → the exchange the broker acknowledged under it."""
    found: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        if outcome.acknowledged:
            assert outcome.body is not None
            found[outcome.key] = outcome.body
    return found


def describe(outcomes: list[Outcome]) -> str:
    """A short summary for assertion messages: how many of each status or transport error."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        label = str(outcome.status) if outcome.status is not None else outcome.error or "no answer"
        if outcome.body and "reason" in outcome.body:
            label += f" {outcome.body['reason']}"
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{label}: {count}" for label, count in sorted(counts.items()))


def assert_storage_answer(outcome: Outcome, reason: str) -> None:
    """A 503 storage problem as the README promises: problem+json, its reason, Retry-After."""
    assert outcome.status == 503 and outcome.body is not None, outcome
    assert outcome.headers.get("content-type") == "application/problem+json", outcome
    assert outcome.headers.get("retry-after", "").isdigit(), outcome
    assert outcome.headers.get("x-request-id"), outcome
    assert outcome.body["reason"] == reason, outcome


# --- what the database holds ---------------------------------------------------------------------


@dataclass(frozen=True)
class LogState:
    entries: int
    queued: int
    indices: list[int]
    tree_size: int  # of the latest checkpoint; 0 without one


def log_state(database_url: str) -> LogState:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            indices = [
                int(index)
                for index in connection.execute(
                    select(LogEntry.log_index).where(LogEntry.log_index.is_not(None)).order_by(LogEntry.log_index)
                ).scalars()
                if index is not None
            ]
            queued = connection.execute(
                select(func.count()).select_from(LogEntry).where(LogEntry.log_index.is_(None))
            ).scalar_one()
            tree_size = connection.execute(select(func.max(Checkpoint.tree_size))).scalar_one()
    finally:
        engine.dispose()
    return LogState(len(indices) + int(queued), int(queued), indices, int(tree_size or 0))


def wait_integrated(database_url: str, seconds: float = 60) -> LogState:
    """Wait until the serving broker's integrator has given every queued entry its index."""
    deadline = time.monotonic() + seconds
    while True:
        state = log_state(database_url)
        if state.queued == 0 and state.tree_size == state.entries:
            return state
        assert time.monotonic() < deadline, f"the log was not integrated within {seconds} s: {state}"
        time.sleep(0.3)


def assert_dense(state: LogState) -> None:
    """Indices 0..n-1 without a gap or a repeat, nothing queued, the latest checkpoint signs all n."""
    assert state.queued == 0, state
    assert state.indices == list(range(state.entries)), "the log's indices have gaps"
    assert state.tree_size == state.entries, state


def missing_from_log(database_url: str, answers: Mapping[str, dict[str, Any]]) -> list[str]:
    """The acknowledged exchanges that the database does not hold as answered: no row, another
    key or state, or no log entry under the receipt's leaf hash. Empty when nothing was lost."""
    engine = make_engine(database_url)
    missing = []
    try:
        with engine.connect() as connection:
            for key, answer in answers.items():
                row = connection.execute(
                    select(Exchange.idempotency_key, Exchange.state, Exchange.delivery_log_seq).where(
                        Exchange.id == answer["id"]
                    )
                ).one_or_none()
                if row is None or row.idempotency_key != key or row.state != answer["state"]:
                    missing.append(f"{answer['id']}: row {row}")
                    continue
                events = connection.execute(
                    select(LogEntry.event, LogEntry.leaf_hash, LogEntry.seq).where(LogEntry.exchange_id == answer["id"])
                ).all()
                delivery = [e for e in events if e.seq == row.delivery_log_seq]
                receipt = answer.get("receipt") or {}
                if not delivery or base64.b64encode(bytes(delivery[0].leaf_hash)).decode() != receipt.get("leaf_hash"):
                    missing.append(f"{answer['id']}: log {[e.event for e in events]}")
    finally:
        engine.dispose()
    return missing


def exchanges_per_key(database_url: str) -> dict[str, int]:
    """Idempotency-Key → how many exchanges it made (each key must have made at most one)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Exchange.idempotency_key, func.count())
                .where(Exchange.idempotency_key.is_not(None))
                .group_by(Exchange.idempotency_key)
            ).all()
    finally:
        engine.dispose()
    return {str(key): int(count) for key, count in rows}


def states(database_url: str) -> dict[str, int]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(Exchange.state, func.count()).group_by(Exchange.state)).all()
    finally:
        engine.dispose()
    return {str(state): int(count) for state, count in rows}


def broker_cli(env: Mapping[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_audit_verifies(env: Mapping[str, str]) -> str:
    """``broker audit verify`` with the broker's settings: exit 0 and the log intact."""
    done = broker_cli(env, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "log intact" in done.stdout, done.stdout
    return done.stdout


def resend(base_url: str, token: str, keys: Iterable[str]) -> dict[str, Outcome]:
    """Send the request again under each key, one after the other."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=CLIENT_TIMEOUT) as client:
        return {key: send(client, key) for key in keys}


def changed(answers: Mapping[str, dict[str, Any]], again: Mapping[str, Outcome]) -> list[str]:
    """The keys whose second answer is not the acknowledged one (exchange, state, evidence)."""
    differing = []
    for key, answer in answers.items():
        body = again[key].body or {}
        if not (
            again[key].status == 200
            and body.get("id") == answer["id"]
            and body.get("state") == answer["state"]
            and body.get("evidence") == answer.get("evidence")
        ):
            differing.append(f"{key}: {again[key].status} {body.get('id')} (acknowledged {answer['id']})")
    return differing
