"""A semaphore that hands a freed place to the thread that waited longest (standard library only).

``threading.Semaphore`` lets a thread that has just arrived take a freed place before those
already waiting, which first have to wake up and get the GIL: under load some waiters lose that
race again and again, and the tail latency grows to many times the median. Used for the
exchanges a process works on at once (``BROKER_EXCHANGE_CONCURRENCY``) and for SQLite's writers
of a process (:class:`broker.db.session.WriterQueue`).
"""

from __future__ import annotations

import threading
from collections import deque


class FifoSemaphore:
    """``count`` places, first come, first served; also a context manager (waits without limit)."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("a semaphore needs at least one place")
        self._lock = threading.Lock()
        self._free = count
        # One held lock per waiting thread, in arrival order; releasing it hands over a place.
        self._waiting: deque[threading.Lock] = deque()

    def acquire(self, timeout: float | None = None) -> bool:
        """Take a place, waiting at most ``timeout`` seconds (None: without limit); False if none came."""
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        if turn.acquire(timeout=-1 if timeout is None else timeout):
            return True
        with self._lock:
            if turn in self._waiting:
                self._waiting.remove(turn)
                return False
        # Handed a place between the timeout and the lock above: it is ours.
        turn.acquire()
        return True

    def release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._free += 1

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()
