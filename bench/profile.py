"""Where a synchronous exchange spends its time: py-spy records the broker under the benchmark's load.

    python -m bench.profile [--seconds 15] [--concurrency 8] [--out var/profile.svg]
    make profile

Starts the broker as ``bench.exchange`` does (uvicorn, one worker, a throwaway seeded PostgreSQL
database from ``BROKER_TEST_POSTGRES_URL``), attaches ``py-spy record`` to it (all threads,
including the time they wait: ``--idle``, so round trips to PostgreSQL show) while ``wrk`` (or the
httpx generator) posts synchronous exchanges, and writes a flame graph (SVG) and the raw
collapsed stacks beside it. Prints the share of samples in the frames that matter for the hot
path, so two runs can be compared without opening the graph. The seal itself runs in the
broker's signer processes (``BROKER_SEAL_PROCESSES``), which this records only as the exchange's
wait for them (py-spy 0.4's ``--subprocesses`` did not find them here): ``py-spy record --pid``
a signer for its own profile, or run with ``BROKER_SEAL_PROCESSES=0`` to see the seal in the
exchange's stacks.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.exchange import ERIKA_REQUEST, load, load_with_wrk, postgres_broker, serve
from tests.conftest import stop_process

# Frames whose share of the exchange's samples the summary prints: (label, a substring of the frame).
WATCHED = (
    ("request_evidence (the whole exchange)", "request_evidence"),
    ("PostgreSQL round trips (psycopg waits)", "psycopg/"),
    ("ORM flush", "flush ("),
    ("commit", "commit ("),
    ("in-process register lookup", "find_matches"),
    ("evidence schema check", "check ("),
    ("XAdES seal", "seal ("),
    ("pydantic validation", "pydantic"),
)


def summarise(collapsed: Path) -> None:
    """Share of samples of request handling threads that pass through each watched frame."""
    totals: Counter[str] = Counter()
    handling = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "evidence_request" not in stack:  # the route: samples outside it are idle workers and loops
            continue
        samples = int(count)
        handling += samples
        for label, needle in WATCHED:
            if needle in stack:
                totals[label] += samples
    print(f"samples in the exchange route: {handling}")
    for label, _ in WATCHED:
        print(f"  {label:<42} {totals[label] / max(handling, 1):6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("var/profile.svg"))
    parser.add_argument(
        "--gil",
        dest="mode",
        action="store_const",
        const=["--gil"],
        default=["--idle"],
        help="Sample only the thread holding the GIL (the broker's CPU), not every thread's wall time.",
    )
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.out.parent.mkdir(parents=True, exist_ok=True)

    with postgres_broker() as (env, token):
        broker, port = serve("broker.app:create_app", 1, env)
        try:
            url = f"http://127.0.0.1:{port}/v1/evidence-requests"
            headers = {"Authorization": f"Bearer {token}"}
            asyncio.run(load(url, 2, 2, method="POST", json=ERIKA_REQUEST, headers=headers))  # warm-up
            collapsed = args.out.with_suffix(".txt")
            recorders = [
                subprocess.Popen(
                    [py_spy, "record", "--pid", str(broker.pid), "--duration", str(int(args.seconds)), *args.mode]
                    + ["--rate", "200", "--format", fmt, "--output", str(out), "--nonblocking"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for fmt, out in (("flamegraph", args.out), ("raw", collapsed))
            ]
            time.sleep(1)  # py-spy attaches
            if shutil.which("wrk"):
                load_with_wrk(url, args.seconds, args.concurrency, token)
            else:
                request = {"method": "POST", "json": ERIKA_REQUEST, "headers": headers}
                asyncio.run(load(url, args.seconds, args.concurrency, **request))
            for recorder in recorders:
                recorder.wait(timeout=60)
            print(f"flame graph: {args.out}  collapsed stacks: {collapsed}")
            summarise(collapsed)
        finally:
            stop_process(broker)


if __name__ == "__main__":
    main()
