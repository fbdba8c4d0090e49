"""`broker rollout …` as an operator runs it: the real commands in their own processes, on a
database seeded by `broker demo seed` (per backend), with the real conformance kit."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _database_url

SUMMARY = "114 Ämter, 2 kreisfreie Städte × 3 evidence types = 348 cells"


def broker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def env(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    directory = tmp_path_factory.mktemp(f"rollout-{backend}")
    for url in _database_url(backend, request, directory):
        env = {
            **os.environ,
            "BROKER_DATABASE_URL": url,
            "BROKER_KEYS_DIR": str(directory / "keys"),
            # A loopback push endpoint, for the authority that fails the kit.
            "BROKER_ENV": "development",
            "BROKER_EGRESS_ALLOW": "127.0.0.0/8,::1",
        }
        for command in (("db", "upgrade"), ("demo", "seed")):
            done = broker(env, *command)
            assert done.returncode == 0, done.stderr
        yield env


def gaps(env: dict[str, str]) -> list[str]:
    done = broker(env, "rollout", "status", "--gaps")
    assert done.returncode == 0, done.stderr
    return [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")]


def test_status_onboard_and_deactivate(env: dict[str, str]) -> None:
    status = broker(env, "rollout", "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].endswith(f"{SUMMARY}: 345 routed, 3 pending, 0 unrouted"), lines[0]
    assert lines[1] == "gaps (3):"
    for n in (17, 18, 19):
        assert f"1307550{n}  Amt Vorpommern-Greifswald {n}  Meldebescheinigung  pending: waits for " in status.stdout
    table = lines[lines.index("") + 1 :]
    assert table[0].split()[:3] == ["ARS", "OFFICE", "EVIDENCE"]
    assert len(table) == 1 + 348
    assert table[1].startswith("130755017")  # gaps first

    onboarded = broker(env, "rollout", "onboard", "melderegister-130755017")
    assert onboarded.returncode == 0, onboarded.stdout + onboarded.stderr
    verdicts = [line.split()[0] for line in onboarded.stdout.splitlines()[1:-1]]
    assert set(verdicts) <= {"PASS", "SKIP"} and "PASS" in verdicts, onboarded.stdout
    assert onboarded.stdout.splitlines()[-1] == "melderegister-130755017 is onboarded: 1 route activated"
    assert gaps(env) == ["130755018", "130755019"]

    deactivated = broker(env, "rollout", "deactivate", "melderegister-130755017")
    assert deactivated.returncode == 0, deactivated.stderr
    assert deactivated.stdout.strip() == "melderegister-130755017: 1 route back to pending"
    assert gaps(env) == ["130755017", "130755018", "130755019"]


def test_a_failing_kit_says_what_failed_and_activates_nothing(env: dict[str, str]) -> None:
    # Nothing listens on port 9, and no answer-signing key is registered: every case that asks fails.
    connected = broker(
        env, "adapters", "connect", "melderegister-130755018", "--binding", "http_push",
        "--endpoint", "http://127.0.0.1:9/evidence",
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    failed = broker(env, "rollout", "onboard", "melderegister-130755018", "--wait", "5")
    assert failed.returncode == 1
    lines = failed.stdout.splitlines()
    assert any(line.startswith("FAIL") and "known subject" in line for line in lines), failed.stdout
    assert lines[-1].startswith("melderegister-130755018 is not onboarded: failed known subject")
    assert lines[-1].endswith("its routes stay pending")
    assert "130755018" in gaps(env)


def test_unknown_authorities_are_refused_in_one_line(env: dict[str, str]) -> None:
    for command in ("onboard", "deactivate"):
        done = broker(env, "rollout", command, "nobody")
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1] == "Error: No authority 'nobody'."


def test_report_writes_the_page(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "rollout.html"
    done = broker(env, "rollout", "report", "--out", str(out), "--days", "7")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out}: {SUMMARY}")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Amt Vorpommern-Greifswald 19" in page
    assert page.count('<th scope="row">20') == 7  # the chart's table: one row per day
