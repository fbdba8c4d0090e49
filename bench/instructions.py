"""Instructions per request: the synchronous exchange against the bare FastAPI "hello", under callgrind.

    python -m bench.instructions [--requests 100] [--no-baseline]

On a shared machine the throughput of ``bench.exchange`` moves by a fifth from one run to the
next, more than most changes to the hot path are worth. The number of instructions the process
executes per request does not: valgrind's callgrind counts them, the same to a tenth of a per
cent whatever else the machine does. So this is the figure to compare two versions of the code
by; ``bench.exchange`` stays the one the bar is stated in.

Each app runs in its own process under ``valgrind --tool=callgrind``, in-process (the ASGI app
called directly, no HTTP server: uvicorn's share is the same for both and left out), one request
after another. Counting starts after a warm-up (``callgrind_control -i on``) and covers every
thread of the process: the event loop, the thread pool, the database driver. The broker runs on
a throwaway seeded PostgreSQL database (``BROKER_TEST_POSTGRES_URL``) with its background jobs
(log integrator, sweeps, callbacks, the registry's refresh) slowed down by their settings: under
valgrind a request takes fifty times as long, and they would otherwise run every few exchanges
instead of once for hundreds, by the clock, so that the count would depend on how long the run
took. Needs valgrind (Debian package ``valgrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.exchange import ERIKA_REQUEST, postgres_broker

WARM_UP = 20
# Far beyond a run: the background jobs do not run while instructions are counted.
QUIET_BACKGROUND = {
    "BROKER_INTEGRATE_INTERVAL_SECONDS": "100000",
    "BROKER_BACKGROUND_INTERVAL_SECONDS": "100000",
    "BROKER_REGISTRY_REFRESH_SECONDS": "100000",
}
# The seal in the request's own thread, not in signer processes (BROKER_SEAL_PROCESSES): callgrind
# counts one process, and the figure is meant to be the exchange's whole work, wherever it runs.
IN_ONE_PROCESS = {"BROKER_SEAL_PROCESSES": "0"}


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


async def _call(app: Any, scope: dict[str, Any], body: bytes) -> int:
    """One request through the ASGI app; its status."""
    sent = False
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


def _count(enabled: bool) -> None:
    subprocess.run(
        ["callgrind_control", "-i", "on" if enabled else "off", str(os.getpid())], check=True, capture_output=True
    )


async def _drive(app: Any, scope: dict[str, Any], body: bytes, requests: int, expected: int) -> None:
    async with app.router.lifespan_context(app):
        for _ in range(WARM_UP):
            await _call(app, scope, body)
        _count(True)
        statuses = [await _call(app, scope, body) for _ in range(requests)]
        _count(False)
    if any(status != expected for status in statuses):
        raise SystemExit(f"answers other than {expected}: {sorted(set(statuses))}")


def child(app_name: str, requests: int) -> None:
    """Runs under valgrind: the app's requests, counted after the warm-up."""
    if app_name == "hello":
        from bench.hello import app

        asyncio.run(_drive(app, _scope("GET", "/hello", []), b"", requests, 200))
        return
    from broker.app import create_app

    body = json.dumps(ERIKA_REQUEST).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {os.environ['BENCH_TOKEN']}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    asyncio.run(_drive(create_app(), _scope("POST", "/v1/evidence-requests", headers), body, requests, 200))


def measure(app_name: str, requests: int, env: dict[str, str]) -> float:
    """Instructions per request of one app, counted by callgrind in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as directory:
        out = Path(directory) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.instructions",
            "--child",
            app_name,
            "--requests",
            str(requests),
        ]
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"{app_name} under valgrind failed:\n{run.stderr[-3000:]}")
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
        return int(totals[-1].split()[1]) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--no-baseline", action="store_true", help="count the exchange only")
    parser.add_argument("--child", choices=("hello", "exchange"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.requests)
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (Debian package valgrind)")
    with postgres_broker() as (env, token):
        env = {**env, **QUIET_BACKGROUND, **IN_ONE_PROCESS, "BENCH_TOKEN": token}
        print(f"{args.requests} requests each, in-process (no HTTP server), counted by callgrind")
        exchange = measure("exchange", args.requests, env)
        print(f"exchange {exchange / 1e6:9.2f} M instructions/request")
        if args.no_baseline:
            return
        hello = measure("hello", args.requests, env)
        print(f"hello    {hello / 1e6:9.2f} M instructions/request")
        # Not the bar's ratio: the HTTP server's share, the same for both, is left out here.
        print(f"exchange/hello = {exchange / hello:.1f} times the instructions")


if __name__ == "__main__":
    main()
