"""The conformance kit (`broker adapters check`) on every reference adapter in every binding."""

from __future__ import annotations

import subprocess
import sys

import pytest

from broker.tasks.conformance import CASES
from tests.adapters.conftest import Remote

AUTHORITIES = ["melderegister-13004", "standesamt-13004", "gewerberegister-13004"]
BINDINGS = ["in_process", "http_push", "pull"]


def run_kit(remote: Remote, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", "adapters", "check", *args],
        env=remote.broker.env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("authority", AUTHORITIES)
@pytest.mark.parametrize("binding", BINDINGS)
def test_reference_adapters_pass_the_battery(remote: Remote, authority: str, binding: str) -> None:
    if binding == "http_push":
        remote.push_authority(authority, timeout=5)
    elif binding == "pull":
        remote.pull_authority(authority)
    else:
        remote.set_authority(authority, binding="in_process", endpoint_url=None)
    done = run_kit(remote, authority)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    cases = [line.split(None, 1) for line in lines[1:-1]]
    assert [case[1].split("  ")[0].strip() for case in cases] == list(CASES)
    verdicts = {case[1].split("  ")[0].strip(): case[0] for case in cases}
    expected_skips = {"bad signature"} if binding == "in_process" else set()
    assert {c for c, v in verdicts.items() if v == "SKIP"} == expected_skips, done.stdout
    assert all(v in ("PASS", "SKIP") for v in verdicts.values()), done.stdout
    assert lines[-1].endswith("0 failed")


def test_the_kit_fails_a_wrong_adapter(remote: Remote) -> None:
    """A push authority that signs with a key other than the registered one fails the battery."""
    base = remote.push_authority("melderegister-13004", timeout=5)
    remote.set_authority("melderegister-13004", public_key_pem=remote.key_pem(remote.directory / "stranger.pem"))
    done = run_kit(remote, f"{base}/evidence", "--authority", "melderegister-13004")
    assert done.returncode == 1
    assert any(line.startswith("FAIL") and "known subject" in line for line in done.stdout.splitlines()), done.stdout
