"""The tests' own servers: a test talks to the process it started, never to whoever else answers on
its port (tests/conftest.py ``wait_until_serving``, ``on_a_free_port``; tests/processes.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import PortTaken, free_port, http_server, on_a_free_port, start_broker
from tests.faults import seed_database
from tests.processes import listens


class _AlwaysReady(BaseHTTPRequestHandler):
    """Another server: answers 200 to everything, /readyz included."""

    def do_GET(self) -> None:  # noqa: N802 (the handler's protocol)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def squatter() -> Iterator[int]:
    """A port another server listens on; returns the port."""
    with http_server(_AlwaysReady) as url:
        port = urlsplit(url).port
        assert port is not None
        yield port


def test_listens_names_the_process_holding_the_port(squatter: int) -> None:
    assert listens(os.getpid(), squatter)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not listens(child.pid, squatter)
    finally:
        child.kill()
        child.wait()
    with socket.socket() as bound:  # bound, not listening
        bound.bind(("127.0.0.1", 0))
        assert not listens(os.getpid(), bound.getsockname()[1])


def test_a_broker_whose_port_is_taken_is_not_mistaken_for_the_server_there(squatter: int, tmp_path: Path) -> None:
    """The squatter answers /readyz with 200, as another test's broker would: the broker started
    on its port exits with "address already in use", and start_broker says so."""
    database_url = f"sqlite:///{tmp_path / 'broker.db'}"
    seed_database(database_url)
    with pytest.raises(PortTaken, match="address already in use"):
        start_broker(database_url, tmp_path, port=squatter)


def test_a_port_taken_first_is_traded_for_another() -> None:
    tried: list[int] = []

    def start(port: int) -> int:
        tried.append(port)
        if len(tried) == 1:
            raise PortTaken("address already in use")
        return port

    assert on_a_free_port(start) == tried[-1]
    assert len(tried) == 2
    # A port the caller chose is its choice: tried once.
    tried.clear()
    given = free_port()
    with pytest.raises(PortTaken):
        on_a_free_port(start, given)
    assert tried == [given]
