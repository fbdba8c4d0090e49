"""Throughput of a synchronous exchange against a bare FastAPI "hello", same machine, same run.

    python -m bench.exchange [--seconds 15] [--concurrency 16] [--workers 1]

Both servers run as `uvicorn` processes with the same settings (workers, no access log); the
same load generator drives each for the same time: `wrk` where it is installed (Debian package
`wrk`), else an asyncio/httpx generator in this process. The httpx generator saturates near
500 requests/s on two cores, so with it the hello baseline measures the generator, not FastAPI,
and the ratio comes out far too kind; prefer wrk. The exchange is the full
synchronous path on PostgreSQL: bearer auth, policy, routing, in-process adapter, schema check,
XAdES seal, exchange row and log entries committed. The bar: exchange ≥ 12 % of hello (long-term
25 %), p99 ≤ 50 ms.
Uses ``BROKER_TEST_POSTGRES_URL`` (default postgresql+psycopg://postgres@127.0.0.1:5432/test) to
create a throwaway database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.conftest import create_postgres_database, on_a_free_port, stop_process, wait_until_serving

ERIKA_REQUEST = {
    "evidence_type": "urn:de:nachweis:meldebescheinigung",
    "jurisdiction": "13004",
    "subject": {"family_name": "Mustermann", "given_name": "Erika", "birth_date": "1964-08-12"},
    "purpose": "Wohngeldantrag",
    "legal_basis": "§ 23 WoGG",
    "explicit_request": True,
}


def serve(app: str, workers: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """``app`` under uvicorn on a free port; returns the process and its port, once that process
    itself listens there and answers (not another server that took the port first)."""

    def start(port: int) -> tuple[subprocess.Popen[bytes], int]:
        args = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
        args += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
        if app.endswith("create_app"):
            args.append("--factory")
        # uvicorn's own warnings and errors only (a port taken among them); the requests are not
        # logged. The server keeps writing to the file after this process has closed its copy.
        with tempfile.TemporaryFile() as said:
            process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=said)

            def logs() -> str:
                said.seek(0)
                return said.read().decode(errors="replace")

            wait_until_serving(process, port, "/openapi.json", logs, app)
        return process, port

    return on_a_free_port(start)


async def load(url: str, seconds: float, concurrency: int, **request: object) -> tuple[int, int, list[float]]:
    ok = failed = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal ok, failed
            while time.monotonic() < deadline:
                started = time.perf_counter()
                answer = await client.request(url=url, **request)  # type: ignore[arg-type]
                latencies.append(time.perf_counter() - started)
                if answer.status_code == 200:
                    ok += 1
                else:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, failed, latencies


def load_with_wrk(url: str, seconds: float, concurrency: int, token: str | None = None) -> float:
    """Requests/s of successful answers, as wrk measures them."""
    args = ["wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency"]
    if token is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(json.dumps(ERIKA_REQUEST))}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {token}"\n'
            )
        args += ["-s", script.name]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    total = re.search(r"(\d+) requests in", output)
    if errors and total:
        rate *= 1 - int(errors.group(1)) / int(total.group(1))
    # The percentiles of the latency distribution, not a "50%" inside the thread statistics above it.
    latency = re.search(r"Latency Distribution.*?50%\s+(\S+).*?99%\s+(\S+)", output, re.S)
    p50, p99 = latency.groups() if latency else ("?", "?")
    print(f"{'':<10} wrk: {rate:9.1f} ok req/s  p50={p50}  p99={p99}")
    return rate


def report(name: str, ok: int, failed: int, latencies: list[float], seconds: float) -> float:
    rate = ok / seconds
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(
        f"{name:<10} {rate:9.1f} req/s  ok={ok} failed={failed}  "
        f"p50={quantiles[49] * 1000:.1f} ms  p99={quantiles[98] * 1000:.1f} ms"
    )
    return rate


def seeded_requester(database_url: str) -> str:
    """Migrate and seed the database, add one requester for Erika's Meldebescheinigung; its token."""
    from broker.clients.service import CLI_ACTOR, add_client
    from broker.db.migrate import upgrade
    from broker.db.session import make_engine, make_session_factory, unit_of_work
    from broker.demo.seed import seed

    engine = make_engine(database_url)
    upgrade(engine)
    with unit_of_work(make_session_factory(engine)) as session:
        seed(session)
        grants: list[tuple[str, str | None]] = [(str(ERIKA_REQUEST["evidence_type"]), None)]
        token = add_client(session, "bench", "requester", grants, actor=CLI_ACTOR, now=datetime.now(UTC))
    engine.dispose()
    return token


def broker_env(database_url: str, keys_dir: str) -> dict[str, str]:
    """The environment of a benchmarked broker: its database and keys, quiet, this checkout importable."""
    return {
        **os.environ,
        "BROKER_DATABASE_URL": database_url,
        "BROKER_KEYS_DIR": keys_dir,
        "BROKER_LOG_LEVEL": "warning",
        "BROKER_ENV": "development",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }


@contextlib.contextmanager
def postgres_broker() -> Iterator[tuple[dict[str, str], str]]:
    """A throwaway seeded PostgreSQL database (on ``BROKER_TEST_POSTGRES_URL``'s server) with one
    requester: a broker's environment for it and the requester's token. Dropped afterwards."""
    server = os.environ.get("BROKER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    database_url, drop = create_postgres_database(server)
    try:
        token = seeded_requester(database_url)
        yield broker_env(database_url, tempfile.mkdtemp(prefix="bench-keys-")), token
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    processes: list[subprocess.Popen[bytes]] = []
    with postgres_broker() as (env, token):
        try:
            _compare(args, env, token, processes)
        finally:
            for process in processes:
                stop_process(process)


def _compare(
    args: argparse.Namespace, env: dict[str, str], token: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    """hello, then the exchange, each under the same load; prints both and their ratio."""
    hello_process, hello_port = serve("bench.hello:app", args.workers, env)
    processes.append(hello_process)
    broker_process, broker_port = serve("broker.app:create_app", args.workers, env)
    processes.append(broker_process)
    generator = "wrk" if shutil.which("wrk") else "httpx (install wrk for a fair baseline)"
    print(
        f"{args.seconds:.0f} s each, concurrency {args.concurrency}, {args.workers} worker(s), PostgreSQL, "
        f"load: {generator}"
    )
    if shutil.which("wrk"):
        print("hello")
        hello_rate = load_with_wrk(f"http://127.0.0.1:{hello_port}/hello", args.seconds, args.concurrency)
        print("exchange")
        exchange_rate = load_with_wrk(
            f"http://127.0.0.1:{broker_port}/v1/evidence-requests", args.seconds, args.concurrency, token
        )
        print(f"ratio exchange/hello = {exchange_rate / hello_rate:.1%} (bar: >= 12 %, long-term 25 %)")
        return
    hello = asyncio.run(load(f"http://127.0.0.1:{hello_port}/hello", args.seconds, args.concurrency, method="GET"))
    exchange = asyncio.run(
        load(
            f"http://127.0.0.1:{broker_port}/v1/evidence-requests",
            args.seconds,
            args.concurrency,
            method="POST",
            json=ERIKA_REQUEST,
            headers={"Authorization": f"Bearer {token}"},
        )
    )
    hello_rate = report("hello", *hello, seconds=args.seconds)
    exchange_rate = report("exchange", *exchange, seconds=args.seconds)
    print(f"ratio exchange/hello = {exchange_rate / hello_rate:.1%} (bar: >= 12 %, long-term 25 %)")


if __name__ == "__main__":
    main()
