"""A broker process in miniature, for test_concurrency: records entries one transaction at a time
(as exchange steps do) and runs the integrator every few entries, racing other such processes.

Usage: python append_worker.py DATABASE_URL KEYS_DIR ORIGIN WORKER COUNT START_AT
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from broker.audit.integrator import integrate_all
from broker.audit.service import EntryFacts, record
from broker.db.session import make_engine, make_session_factory, unit_of_work
from broker.keys.store import KeyStore

INTEGRATE_EVERY = 25


def main(url: str, keys_dir: str, origin: str, worker: str, count: int, start_at: float) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    keys = KeyStore(keys_dir, origin=origin)

    def now() -> datetime:
        return datetime.now(UTC)

    time.sleep(max(0.0, start_at - time.time()))  # all workers start together
    for number in range(count):
        with unit_of_work(sessions) as session:
            record(session, EntryFacts(event="delivered", time=now(), exchange=f"{worker}-{number:05d}"))
        if number % INTEGRATE_EVERY == INTEGRATE_EVERY - 1:
            integrate_all(sessions, keys, origin, now)
    integrate_all(sessions, keys, origin, now)
    engine.dispose()


if __name__ == "__main__":
    url, keys_dir, origin, worker, count, start_at = sys.argv[1:7]
    main(url, keys_dir, origin, worker, int(count), float(start_at))
