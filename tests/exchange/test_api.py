"""The exchange API end to end: a real broker process on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from datetime import date
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import create_engine, insert, select, text

from adapters.registers.models import BusinessRegistration, Resident
from broker.keys.store import KeyStore
from broker.seal.xades import verify_sealed_evidence
from tests.conftest import REPO_DIR, LiveBroker, start_broker, stop_process
from tests.consent.support import decide_as_citizen
from tests.specimen import ERIKA, ERIKA_IDNR, GEBURT, GEWERBE, MELDE, request_body


@pytest.fixture(scope="module")
def requester(live_broker: LiveBroker) -> str:
    return live_broker.add_client("requester", MELDE, GEBURT, GEWERBE)


def post(broker: LiveBroker, token: str, body: dict[str, Any], **headers: str) -> Any:
    with broker.client(token) as client:
        return client.post("/v1/evidence-requests", json=body, headers=headers)


def validate_evidence(xml: bytes, broker: LiveBroker, xsd: str) -> etree._Element:
    """The evidence carries the broker's seal, and its signed content is valid against the type's XSD."""
    certificates = [c.certificate for c in KeyStore(broker.keys_dir).sealing_certificates()]
    signed = verify_sealed_evidence(xml, certificates)
    schema = etree.XMLSchema(etree.parse(str(REPO_DIR / "xsd" / xsd)))
    schema.assertValid(signed)
    return signed


def test_erika_meldebescheinigung_happy_path(live_broker: LiveBroker, requester: str) -> None:
    answer = post(live_broker, requester, request_body())
    assert answer.status_code == 200, answer.text
    exchange = answer.json()
    assert exchange["state"] == "delivered"
    assert exchange["authority"] == "melderegister-13004"
    with live_broker.client(requester) as client:
        evidence = client.get(exchange["evidence"]["href"])
        again = client.get(f"/v1/evidence-requests/{exchange['id']}")
    assert evidence.status_code == 200
    assert evidence.headers["content-type"].startswith("application/xml")
    signed = validate_evidence(evidence.content, live_broker, "meldebescheinigung.xsd")
    ns = {"m": "urn:de:nachweis:meldebescheinigung:1", "c": "urn:de:nachweis:common:1"}
    assert signed.findtext("m:Person/c:Familienname", namespaces=ns) == "Mustermann"
    assert signed.findtext("m:Anschrift/m:Ort", namespaces=ns) == "Schwerin"
    assert again.json()["state"] == "delivered"


def test_erika_geburtsurkunde_by_idnr(live_broker: LiveBroker, requester: str) -> None:
    answer = post(live_broker, requester, request_body(GEBURT, subject={"idnr": ERIKA_IDNR}))
    assert answer.status_code == 200, answer.text
    with live_broker.client(requester) as client:
        evidence = client.get(answer.json()["evidence"]["href"])
    signed = validate_evidence(evidence.content, live_broker, "geburtsurkunde.xsd")
    ns = {"g": "urn:de:nachweis:geburtsurkunde:1"}
    assert signed.findtext("g:Kind/g:Geburtsdatum", namespaces=ns) == "1964-08-12"


def test_gewerbeanmeldung_of_a_seeded_business(live_broker: LiveBroker, requester: str) -> None:
    engine = create_engine(live_broker.database_url)
    with engine.connect() as connection:
        owner = connection.execute(select(BusinessRegistration).order_by(BusinessRegistration.id).limit(1)).one()
    engine.dispose()
    subject = {
        "family_name": owner.family_name,
        "given_name": owner.given_name,
        "birth_date": str(owner.birth_date),
    }
    answer = post(
        live_broker,
        requester,
        request_body(GEWERBE, jurisdiction=owner.municipality_ars, subject={"idnr": owner.idnr}),
    )
    assert answer.status_code == 200, answer.text
    with live_broker.client(requester) as client:
        evidence = client.get(answer.json()["evidence"]["href"])
    signed = validate_evidence(evidence.content, live_broker, "gewerbeanmeldung.xsd")
    ns = {"g": "urn:de:nachweis:gewerbeanmeldung:1"}
    assert signed.findtext("g:Registernummer", namespaces=ns) == owner.registration_number
    assert subject["family_name"] in evidence.text


# --- who may ask what ---------------------------------------------------------------------


def test_missing_or_unknown_token_is_401(live_broker: LiveBroker) -> None:
    with live_broker.client() as client:
        assert client.post("/v1/evidence-requests", json=request_body()).json()["reason"] == "auth.required"
    with live_broker.client("bo_not-a-token") as client:
        answer = client.post("/v1/evidence-requests", json=request_body())
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["reason"] == "auth.invalid_token"


def test_other_roles_may_not_request(live_broker: LiveBroker) -> None:
    auditor = live_broker.add_client("auditor")
    answer = post(live_broker, auditor, request_body())
    assert answer.status_code == 403
    assert answer.json()["reason"] == "auth.wrong_role"


def test_requester_without_grant_is_refused_and_refusal_is_logged(live_broker: LiveBroker) -> None:
    only_births = live_broker.add_client("requester", GEBURT)
    answer = post(live_broker, only_births, request_body(MELDE))
    assert answer.status_code == 403
    problem = answer.json()
    assert problem["reason"] == "policy.not_granted"
    assert MELDE in problem["detail"]
    exchange_id = problem["exchange"]["id"]
    assert problem["exchange"]["state"] == "rejected"
    engine = create_engine(live_broker.database_url)
    with engine.connect() as connection:
        events = connection.execute(
            text("SELECT event, body FROM log_entries WHERE exchange_id = :id ORDER BY seq"),
            {"id": exchange_id},
        ).all()
    engine.dispose()
    assert [e.event for e in events] == ["received", "refused"]
    assert b'"reason":"policy.not_granted"' in bytes(events[1].body)


def test_grant_for_one_purpose_only(live_broker: LiveBroker) -> None:
    token = live_broker.add_client("requester", f"{MELDE}=Wohngeldantrag")
    assert post(live_broker, token, request_body(purpose="Wohngeldantrag")).status_code == 200
    refused = post(live_broker, token, request_body(purpose="Kindergeld"))
    assert refused.status_code == 403
    assert refused.json()["reason"] == "policy.not_granted"


@pytest.mark.parametrize(
    ("overrides", "reason", "field"),
    [
        ({"explicit_request": False}, "policy.basis_missing", "explicit_request"),
        ({"legal_basis": None}, "policy.legal_basis_missing", "legal_basis"),
    ],
)
def test_request_needs_consent_or_explicit_request_with_legal_basis(
    live_broker: LiveBroker, requester: str, overrides: dict[str, Any], reason: str, field: str
) -> None:
    answer = post(live_broker, requester, request_body(**overrides))
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["reason"] == reason
    assert problem["errors"][0]["field"] == field
    assert problem["exchange"]["state"] == "rejected"


def test_consent_replaces_explicit_request(live_broker: LiveBroker, requester: str) -> None:
    with live_broker.client(requester) as client:
        granted = client.post(
            "/v1/consents",
            json={
                "subject": ERIKA,
                "evidence_types": [MELDE],
                "purpose": "Wohngeldantrag",
                "valid_until": "2099-01-01T00:00:00Z",
                "max_uses": 1,
            },
        )
        assert granted.status_code == 201, granted.text
        consent_id = granted.json()["id"]
    # The citizen grants the request (tests/consent/test_api.py: nothing rests on it before).
    decide_as_citizen(live_broker, consent_id)
    body = request_body(consent_id=consent_id, explicit_request=False, legal_basis=None)
    assert post(live_broker, requester, body).status_code == 200
    used_up = post(live_broker, requester, body)
    assert used_up.status_code == 403
    assert "used up" in used_up.json()["detail"]


def test_revoked_consent_is_refused(live_broker: LiveBroker, requester: str) -> None:
    with live_broker.client(requester) as client:
        consent_id = client.post(
            "/v1/consents",
            json={
                "subject": ERIKA,
                "evidence_types": [MELDE],
                "purpose": "Wohngeldantrag",
                "valid_until": "2099-01-01T00:00:00Z",
            },
        ).json()["id"]
        decide_as_citizen(live_broker, consent_id)
        assert client.delete(f"/v1/consents/{consent_id}").json()["revoked_at"] is not None
    answer = post(live_broker, requester, request_body(consent_id=consent_id, explicit_request=False))
    assert answer.status_code == 403
    assert "revoked" in answer.json()["detail"]


def test_exchange_of_another_client_is_not_found(live_broker: LiveBroker, requester: str) -> None:
    exchange_id = post(live_broker, requester, request_body()).json()["id"]
    other = live_broker.add_client("requester", MELDE)
    with live_broker.client(other) as client:
        assert client.get(f"/v1/evidence-requests/{exchange_id}").status_code == 404
        assert client.get(f"/v1/evidence-requests/{exchange_id}/evidence").status_code == 404


# --- idempotency ----------------------------------------------------------------------------


def test_same_key_same_body_gives_the_same_exchange_once(live_broker: LiveBroker, requester: str) -> None:
    key = uuid.uuid4().hex
    first = post(live_broker, requester, request_body(), **{"Idempotency-Key": key})
    second = post(live_broker, requester, request_body(), **{"Idempotency-Key": key})
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    engine = create_engine(live_broker.database_url)
    with engine.connect() as connection:
        routed = connection.execute(
            text("SELECT count(*) FROM log_entries WHERE exchange_id = :id AND event = 'routed'"),
            {"id": first.json()["id"]},
        ).scalar_one()
        exchanges = connection.execute(
            text("SELECT count(*) FROM exchanges WHERE idempotency_key = :key"), {"key": key}
        ).scalar_one()
    engine.dispose()
    assert routed == 1
    assert exchanges == 1


def test_same_key_other_body_is_409(live_broker: LiveBroker, requester: str) -> None:
    key = uuid.uuid4().hex
    assert post(live_broker, requester, request_body(), **{"Idempotency-Key": key}).status_code == 200
    conflict = post(live_broker, requester, request_body(purpose="Kindergeld"), **{"Idempotency-Key": key})
    assert conflict.status_code == 409
    assert conflict.json()["reason"] == "idempotency.key_reused"


# --- routing ----------------------------------------------------------------------------------


def test_longest_prefix_routes_to_the_amt(live_broker: LiveBroker, requester: str) -> None:
    answer = post(live_broker, requester, request_body(jurisdiction="130715001001"))
    # The route resolves to the Amt even though Erika is not registered there.
    assert answer.status_code == 404
    assert answer.json()["reason"] == "subject.not_found"
    assert answer.json()["exchange"]["authority"] == "melderegister-130715001"


def test_too_coarse_jurisdiction_asks_for_a_finer_one(live_broker: LiveBroker, requester: str) -> None:
    answer = post(live_broker, requester, request_body(jurisdiction="13071"))
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["reason"] == "jurisdiction.too_coarse"
    assert "130715001" in problem["candidate_prefixes"]


def test_no_route_names_type_and_jurisdiction(live_broker: LiveBroker, requester: str) -> None:
    answer = post(live_broker, requester, request_body(GEBURT, jurisdiction="09162"))
    assert answer.status_code == 404
    problem = answer.json()
    assert problem["reason"] == "route.not_found"
    assert GEBURT in problem["detail"] and "09162" in problem["detail"]


def test_missing_jurisdiction_where_several_authorities_serve(live_broker: LiveBroker, requester: str) -> None:
    body = request_body()
    del body["jurisdiction"]
    answer = post(live_broker, requester, body)
    assert answer.status_code == 422
    assert answer.json()["reason"] == "jurisdiction.required"


def test_unknown_evidence_type(live_broker: LiveBroker, requester: str) -> None:
    answer = post(live_broker, requester, request_body("urn:de:nachweis:fuehrerschein"))
    assert answer.status_code == 422
    assert answer.json()["reason"] == "evidence_type.unknown"


# --- identity matching ----------------------------------------------------------------------


def test_unknown_person_is_404(live_broker: LiveBroker, requester: str) -> None:
    answer = post(live_broker, requester, request_body(subject={**ERIKA, "birth_date": "1964-08-13"}))
    assert answer.status_code == 404
    assert answer.json()["reason"] == "subject.not_found"


def test_two_matching_entries_are_409_until_more_attributes_are_given(live_broker: LiveBroker, requester: str) -> None:
    twins = {"family_name": "Schulz", "given_name": "Jan", "birth_date": "1990-01-01"}
    answer = post(live_broker, requester, request_body(subject=twins))
    assert answer.status_code == 409
    assert answer.json()["reason"] == "subject.ambiguous"
    engine = create_engine(live_broker.database_url)
    with engine.connect() as connection:
        idnr = connection.execute(
            text("SELECT idnr FROM residents WHERE family_name = 'Schulz' AND given_name = 'Jan' AND birth_date = :d"),
            {"d": date(1990, 1, 1)},
        ).first()[0]
    engine.dispose()
    assert post(live_broker, requester, request_body(subject={**twins, "idnr": idnr})).status_code == 200


def test_idnr_that_contradicts_the_names_does_not_match(live_broker: LiveBroker, requester: str) -> None:
    answer = post(live_broker, requester, request_body(subject={"idnr": ERIKA_IDNR, **ERIKA, "given_name": "Max"}))
    assert answer.status_code == 404


def test_case_and_accents_do_not_matter(live_broker: LiveBroker, requester: str) -> None:
    answer = post(live_broker, requester, request_body(subject={**ERIKA, "family_name": "MUSTERMANN "}))
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "subject",
    [
        {"idnr": "12345678990"},  # wrong check digit
        {"idnr": "1234"},
        {"family_name": "Mustermann", "birth_date": "1964-08-12"},  # no given name, no idnr
        {**ERIKA, "birth_date": "12.08.1964"},
    ],
)
def test_unusable_subject_is_422_naming_the_field(
    live_broker: LiveBroker, requester: str, subject: dict[str, str]
) -> None:
    answer = post(live_broker, requester, request_body(subject=subject))
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["reason"] == "request.invalid"
    assert all(e["field"].startswith("subject") for e in problem["errors"])


# --- broken input and broken evidence --------------------------------------------------------


def test_malformed_json_is_400(live_broker: LiveBroker, requester: str) -> None:
    with live_broker.client(requester) as client:
        answer = client.post(
            "/v1/evidence-requests",
            content=b'{"evidence_type": ',
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 400
    assert answer.json()["reason"] == "request.malformed_json"


def test_oversized_body_is_413(live_broker: LiveBroker, requester: str) -> None:
    with live_broker.client(requester) as client:
        answer = client.post(
            "/v1/evidence-requests",
            content=b'{"purpose": "' + b"x" * (11 * 1024 * 1024) + b'"}',
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 413
    assert answer.json()["reason"] == "request.too_large"


def test_schema_invalid_evidence_fails_the_exchange_with_502(live_broker: LiveBroker, requester: str) -> None:
    # A register entry with a broken postal code makes the adapter produce schema-invalid evidence.
    engine = create_engine(live_broker.database_url)
    with engine.begin() as connection:
        connection.execute(
            insert(Resident).values(
                register_id="melderegister-13004",
                idnr=None,
                family_name="Kaputt",
                given_name="Karl",
                family_name_key="kaputt",
                given_name_key="karl",
                birth_name=None,
                birth_date=date(1970, 1, 1),
                birth_place="Schwerin",
                street="Am Markt",
                house_number="1",
                postal_code="19O55",
                municipality="Schwerin",
                municipality_ars="130040000000",
                moved_in=date(2000, 1, 1),
            )
        )
    engine.dispose()
    subject = {"family_name": "Kaputt", "given_name": "Karl", "birth_date": "1970-01-01"}
    answer = post(live_broker, requester, request_body(subject=subject))
    assert answer.status_code == 502
    problem = answer.json()
    assert problem["reason"] == "evidence.invalid"
    assert "Postleitzahl" in problem["detail"]
    assert problem["exchange"]["state"] == "failed"
    with live_broker.client(requester) as client:
        assert client.get(f"/v1/evidence-requests/{problem['exchange']['id']}/evidence").status_code == 409


def test_no_personal_data_in_the_logs(live_broker: LiveBroker, requester: str) -> None:
    assert post(live_broker, requester, request_body()).status_code == 200
    assert post(live_broker, requester, request_body(subject={"idnr": ERIKA_IDNR})).status_code == 200
    assert post(live_broker, requester, request_body(subject={**ERIKA, "given_name": "Erik"})).status_code == 404
    logs = live_broker.logs()
    assert '"request_id"' in logs  # the log is there and structured
    for personal in (
        "Mustermann",
        "Erika",
        "Erik",
        "1964-08-12",
        "12.08.1964",
        ERIKA_IDNR,
        "Gabler",
        "Schulz",
    ):
        assert personal not in logs, f"{personal!r} appears in the broker's log"


def test_evidence_as_json(live_broker: LiveBroker, requester: str) -> None:
    exchange = post(live_broker, requester, request_body()).json()
    with live_broker.client(requester) as client:
        answer = client.get(exchange["evidence"]["href"], params={"format": "json"})
        unknown = client.get(exchange["evidence"]["href"], params={"format": "yaml"})
    assert answer.status_code == 200, answer.text
    text_form = str(answer.json())
    assert "Mustermann" in text_form and "1964-08-12" in text_form
    assert "Signature" not in text_form
    assert unknown.status_code == 422


def test_evidence_is_purged_after_its_retention(
    seeded_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = {"BROKER_EVIDENCE_RETENTION_HOURS": "0", "BROKER_BACKGROUND_INTERVAL_SECONDS": "0.2"}
    process, broker = start_broker(seeded_database_url, tmp_path_factory.mktemp("retention"), env)
    try:
        token = broker.add_client("requester", MELDE)
        exchange = post(broker, token, request_body()).json()
        with broker.client(token) as client:
            gone = client.get(exchange["evidence"]["href"])
        assert gone.status_code == 410
        assert gone.json()["reason"] == "evidence.expired"
        engine = create_engine(broker.database_url)
        deadline = time.monotonic() + 20
        stored: object = b""
        while stored is not None and time.monotonic() < deadline:
            time.sleep(0.2)
            with engine.connect() as connection:
                stored = connection.execute(
                    text("SELECT evidence FROM exchanges WHERE id = :id"), {"id": exchange["id"]}
                ).scalar_one()
        engine.dispose()
        assert stored is None, "the sweep did not drop the evidence"
        with broker.client(token) as client:
            assert client.get(f"/v1/evidence-requests/{exchange['id']}").json()["state"] == "delivered"
    finally:
        stop_process(process)
