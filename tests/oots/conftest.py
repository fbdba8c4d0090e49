"""Fixtures of the OOTS gateway tests (the helpers are in support.py, shared with tests/preview)."""

from __future__ import annotations

import pytest

from tests.conftest import LiveBroker
from tests.oots.support import DK_AGENT, GEBURT, MELDE


@pytest.fixture(scope="module")
def requester(live_broker: LiveBroker) -> str:
    """A member-state requester registered with its OOTS agent id."""
    return live_broker.add_client("requester", GEBURT, MELDE, agent=DK_AGENT)


@pytest.fixture(scope="module")
def admin(live_broker: LiveBroker) -> str:
    return live_broker.add_client("admin")
