"""The read-ahead that overlaps fetching the log with hashing it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from broker.audit.auditor import _prefetched


def numbers(count: int) -> Iterator[int]:
    yield from range(count)


def test_prefetched_yields_everything_in_order() -> None:
    assert list(_prefetched(numbers(1000))) == list(range(1000))


def test_a_consumer_that_stops_early_does_not_hang() -> None:
    before = threading.active_count()
    for value in _prefetched(numbers(10_000)):
        if value == 3:
            break
    assert threading.active_count() == before


def test_errors_while_fetching_reach_the_consumer() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise OSError("connection lost")

    with pytest.raises(OSError, match="connection lost"):
        list(_prefetched(failing()))
