"""The evidence must be about the subject asked for.

Before this, an authority (or a compromised adapter) that answered a request for "Jan Schulz"
with a correctly signed, schema-valid Geburtsurkunde of Erika got it sealed and delivered. Now
each evidence type names where its documents state the subject (registry ``subject`` paths),
and after the schema check the broker compares that subject with the request: a mismatch ends
the exchange ``failed`` (502 ``evidence.subject_mismatch``), logged, nothing sealed or delivered.

In process (the exchange core, ``world``), and through real brokers on both databases with a
push authority (a loopback server in the test) and a pull adapter (the test), each answering
with Erika's signed document.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lxml import etree
from sqlalchemy import create_engine, select

from adapters.protocol import AdapterOutcome, EvidenceQuery, Subject
from adapters.registers.models import Resident
from adapters.registers.reference import issue
from adapters.signing import SignedMessage, content_digest, public_key_pem, sign
from broker.authority.answers import wire_answer
from broker.db.models import LogEntry, Preview
from broker.demo.seed import DEMO_REGISTRY
from broker.exchange.lifecycle import State
from broker.exchange.subject_check import differing_attribute
from broker.registry.service import read_toml
from tests.conftest import LiveBroker
from tests.specimen import ERIKA, MELDE, request_body
from tests.world import World, erika_resident

# Whom the requests ask about; the authorities answer with Erika's document instead.
JAN = {"family_name": "Schulz", "given_name": "Jan", "birth_date": "1990-01-01"}
MELDE_PATHS = next(t.subject for t in read_toml(DEMO_REGISTRY).evidence_types if t.id == MELDE)


def meldebescheinigung(resident: Resident, request_id: str = "r-1") -> bytes:
    return issue("melderegister", resident, "melderegister-13004", "Stadt Schwerin", "13004", request_id)


def erika_answers(query: EvidenceQuery) -> AdapterOutcome:
    return AdapterOutcome.found(meldebescheinigung(erika_resident(), query.request_id))


# --- the rule -----------------------------------------------------------------------------------


def asked(**attributes: Any) -> Subject:
    return Subject(**attributes)


def differs(document: bytes, requested: Subject) -> str | None:
    assert MELDE_PATHS is not None
    return differing_attribute(etree.fromstring(document), MELDE_PATHS, requested)


ERIKA_BORN = date(1964, 8, 12)


ERIKA_ASKED = asked(family_name="Mustermann", given_name="Erika", birth_date=ERIKA_BORN)
CASES = {
    # Names by their keys: case, accents and spacing do not matter; the first given name will do.
    "case-and-spacing": ({}, asked(family_name="MUSTERMANN ", given_name="erika", birth_date=ERIKA_BORN), None),
    "first-given-name": ({"given_name": "Erika Maria"}, ERIKA_ASKED, None),
    "family-name": ({"family_name": "Musterfrau"}, ERIKA_ASKED, "family_name"),
    "given-name": ({"given_name": "Erik"}, ERIKA_ASKED, "given_names"),
    "birth-date": ({"birth_date": date(1964, 8, 13)}, ERIKA_ASKED, "birth_date"),
    # The IDNr decides where both have one: a name changed since does not matter, another IDNr does.
    "idnr-decides": ({"idnr": "12345678995"}, asked(idnr="12345678995", family_name="Gabler"), None),
    "other-idnr": ({"idnr": "12345678995"}, asked(**{**ERIKA_ASKED.__dict__, "idnr": "10000000001"}), "idnr"),
    # Only an IDNr was asked for, and the document states none: nothing shows it is that person.
    "idnr-not-stated": ({}, asked(idnr="12345678995"), "idnr"),
}


@pytest.mark.parametrize(("stated", "requested", "expected"), CASES.values(), ids=CASES.keys())
def test_the_subject_a_document_states_against_the_request(
    stated: dict[str, Any], requested: Subject, expected: str | None
) -> None:
    resident = erika_resident()
    for attribute, value in stated.items():
        setattr(resident, attribute, value)
    assert differs(meldebescheinigung(resident), requested) == expected


def test_a_document_stating_two_subjects_states_none() -> None:
    document = etree.fromstring(meldebescheinigung(erika_resident()))
    person = document.find("{urn:de:nachweis:meldebescheinigung:1}Person")
    assert person is not None
    document.append(etree.fromstring(etree.tostring(person)))
    requested = asked(family_name="Mustermann", given_name="Erika", birth_date=ERIKA_BORN)
    assert differs(etree.tostring(document), requested) == "family_name"


# --- the exchange, in process --------------------------------------------------------------------


def test_evidence_about_someone_else_fails_the_exchange(world: World) -> None:
    world.answer = erika_answers
    result = world.request(subject=JAN)
    assert result.problem is not None
    assert (result.problem.status, result.problem.reason) == (502, "evidence.subject_mismatch")
    assert "Mustermann" not in result.problem.detail and "Erika" not in result.problem.detail
    exchange = world.exchange(result.exchange.id)
    assert (exchange.state, exchange.evidence, exchange.evidence_digest) == (State.FAILED, None, None)
    assert world.sealer.sealed == []
    assert world.events(exchange.id) == [("received", None), ("routed", None), ("failed", "failed")]


def test_evidence_about_someone_else_is_not_held_for_a_preview(world: World) -> None:
    world.answer = erika_answers
    result = world.request(subject=JAN, preview=True)
    assert result.problem is not None and result.problem.reason == "evidence.subject_mismatch"
    with world.database.read() as session:
        previews = session.scalars(select(Preview).where(Preview.exchange_id == result.exchange.id)).all()
    assert previews == [] and world.exchange(result.exchange.id).evidence is None


def test_evidence_about_the_subject_asked_for_is_delivered(world: World) -> None:
    world.answer = erika_answers
    result = world.request(subject=dict(ERIKA))
    assert result.problem is None and world.exchange(result.exchange.id).state == State.DELIVERED


# --- real brokers -------------------------------------------------------------------------------


class WrongPersonAuthority:
    """A push authority on loopback that answers every query, correctly signed with its key,
    with Erika's Meldebescheinigung."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.asked: list[str] = []
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server interface
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                query = EvidenceQuery.from_json(json.loads(body))
                authority.asked.append(query.request_id)
                answer = wire_answer(erika_answers(query), authority.key, request_digest=content_digest(body))
                self.send_response(answer.status)
                for name, value in {"Content-Type": answer.content_type, **answer.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}/evidence"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def wrong_person() -> Iterator[WrongPersonAuthority]:
    authority = WrongPersonAuthority()
    yield authority
    authority.close()


