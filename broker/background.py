"""Periodic work of a serving process, each job in a daemon thread of its own.

The composition root (``broker.bootstrap``) starts and stops every job from one place: the
sweeps (exchange expiry, evidence purge), the callback sender and the log integrator. A job that
raises is logged and tried again next round: a database hiccup must not end the process's
housekeeping. ``wake()`` runs a job at once (a callback queued now need not wait a round).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from broker.logging import get_logger

log = get_logger(__name__)


class Periodic:
    def __init__(self, name: str, interval_seconds: float, work: Callable[[], object]) -> None:
        self.name = name
        self._interval = interval_seconds
        self._work = work
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; an interval of 0 or less turns the job off."""
        if self._thread is not None or self._interval <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._work()
            except Exception as error:
                # Messages of the database driver name tables and ids, never personal data.
                log.warning(
                    "background_job_failed", job=self.name, error_type=type(error).__name__, error=str(error)[:200]
                )
            self._wake.wait(self._interval)
            self._wake.clear()
