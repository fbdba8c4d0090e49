"""Four broker processes appending and integrating at once: dense indices, an intact log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from broker.audit.commands import audit
from broker.db.models import LogEntry
from broker.keys.store import KeyStore

from .conftest import ORIGIN

WORKER = Path(__file__).with_name("append_worker.py")
REPO_DIR = Path(__file__).resolve().parents[2]
PROCESSES = 4
PER_PROCESS = 500


def test_four_processes_append_and_integrate_concurrently(
    database_url: str, sessions: sessionmaker[Session], keys: KeyStore, cli_env: None
) -> None:
    keys.checkpoint_key()  # initialise the key store once, as a deployment does
    start_at = time.time() + 2.0
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                database_url,
                str(keys.keys_dir),
                ORIGIN,
                f"w{number}",
                str(PER_PROCESS),
                str(start_at),
            ],
            cwd=REPO_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for number in range(PROCESSES)
    ]
    for worker in workers:
        _out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()

    with sessions() as session:
        rows = session.execute(select(LogEntry.log_index, LogEntry.body).order_by(LogEntry.log_index)).all()
    assert [index for index, _body in rows] == list(range(PROCESSES * PER_PROCESS))
    exchanges = [json.loads(body)["exchange"] for _index, body in rows]
    for number in range(PROCESSES):
        mine = [e for e in exchanges if e.startswith(f"w{number}-")]
        # Each process committed its entries one after another, so the log keeps its order.
        assert mine == [f"w{number}-{n:05d}" for n in range(PER_PROCESS)]

    result = CliRunner().invoke(audit, ["verify"])
    assert result.exit_code == 0, result.output
    assert f"log intact: {PROCESSES * PER_PROCESS} entries" in result.output
