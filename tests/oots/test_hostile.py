"""The hostile-input corpus (tests/xml/hostile.py) against POST /oots/edm on a real broker.

Each case gets its exact HTTP status, an EDM error response (EDM:ERR:0003, schema-valid) naming
the corpus's reason code, within a second, and the broker answers a good request afterwards.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import LiveBroker
from tests.oots.support import MEDIA_TYPE, EdmRequest, evidence_of, failure_of, post_edm
from tests.xml.hostile import CASES, HostileCase

BIG = 5 * 1024 * 1024


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_refused_quickly_and_exactly(
    live_broker: LiveBroker, requester: str, case: HostileCase
) -> None:
    body = case.payload()
    with live_broker.client(requester) as client:
        started = time.monotonic()
        # Big bodies are streamed (no Content-Length), so the gateway itself sees them exceed the limit.
        content = case.chunks() if len(body) > BIG else body
        answer = client.post("/oots/edm", content=content, headers={"Content-Type": case.content_type_or(MEDIA_TYPE)})
        elapsed = time.monotonic() - started
    failure = failure_of(answer, case.status)
    assert (failure.code, failure.reason) == ("EDM:ERR:0003", case.reason), failure.slots
    assert elapsed < 1.0, f"{case.name} took {elapsed:.2f} s"
    with live_broker.client(requester) as client:
        evidence_of(post_edm(client, EdmRequest().xml()))


def test_an_announced_oversize_body_is_refused_by_the_http_layer(live_broker: LiveBroker, requester: str) -> None:
    with live_broker.client(requester) as client:
        answer = client.post("/oots/edm", content=b" " * (11 * 1024 * 1024), headers={"Content-Type": MEDIA_TYPE})
    assert answer.status_code == 413
    assert answer.json()["reason"] == "request.too_large"
