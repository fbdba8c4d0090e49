"""The broker compiles its schema catalogue at start-up and refuses to start on a broken schema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port


def test_broker_refuses_to_start_on_a_broken_schema(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "broken.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:broken">'
        '<xs:element name="A" type="xs:doesNotExist"/></xs:schema>'
    )
    env = {
        **os.environ,
        "BROKER_DATABASE_URL": f"sqlite:///{tmp_path / 'broker.db'}",
        "BROKER_KEYS_DIR": str(tmp_path / "keys"),
        "BROKER_SCHEMA_PATH": str(schemas),
        "BROKER_ENV": "development",
    }
    done = subprocess.run(
        [sys.executable, "-m", "broker.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "broken.xsd" in done.stderr


def test_schemas_validate_done_when_check(shared_dir: Path) -> None:
    samples = sorted(
        p for p in (shared_dir / "oots" / "samples" / "exchange").glob("*/oots_*.xml") if "_header" not in p.name
    )
    env = {**os.environ, "BROKER_SCHEMA_PATH": str(shared_dir / "oots" / "xsd")}
    done = subprocess.run(
        [sys.executable, "-m", "broker.cli", "schemas", "validate", *map(str, samples)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": ok") == len(samples) >= 5
