"""The OpenAPI document is the contract (broker/openapi.py): every operation lists the answers the
broker gives, and schemathesis, run against a real broker with each role's token and every
check, finds no answer the document does not describe."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.openapi import NO_CONTROL_CHARACTERS
from broker.settings import Settings
from tests.conftest import LiveBroker, fresh_broker

CONFIG = Path(__file__).parent / "schemathesis.toml"
# The long-poll waits up to its `wait` for a task; fuzzing it would spend the run waiting.
LONG_POLL = "/v1/adapter/tasks"
# Admin last: its fuzzing disables, removes and rotates clients, the other roles' included.
ROLES = ("requester", "adapter", "auditor", "metrics", "admin")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("openapi")
    settings = Settings(
        env="development", database_url=f"sqlite:///{directory / 'broker.db'}", keys_dir=directory / "keys"
    )
    with TestClient(create_app(settings)) as client:
        found: dict[str, Any] = client.get("/openapi.json").json()
    return found


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_lists_the_problems_the_middleware_answers(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        responses = operation["responses"]
        assert {"400", "422"} <= responses.keys(), (method, path)
        if path != "/healthz":
            assert "503" in responses, (method, path)
            assert "Retry-After" in responses["503"]["headers"], (method, path)
        if "requestBody" in operation:
            assert "413" in responses, (method, path)
        for status, response in responses.items():
            if int(status) >= 400 and "application/problem+json" in response.get("content", {}):
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
            assert "application/json" not in response.get("content", {}) or int(status) < 400, (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_operations_with_a_token_say_so_and_their_401_names_the_scheme(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A client's token (`broker clients add`)",
    }
    secured = {(method, path) for path, method, op in operations(document) if op.get("security") == [{"bearer": []}]}
    assert ("post", "/v1/evidence-requests") in secured
    assert ("get", "/metrics") in secured
    assert ("post", "/oots/edm") in secured
    # The log's proofs, checkpoints and keys are public: anyone may verify.
    assert ("get", "/v1/audit/proofs/inclusion") not in secured
    assert ("get", "/v1/audit/checkpoint") not in secured
    for method, path in secured:
        responses = document["paths"][path][method]["responses"]
        assert {"401", "403"} <= responses.keys(), (method, path)
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True, (method, path)


def test_text_parameters_refuse_control_characters_and_timestamps_are_rfc3339(document: dict[str, Any]) -> None:
    entries = {p["name"]: p["schema"] for p in document["paths"]["/v1/audit/entries"]["get"]["parameters"]}
    assert entries["requester"]["anyOf"][0]["pattern"] == NO_CONTROL_CHARACTERS
    moment = entries["from"]["anyOf"][0]
    assert moment["format"] == "date-time"
    assert moment["pattern"] == "^(19[7-9][0-9]|[2-8][0-9]{3})-"


def test_405_allows_every_method_of_the_resource_and_timestamps_must_be_timestamps(tmp_path: Path) -> None:
    settings = Settings(env="development", database_url=f"sqlite:///{tmp_path / 'broker.db'}", keys_dir=tmp_path / "k")
    with TestClient(create_app(settings)) as client:
        refused = client.request("OPTIONS", "/v1/admin/clients/someone")
        assert refused.status_code == 405
        assert refused.headers["Allow"] == "DELETE, GET, HEAD"
        assert refused.headers["content-type"] == "application/problem+json"
        assert client.request("PATCH", "/v1/admin/clients").headers["Allow"] == "GET, HEAD, POST"
        token = _admin_token(client)
        for not_a_timestamp in ("1700000000", "2026-11-26", "2026-11-26T18:00", "yesterday"):
            answer = client.get(
                "/v1/audit/entries", params={"from": not_a_timestamp}, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 422, not_a_timestamp
            assert answer.json()["errors"][0]["field"] == "from"
        answer = client.get(
            "/v1/audit/entries", params={"from": "2026-11-26T18:00:00Z"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200


def _admin_token(client: TestClient) -> str:
    from broker.clients import service as clients

    services = client.app.state.services  # type: ignore[attr-defined]
    with services.database.unit_of_work() as session:
        return clients.add_client(session, "contract-admin", "admin", [], actor="test", now=services.clock.now())


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveBroker]:
    yield from fresh_broker("sqlite", request, tmp_path, {})


def test_schemathesis_finds_nothing_undocumented_for_any_role(broker: LiveBroker, tmp_path: Path) -> None:
    tokens = {
        "requester": broker.add_client("requester", "urn:de:nachweis:meldebescheinigung"),
        "adapter": broker.add_client("adapter", authority="melderegister-13003"),
        "auditor": broker.add_client("auditor"),
        "metrics": broker.add_client("metrics"),
        "admin": broker.add_client("admin"),
    }
    for role in ROLES:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file",
                str(CONFIG),
                "run",
                f"{broker.base_url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "15",
                "--seed",
                "1",
                "--header",
                f"Authorization: Bearer {tokens[role]}",
                "--exclude-path",
                LONG_POLL,
                "--request-timeout",
                "20",
                "--no-shrink",
            ],
            cwd=tmp_path,  # its example database and reports stay out of the checkout
            env={**os.environ, "NO_COLOR": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{role}:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
        assert " passed" in done.stdout and "failures" not in done.stdout.split("SUMMARY")[-1], done.stdout[-3000:]
    assert httpx.get(f"{broker.base_url}/healthz").status_code == 200
