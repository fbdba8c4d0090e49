"""Run by test_integrator: integrates the queue but stops, mid-transaction, just before the
checkpoint is written — indices assigned and nodes stored but nothing committed — touches
READY_FILE and waits there to be killed with SIGKILL.

Usage: python crash_worker.py DATABASE_URL KEYS_DIR ORIGIN READY_FILE
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.audit import repository
from broker.audit.integrator import integrate
from broker.db.session import make_engine, make_session_factory, unit_of_work
from broker.keys.store import KeyStore


def main(url: str, keys_dir: str, origin: str, ready_file: str) -> None:
    def stall(*_args: Any, **_kwargs: Any) -> None:
        Path(ready_file).touch()
        time.sleep(120)

    repository.add_checkpoint = stall
    sessions = make_session_factory(make_engine(url))
    with unit_of_work(sessions) as session:
        integrate(session, KeyStore(keys_dir, origin=origin), origin, datetime.now(UTC))


if __name__ == "__main__":
    main(*sys.argv[1:5])
