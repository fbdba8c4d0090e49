"""The tail latency of the embedded default: synchronous exchanges on SQLite, 16 clients.

    python -m bench.sqlite_tail [--seconds 10] [--concurrency 16] [--workers 1] [--no-baseline]

Starts the broker (``uvicorn``, no access log) on a throwaway seeded SQLite database and drives
it with the asyncio/httpx generator of ``bench.exchange`` (under 500 requests/s it measures the
broker, not itself): every client posts synchronous exchanges back to back. Reports requests/s,
p50/p95/p99/max and the non-2xx answers. The bar: p99 <= 250 ms at 16 clients.

Then the same run against a broker whose writers wait for SQLite's write lock in its busy
handler (sleep and retry) rather than in the process's FIFO queue (``broker.db.session.WriterQueue``),
on a fresh database: the baseline the change is measured against, in the same run.
``--no-baseline`` skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.exchange import ERIKA_REQUEST, broker_env, load, seeded_requester, serve
from tests.conftest import stop_process

P99_BAR_MS = 250.0


class BusyHandlerOnly:
    """The SQLite writers as they were: each takes the write lock with BEGIN IMMEDIATE and, when
    another holds it, waits in SQLite's busy handler (sleep and retry) instead of a FIFO queue."""

    def begin(self, connection: Any) -> None:
        from broker.db.session import READ_ONLY

        deferred = connection.get_execution_options().get(READ_ONLY)
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

    def end(self, connection: Any) -> None:
        pass


def create_app_without_writer_queue() -> Any:
    """The baseline (uvicorn's factory, so it runs in the server process): the broker with its
    SQLite writers queueing on the busy handler only."""
    from broker.db import session

    # make_engine builds its WriterQueue when it makes the engine, so this replaces it.
    session.WriterQueue = BusyHandlerOnly  # type: ignore[misc,assignment]
    from broker.app import create_app

    return create_app()


def prepare(directory: Path) -> tuple[dict[str, str], str]:
    """A migrated, seeded SQLite database with one requester; its environment and token."""
    database_url = f"sqlite:///{directory / 'broker.db'}"
    token = seeded_requester(database_url)
    return broker_env(database_url, str(directory / "keys")), token


def report(name: str, ok: int, failed: int, latencies: list[float], seconds: float) -> float:
    """Prints one run's figures; returns its p99 in milliseconds."""
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    p50, p95, p99 = (cuts[q - 1] * 1000 for q in (50, 95, 99))
    worst = max(latencies, default=0.0) * 1000
    print(
        f"{name:<18} {ok / seconds:7.1f} req/s  p50={p50:6.1f} ms  p95={p95:6.1f} ms  p99={p99:7.1f} ms  "
        f"max={worst:7.1f} ms  non-2xx={failed}"
    )
    return p99


def run(app: str, seconds: float, concurrency: int, workers: int) -> tuple[int, int, list[float]]:
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as directory:
        env, token = prepare(Path(directory))
        process, port = serve(app, workers, env)
        try:
            url = f"http://127.0.0.1:{port}/v1/evidence-requests"
            headers = {"Authorization": f"Bearer {token}"}
            # A short warm-up: the first requests load schemas and keys.
            asyncio.run(load(url, 1, 2, method="POST", json=ERIKA_REQUEST, headers=headers))
            return asyncio.run(load(url, seconds, concurrency, method="POST", json=ERIKA_REQUEST, headers=headers))
        finally:
            stop_process(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true", help="Skip the run without the writer queue.")
    args = parser.parse_args()

    print(
        f"{args.seconds:.0f} s each, concurrency {args.concurrency}, {args.workers} worker(s), SQLite (WAL), "
        "synchronous exchanges, load: httpx"
    )
    p99 = report(
        "writer queue",
        *run("broker.app:create_app", args.seconds, args.concurrency, args.workers),
        seconds=args.seconds,
    )
    if not args.no_baseline:
        app = "bench.sqlite_tail:create_app_without_writer_queue"
        report("busy handler (old)", *run(app, args.seconds, args.concurrency, args.workers), seconds=args.seconds)
    print(f"p99 {p99:.1f} ms (bar: <= {P99_BAR_MS:.0f} ms): {'met' if p99 <= P99_BAR_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
