"""GET /v1/admin/rollout through a real broker on a demo database of its own (per backend)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.rollout.schemas import RolloutOut
from tests.conftest import LiveBroker, fresh_broker
from tests.specimen import MELDE, request_body


@pytest.fixture(scope="module")
def broker(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveBroker]:
    yield from fresh_broker(backend, request, tmp_path_factory.mktemp(f"rollout-api-{backend}"), {})


def rollout(broker: LiveBroker, token: str) -> RolloutOut:
    with broker.client(token) as client:
        answer = client.get("/v1/admin/rollout")
    assert answer.status_code == 200, answer.text
    return RolloutOut.model_validate(answer.json())


def test_admins_read_the_matrix_with_the_gaps_named_and_the_exchanges_counted(broker: LiveBroker) -> None:
    admin = broker.add_client("admin")
    matrix = rollout(broker, admin)
    assert (matrix.summary.offices, matrix.summary.cells, matrix.summary.pending) == (116, 348, 3)
    assert matrix.summary.kinds == {"amt": 114, "kreisfreie_stadt": 2}
    assert [(g.office, g.authority) for g in matrix.gaps] == [
        (f"1307550{n}", f"melderegister-1307550{n}") for n in (17, 18, 19)
    ]
    assert [o.gaps for o in matrix.offices[:4]] == [1, 1, 1, 0]

    # Erika's Meldebescheinigung from Schwerin: the city's cell counts it.
    requester = broker.add_client("requester", MELDE)
    with broker.client(requester) as client:
        assert client.post("/v1/evidence-requests", json=request_body()).json()["state"] == "delivered"
    schwerin = next(o for o in rollout(broker, admin).offices if o.ars == "130040000000")
    melde = next(c for c in schwerin.cells if c.evidence_type == MELDE)
    assert (melde.status, melde.authority, melde.exchanges, melde.errors) == ("routed", "melderegister-13004", 1, 0)
    assert melde.last_delivered_at is not None and melde.p95_seconds is not None


def test_only_admins_read_it(broker: LiveBroker) -> None:
    requester = broker.add_client("requester", MELDE)
    with broker.client(requester) as client:
        assert client.get("/v1/admin/rollout").status_code == 403
    with broker.client() as client:
        refused = client.get("/v1/admin/rollout")
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
