"""One slow callback receiver delays only itself (real broker, both databases).

Before this, callbacks were sent one after another with a 10 s timeout each: three hanging
receivers delayed another requester's callback by 31 s. Now they go out side by side, at most
two at once per requester, each attempt cut off after ``BROKER_CALLBACK_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import LiveBroker, fresh_broker
from tests.security.outbound import Listener, Receiver, wait_until
from tests.specimen import MELDE, request_body

TIMEOUT_SECONDS = 8
CALLBACKS = {
    "BROKER_BACKGROUND_INTERVAL_SECONDS": "0.3",
    "BROKER_CALLBACK_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
    "BROKER_CALLBACK_CONCURRENCY_PER_REQUESTER": "2",
}


@pytest.fixture(scope="module")
def broker(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveBroker]:
    yield from fresh_broker(backend, request, tmp_path_factory.mktemp(f"callbacks-{backend}"), CALLBACKS)


def requester_of(broker: LiveBroker, origin: str) -> str:
    return broker.add_client("requester", MELDE, callback_origins=[origin])


def ask(broker: LiveBroker, token: str, callback_url: str) -> str:
    """A request that is delivered at once (in-process authority); its callback is then due."""
    with broker.client(token) as client:
        answer = client.post("/v1/evidence-requests", json=request_body(callback_url=callback_url))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def test_hanging_receivers_delay_only_their_own_requesters(broker: LiveBroker) -> None:
    hanging = [Listener() for _ in range(3)]
    receiver = Receiver()
    try:
        origins = [f"http://127.0.0.1:{listener.port}" for listener in hanging]
        stuck = [(requester_of(broker, origin), origin) for origin in origins]
        token = requester_of(broker, receiver.origin)
        for requester, origin in stuck:
            for _ in range(3):  # one more than the requester's share of the sender
                ask(broker, requester, f"{origin}/hook")
        # Each hanging requester holds its two slots: the sends are under way and stuck.
        assert wait_until(lambda: all(listener.open == 2 for listener in hanging), 3)

        asked = time.monotonic()
        exchange_id = ask(broker, token, f"{receiver.origin}/hook")
        assert wait_until(lambda: any(exchange_id.encode() in body for _, _, body in receiver.received), 3)
        arrived = next(at for at, _, body in receiver.received if exchange_id.encode() in body)
        # Not behind the hanging ones' timeouts: about one round of the sender (0.3 s).
        assert arrived - asked < 2.0
        # Within the timeout, a requester's third callback waits for one of its own slots.
        assert [listener.connections for listener in hanging] == [2, 2, 2]

        # Past the timeout the stuck attempts are cut off, and the third goes out in turn.
        assert wait_until(lambda: all(listener.connections >= 3 for listener in hanging), TIMEOUT_SECONDS + 2)
    finally:
        for listener in hanging:
            listener.close()
        receiver.close()
