"""The integrator: turns queued log entries into leaves of the Merkle tree and signs a checkpoint.

Entries are queued by many processes, each in the transaction of the step it records, so their
``seq`` values have gaps (aborted transactions) and may commit out of order. One integrator at a
time takes the oldest queued entries, gives them the next dense log indices, stores the perfect
subtrees they complete and signs a checkpoint for the new size — all in the caller's single
transaction, so a crash leaves either the old tree and checkpoint or the new ones, never a mix.
A checkpoint is signed for every size the tree reaches, which is why the latest checkpoint's
size *is* the tree size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from broker.audit import repository
from broker.audit.merkle import CompactTree
from broker.audit.note import Checkpoint, sign_note
from broker.background import Periodic
from broker.db.session import unit_of_work
from broker.keys.store import KeyStore
from broker.logging import get_logger

# Bounds one transaction: with SQLite it holds the only write lock, and with either database a
# shorter transaction means a shorter wait for whoever queues entries meanwhile.
DEFAULT_BATCH_SIZE = 10_000

log = get_logger(__name__)


@dataclass(frozen=True)
class Integration:
    integrated: int
    tree_size: int
    # The signed note of the new checkpoint, None when nothing was integrated.
    checkpoint: str | None
    # False when another process held the integrator lock and this run did nothing.
    ran: bool = True


def integrate(
    session: Session,
    keys: KeyStore,
    origin: str,
    now: datetime,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    wait: bool = True,
) -> Integration:
    """Integrate up to ``batch_size`` queued entries in the caller's transaction (never commits)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if not repository.lock_integrator(session, wait=wait):
        return Integration(0, 0, None, ran=False)
    # Read only after holding the lock: the previous integrator's commit is then visible.
    size = repository.tree_size(session)
    batch = repository.queued(session, batch_size)
    if not batch:
        return Integration(0, size, None)
    tree = CompactTree.from_nodes(size, repository.nodes(session, CompactTree.frontier_nodes(size)))
    completed = tree.extend(leaf for _seq, leaf in batch)
    repository.assign_indices(session, [(seq, size + offset) for offset, (seq, _leaf) in enumerate(batch)])
    repository.add_nodes(session, completed)
    root = tree.root()
    _public, private_key = keys.checkpoint_key()
    note = sign_note(Checkpoint(origin, tree.size, root).body(), origin, private_key)
    repository.add_checkpoint(session, tree.size, root, note, now)
    return Integration(len(batch), tree.size, note)


def integrate_all(
    sessions: sessionmaker[Session],
    keys: KeyStore,
    origin: str,
    clock: Callable[[], datetime],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    wait: bool = True,
) -> Integration:
    """Drain the queue, one committed transaction per batch; report the total."""
    total, tree_size, note = 0, 0, None
    while True:
        with unit_of_work(sessions) as session:
            run = integrate(session, keys, origin, clock(), batch_size=batch_size, wait=wait)
        if not run.ran:
            return Integration(total, tree_size, note, ran=total > 0)
        total += run.integrated
        tree_size = run.tree_size
        note = run.checkpoint or note
        if run.integrated < batch_size:
            return Integration(total, tree_size, note)


class BackgroundIntegrator:
    """Runs the integrator every ``interval`` seconds in a daemon thread of a serving process.

    Every broker process runs one; they do not wait for each other (``wait=False``), so at any
    moment one of them integrates and the others skip that round.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        keys: KeyStore,
        origin: str,
        clock: Callable[[], datetime],
        interval: float,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._sessions = sessions
        self._keys = keys
        self._origin = origin
        self._clock = clock
        self._batch_size = batch_size
        self._interval = interval
        # Monotonic time of the last round that did its work (or found nothing to do); starts at
        # construction, so a process that never managed a round is not taken for a fresh one.
        self._last_progress = time.monotonic()
        # A failed round is rolled back whole; the next round retries the same queue.
        self._job = Periodic("log-integrator", interval, self.run_once)

    @property
    def enabled(self) -> bool:
        """Whether this process integrates in the background (an interval of 0 turns it off)."""
        return self._interval > 0

    @property
    def interval(self) -> float:
        return self._interval

    def seconds_since_progress(self) -> float:
        """Seconds since this process's integrator last completed a round that integrated or
        found the queue empty. Rounds skipped because another process held the lock, and failed
        rounds, are not progress: with the queue aging meanwhile, the log is stuck."""
        return time.monotonic() - self._last_progress

    def start(self) -> None:
        """Start the thread; an interval of 0 or less turns background integration off."""
        self._job.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._job.stop(timeout)

    def run_once(self) -> Integration:
        result = integrate_all(
            self._sessions, self._keys, self._origin, self._clock, batch_size=self._batch_size, wait=False
        )
        if result.ran:
            self._last_progress = time.monotonic()
        if result.integrated:
            log.debug("log_integrated", entries=result.integrated, tree_size=result.tree_size)
        return result
