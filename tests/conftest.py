"""Shared fixtures. Data under ../shared is read from there, never copied into the project."""

from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
SHARED_DIR = (REPO_DIR / ".." / "shared").resolve()
ASSETS_DIR = REPO_DIR / "tests" / "assets"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.fail(f"../shared not found at {SHARED_DIR}: the tests read shared data from there")
    return SHARED_DIR
