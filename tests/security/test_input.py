"""No input makes the broker answer 500: control characters and numbers or moments out of range are
refused with 422 naming the field (real broker processes, SQLite and PostgreSQL: PostgreSQL refuses
NUL in text, SQLite integers above 2^63 - 1), and the rule holds for every JSON model (in-process)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi.params import Form
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError

from adapters.wire import GarbageAnswer, decode_answer
from broker.app import ROUTERS
from broker.schemas_common import MAX_LOG_INDEX, MULTILINE, ApiModel, Moment
from broker.xml.hardened import check_well_formed
from tests.conftest import LiveBroker
from tests.specimen import ERIKA, MELDE, request_body

# C0, DEL, C1 and a lone surrogate; each inside the text, where stripping whitespace cannot remove it.
HOSTILE = ["\x00", "\x07", "\n", "\t", "\x1b", "\x7f", "\x85", "\x9b", "\ud800"]
# Invisible characters that make a name read differently than it is stored (an outside attack
# got U+202E, U+2028 and U+FFFE into a delivered exchange).
HOSTILE += ["\u200b", "\u202e", "\u2066", "\u2028", "\ufeff", "\ufffe"]


@pytest.fixture(scope="module")
def requester(live_broker: LiveBroker) -> str:
    return live_broker.add_client("requester", MELDE)


@pytest.fixture(scope="module")
def auditor(live_broker: LiveBroker) -> str:
    return live_broker.add_client("auditor")


@pytest.fixture(scope="module")
def admin(live_broker: LiveBroker) -> str:
    return live_broker.add_client("admin")


def send_json(client: httpx.Client, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    # Encoded here with \\u escapes: httpx would refuse to encode a lone surrogate itself.
    content = json.dumps(body).encode("ascii")
    return client.request(method, path, content=content, headers={"Content-Type": "application/json"})


def assert_refused(answer: httpx.Response, field: str) -> None:
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["reason"] == "request.invalid"
    assert field in [error["field"] for error in problem["errors"]], problem


def consent_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": dict(ERIKA),
        "evidence_types": [MELDE],
        "purpose": "Wohngeldantrag",
        "valid_until": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
    }
    return body | overrides


@pytest.mark.parametrize("character", HOSTILE, ids=[f"U+{ord(c):04X}" for c in HOSTILE])
def test_control_characters_in_an_evidence_request_are_refused_naming_the_field(
    live_broker: LiveBroker, requester: str, character: str
) -> None:
    subject = {**ERIKA, "family_name": f"Muster{character}mann"}
    with live_broker.client(requester) as client:
        in_name = send_json(client, "POST", "/v1/evidence-requests", request_body(subject=subject))
        in_purpose = send_json(client, "POST", "/v1/evidence-requests", request_body(purpose=f"Wohn{character}geld"))
    assert_refused(in_name, "subject.family_name")
    assert_refused(in_purpose, "purpose")


def test_control_characters_are_refused_in_consents_and_registry_changes(
    live_broker: LiveBroker, requester: str, admin: str
) -> None:
    with live_broker.client(requester) as client:
        in_list = send_json(client, "POST", "/v1/consents", consent_body(evidence_types=[f"{MELDE}\x00"]))
        in_given_name = send_json(
            client, "POST", "/v1/consents", consent_body(subject={**ERIKA, "given_name": "Er\x00ika"})
        )
    assert_refused(in_list, "evidence_types")
    assert_refused(in_given_name, "subject.given_name")
    with live_broker.client(admin) as client:
        document = client.get("/v1/admin/registry").json()
        route = dict(document["routes"][0])
        authority = dict(document["authorities"][0])
        in_route = send_json(client, "PUT", "/v1/admin/registry/routes", {**route, "authority": "amt\x00"})
        in_authority = send_json(
            client, "PUT", f"/v1/admin/registry/authorities/{authority['id']}", {**authority, "name": "Amt\tOst"}
        )
    assert_refused(in_route, "authority")
    assert_refused(in_authority, "name")


def test_control_characters_in_the_path_or_query_are_refused(
    live_broker: LiveBroker, requester: str, auditor: str
) -> None:
    with live_broker.client(requester) as client:
        in_path = client.get("/v1/evidence-requests/abc%00def")
        in_consent_path = client.delete("/v1/consents/abc%1Bdef")
    with live_broker.client(auditor) as client:
        in_filter = client.get("/v1/audit/entries", params={"requester": "portal\x00"})
        in_key = client.get("/v1/audit/entries?evil%00key=1")
    assert_refused(in_path, "path")
    assert_refused(in_consent_path, "path")
    assert_refused(in_filter, "requester")
    assert_refused(in_key, "query")


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/audit/checkpoint", {"tree_size": 2**63}, "tree_size"),
        ("/v1/audit/proofs/inclusion", {"index": 2**63}, "index"),
        ("/v1/audit/proofs/inclusion", {"index": 0, "tree_size": 2**64}, "tree_size"),
        ("/v1/audit/proofs/consistency", {"old_size": 2**63, "tree_size": 1}, "old_size"),
        ("/v1/audit/proofs/consistency", {"old_size": 0, "tree_size": MAX_LOG_INDEX + 1}, "tree_size"),
        ("/v1/audit/entries", {"after": 2**63}, "after"),
        ("/v1/audit/entries", {"after": 10**40}, "after"),
        ("/v1/audit/entries", {"from": "9999-12-31T23:59:59-01:00"}, "from"),
        ("/v1/audit/entries", {"to": "0001-01-01T00:00:00+01:00"}, "to"),
    ],
)
def test_numbers_and_moments_out_of_range_in_queries_are_refused(
    live_broker: LiveBroker, auditor: str, path: str, params: dict[str, Any], field: str
) -> None:
    with live_broker.client(auditor) as client:
        assert_refused(client.get(path, params=params), field)


def test_the_largest_accepted_numbers_are_answered_without_error(live_broker: LiveBroker, auditor: str) -> None:
    with live_broker.client(auditor) as client:
        checkpoint = client.get("/v1/audit/checkpoint", params={"tree_size": MAX_LOG_INDEX})
        inclusion = client.get("/v1/audit/proofs/inclusion", params={"index": MAX_LOG_INDEX - 1})
        entries = client.get("/v1/audit/entries", params={"after": MAX_LOG_INDEX})
    assert checkpoint.status_code == 404 and checkpoint.json()["reason"] == "audit.checkpoint_not_found"
    assert 400 <= inclusion.status_code < 500, inclusion.text
    assert entries.status_code == 200 and entries.json()["entries"] == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_uses": 2**63}, "max_uses"),
        ({"max_uses": 2**31}, "max_uses"),
        ({"valid_until": "9999-12-31T23:59:59-12:00"}, "valid_until"),
        ({"valid_from": "0001-01-01T00:00:00+14:00"}, "valid_from"),
    ],
)
def test_consent_numbers_and_moments_out_of_range_are_refused(
    live_broker: LiveBroker, requester: str, overrides: dict[str, Any], field: str
) -> None:
    with live_broker.client(requester) as client:
        assert_refused(send_json(client, "POST", "/v1/consents", consent_body(**overrides)), field)


# --- in-process: the rule covers every model, and what it lets through ---------------------------


def _models_within(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for field in model.model_fields.values():
        for candidate in _classes_in(field.annotation):
            if issubclass(candidate, BaseModel) and candidate not in found:
                found |= _models_within(candidate)
    return found


def _classes_in(annotation: Any) -> list[type]:
    if isinstance(annotation, type):
        return [annotation]
    return [c for arg in getattr(annotation, "__args__", ()) for c in _classes_in(arg)]


def test_every_json_body_of_every_route_is_an_api_model() -> None:
    bodies: set[type[BaseModel]] = set()
    for router in ROUTERS:
        for route in router.routes:
            # Forms (the citizen's preview decision) are not JSON models: FastAPI generates their class.
            if isinstance(route, APIRoute) and route.body_field and not isinstance(route.body_field.field_info, Form):
                for model in _classes_in(route.body_field.field_info.annotation):
                    if issubclass(model, BaseModel):
                        bodies |= _models_within(model)
    assert bodies, "no JSON body found: the check looks in the wrong place"
    assert [m.__name__ for m in bodies if not issubclass(m, ApiModel)] == []


class Sample(ApiModel):
    name: str = "x"
    tags: list[str] = []
    pem: Annotated[str | None, MULTILINE] = None


def test_api_models_refuse_control_characters_and_unknown_fields_but_let_keys_span_lines() -> None:
    assert Sample(name="Müller-Lüdenscheidt ß 漢字", tags=["a b"]).name.startswith("Müller")
    for bad in ({"name": "a\nb"}, {"tags": ["x\x85"]}, {"unknown": 1}, {"pem": "a\x00"}, {"pem": "a\x1bb"}):
        with pytest.raises(ValidationError):
            Sample.model_validate(bad)
    pem = "-----BEGIN PUBLIC KEY-----\r\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"
    assert Sample(pem=pem).pem == pem


def test_moments_are_bounded_and_in_utc() -> None:
    moment = TypeAdapter(Moment)
    assert moment.validate_python("2030-01-01T01:00:00+01:00") == datetime(2030, 1, 1, tzinfo=UTC)
    assert moment.validate_python("2030-01-01T00:00:00") == datetime(2030, 1, 1, tzinfo=UTC)
    for bad in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z"):
        with pytest.raises(ValidationError):
            moment.validate_python(bad)


def test_an_authoritys_detail_with_control_characters_is_not_an_answer() -> None:
    # Kept with the exchange: PostgreSQL refuses NUL in text, so it once ended in a 500 that left
    # the pull task open (the live case: tests/adapters/test_pull.py, nul_in_detail).
    for detail in ("a\\u0000b", "a\\u001bb", "a\\ud800b"):
        with pytest.raises(GarbageAnswer):
            decode_answer("application/json", f'{{"kind": "failed", "detail": "{detail}"}}'.encode(), check_well_formed)
    kept = decode_answer("application/json", b'{"kind": "failed", "detail": "line\\none\\ttab"}', check_well_formed)
    assert kept.detail == "line\none\ttab"
