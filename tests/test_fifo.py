"""FifoSemaphore: at most ``count`` at once, handed over in the order the threads asked."""

from __future__ import annotations

import threading
import time

import pytest

from broker.fifo import FifoSemaphore


def _wait_for_queue(slots: FifoSemaphore, length: int) -> None:
    """Until ``length`` threads wait for a slot (so each thread below asks after the one before)."""
    deadline = time.monotonic() + 5
    while len(slots._waiting) != length:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_a_freed_slot_goes_to_the_thread_that_waited_longest() -> None:
    slots = FifoSemaphore(1)
    order: list[int] = []

    def exchange(number: int) -> None:
        with slots:
            order.append(number)

    slots.__enter__()  # the slot is taken: everyone else queues
    threads = []
    for number in range(5):
        thread = threading.Thread(target=exchange, args=(number,))
        thread.start()
        threads.append(thread)
        _wait_for_queue(slots, number + 1)
    slots.__exit__(None, None, None)
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_up_to_count_work_at_once_and_a_latecomer_waits() -> None:
    slots = FifoSemaphore(2)
    inside = threading.Barrier(3)
    released = threading.Event()

    def exchange() -> None:
        with slots:
            inside.wait(5)
            released.wait(5)

    first, second = threading.Thread(target=exchange), threading.Thread(target=exchange)
    first.start()
    second.start()
    inside.wait(5)  # both are in at once
    entered = threading.Event()

    def latecomer() -> None:
        with slots:
            entered.set()

    third = threading.Thread(target=latecomer)
    third.start()
    _wait_for_queue(slots, 1)
    assert not entered.is_set()
    released.set()
    assert entered.wait(5)
    for thread in (first, second, third):
        thread.join(5)
    with slots, slots:  # both slots are free again
        pass


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError):
        FifoSemaphore(0)


def test_a_waiter_that_times_out_leaves_the_line_and_the_next_gets_the_place() -> None:
    places = FifoSemaphore(1)
    assert places.acquire()
    assert places.acquire(timeout=0.05) is False
    assert len(places._waiting) == 0  # it left the line
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(places.acquire(timeout=5)))
    waiter.start()
    _wait_for_queue(places, 1)
    places.release()
    waiter.join(5)
    assert got == [True]
    places.release()
    assert places.acquire(timeout=0)  # the place is free again
