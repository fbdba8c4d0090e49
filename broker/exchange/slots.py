"""How many exchanges a process works on at once, handed out in the order the requests came."""

from __future__ import annotations

import threading
from collections import deque


class Slots:
    """``count`` slots (a context manager), first come, first served.

    Exchange work is CPU-bound Python under one GIL: beyond a few at once, threads only convoy
    (``BROKER_EXCHANGE_CONCURRENCY``). A semaphore lets a thread that has just arrived take a freed
    slot before those already waiting, which first have to wake up and get the GIL: under load some
    requests lost that race again and again, and the p99 at 16 connections came out about twice
    the median (bench.exchange). Here a freed slot goes straight to the thread that waited longest.
    """

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("an exchange needs at least one slot")
        self._lock = threading.Lock()
        self._free = count
        # One held lock per waiting thread, in arrival order; releasing it hands over a slot.
        self._waiting: deque[threading.Lock] = deque()

    def __enter__(self) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()

    def __exit__(self, *_: object) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._free += 1