def register(
    broker: LiveBroker, admin: str, binding: str, public_key: str, endpoint: str | None = None
) -> tuple[str, str]:
    """A new Melderegister authority for a Gemeinde of its own; returns its id and that ARS."""
    authority_id = f"subject-test-{uuid.uuid4().hex[:8]}"
    ars = f"16{uuid.uuid4().int % 10**10:010d}"  # Thüringen: no demo authority there
    spec = {
        "id": authority_id,
        "name": "Meldebehörde Subjekt-Test",
        "ars": ars,
        "register_kind": "melderegister",
        "binding": binding,
        "endpoint_url": endpoint,
        "timeout_seconds": 5.0,
        "public_key_pem": public_key,
    }
    with broker.client(admin) as client:
        added = client.put(f"/v1/admin/registry/authorities/{authority_id}", json=spec)
        assert added.status_code == 200, added.text
        # Active at once: a new route to a remote authority is pending until it is onboarded.
        route = {"evidence_type": MELDE, "ars_prefix": ars, "authority": authority_id, "state": "active"}
        assert client.put("/v1/admin/registry/routes", json=route).status_code == 200
    return authority_id, ars


def log_of(broker: LiveBroker, exchange_id: str) -> list[dict[str, Any]]:
    engine = create_engine(broker.database_url)
    with engine.connect() as connection:
        bodies = connection.execute(
            select(LogEntry.body).where(LogEntry.exchange_id == exchange_id).order_by(LogEntry.seq)
        ).scalars()
        entries = [json.loads(body) for body in bodies]
    engine.dispose()
    return entries


def assert_failed_unseen(broker: LiveBroker, requester: str, exchange_id: str) -> None:
    with broker.client(requester) as client:
        exchange = client.get(f"/v1/evidence-requests/{exchange_id}").json()
        assert exchange["state"] == "failed" and "evidence" not in exchange
        assert exchange["problem"]["reason"] == "evidence.subject_mismatch"
        assert client.get(f"/v1/evidence-requests/{exchange_id}/evidence").status_code == 409
    entries = log_of(broker, exchange_id)
    assert [(e["event"], e["reason"]) for e in entries] == [
        ("received", None),
        ("routed", None),
        ("failed", "evidence.subject_mismatch"),
    ]
    assert all(e["evidence_digest"] is None for e in entries)


@pytest.fixture(scope="module")
def admin(live_broker: LiveBroker) -> str:
    return live_broker.add_client("admin")


def test_a_push_authority_answering_about_someone_else(
    live_broker: LiveBroker, admin: str, wrong_person: WrongPersonAuthority
) -> None:
    _, ars = register(live_broker, admin, "http_push", public_key_pem(wrong_person.key), wrong_person.endpoint)
    requester = live_broker.add_client("requester", MELDE)
    with live_broker.client(requester) as client:
        answer = client.post("/v1/evidence-requests", json=request_body(jurisdiction=ars, subject=JAN))
    assert answer.status_code == 502, answer.text
    problem = answer.json()
    assert problem["reason"] == "evidence.subject_mismatch"
    assert wrong_person.asked == [problem["exchange"]["id"]]  # it was asked, and answered
    assert_failed_unseen(live_broker, requester, problem["exchange"]["id"])


def test_a_pull_adapter_answering_about_someone_else(live_broker: LiveBroker, admin: str) -> None:
    key = Ed25519PrivateKey.generate()
    authority_id, ars = register(live_broker, admin, "pull", public_key_pem(key))
    adapter = live_broker.add_client("adapter", authority=authority_id)
    requester = live_broker.add_client("requester", MELDE)

    def request() -> httpx.Response:
        with live_broker.client(requester) as client:
            return client.post("/v1/evidence-requests", json=request_body(jurisdiction=ars, subject=JAN))

    with ThreadPoolExecutor(1) as pool, live_broker.client(adapter) as client:
        waiting = pool.submit(request)
        tasks = client.get("/v1/adapter/tasks", params={"wait": 10}).json()["tasks"]
        assert len(tasks) == 1 and tasks[0]["query"]["subject"]["family_name"] == "Schulz"
        task = tasks[0]
        path = f"/v1/adapter/tasks/{task['id']}/result"
        body = meldebescheinigung(erika_resident(), task["query"]["request_id"])
        headers = {"Content-Type": "application/xml"}
        headers |= sign(SignedMessage("application/xml", body, method="POST", path=path), key)
        refused = client.post(path, content=body, headers=headers)
        answered = waiting.result(timeout=30)
    # The adapter is told its answer was refused, the requester that the exchange failed.
    assert refused.status_code == 422 and refused.json()["reason"] == "evidence.subject_mismatch", refused.text
    exchange_id = task["query"]["request_id"]
    assert answered.status_code in (502, 202), answered.text
    assert_failed_unseen(live_broker, requester, exchange_id)
