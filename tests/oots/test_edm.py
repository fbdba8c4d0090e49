"""The framework-free EDM core (broker/oots/edm.py, dsd.py) and the mapping rules, without a server."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from lxml import etree

from broker.oots import dsd, edm, mapping
from broker.oots.edm import EdmCode, EdmError
from broker.problems import Problem
from broker.registry.service import RegistrySnapshot, read_toml
from tests.conftest import REPO_DIR
from tests.oots.support import NS, SAMPLES, EdmRequest, Person, assert_edm_valid

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> RegistrySnapshot:
    return RegistrySnapshot.from_document(read_toml(REPO_DIR / "broker" / "demo" / "registry-mv.toml"))


def test_requests_are_read_by_namespace_uri_whatever_the_prefixes() -> None:
    request = edm.read_request(etree.fromstring(EdmRequest(provider="standesamt-13004").xml()))
    assert request.specification == "oots-edm:v1.0"
    assert request.procedure_text == "Requesting a birth certificate"
    assert request.requester is not None and request.requester.agent_id == "0096:DK22233223"
    assert request.provider is not None and request.provider.identifier == "standesamt-13004"
    assert request.person is not None and request.person.date_of_birth == date(1964, 8, 12)
    assert request.person.assurance == "high"
    assert request.evidence_type is not None and request.evidence_type.classification == "CertificateOfBirth"
    assert [r.identifier for r in request.requirements] == ["315cfd75-6605-49c4-b0fe-799833b41099"]
    # The same document with the conventional prefixes reads the same.
    sample = edm.read_request(etree.parse(str(SAMPLES / "birth-certificate" / "oots_request.xml")).getroot())
    assert sample.requester is not None and sample.requester.agent_id == "0096:DK22233223"
    assert sample.person is not None and sample.person.place_of_birth == "Hamburg, Germany"
    assert sample.explicit_request_given and not sample.possibility_for_preview


def test_a_prefix_bound_to_another_namespace_is_not_read_as_rim() -> None:
    body = EdmRequest().xml().replace(b'xmlns:r="urn:oasis:names:tc:ebxml-regrep:xsd:rim:4.0"', b'xmlns:r="urn:x"')
    request = edm.read_request(etree.fromstring(body))
    assert request.specification is None and request.person is None


@pytest.mark.parametrize(
    ("reason", "status", "code"),
    [
        ("auth.required", 401, EdmCode.AUTHENTICATION),
        ("auth.wrong_role", 403, EdmCode.AUTHORIZATION),
        ("policy.not_granted", 403, EdmCode.AUTHORIZATION),
        ("preview.declined", 403, EdmCode.AUTHORIZATION),
        ("preview.expired", 410, EdmCode.TIMEOUT),
        ("jurisdiction.too_coarse", 422, EdmCode.INVALID_REQUEST),
        ("subject.ambiguous", 409, EdmCode.NOT_FOUND),
        ("route.not_found", 404, EdmCode.NOT_FOUND),
        ("authority.timeout", 504, EdmCode.TIMEOUT),
        ("exchange.expired", 504, EdmCode.TIMEOUT),
        ("authority.server_error", 502, EdmCode.PROCESSING),
        ("evidence.invalid", 502, EdmCode.PROCESSING),
        ("oots.unsupported_specification", 200, EdmCode.UNSUPPORTED),
        ("something.new", 504, EdmCode.TIMEOUT),
        ("something.new", 500, EdmCode.PROCESSING),
    ],
)
def test_reason_codes_map_onto_edm_codes(reason: str, status: int, code: EdmCode) -> None:
    assert mapping.code_for(reason, status) is code
    assert mapping.edm_error(Problem(status, reason, "x")).code is code


def test_every_edm_error_response_is_schema_valid() -> None:
    broker = edm.Agent("broker.example", edm.UNREGISTERED_SCHEME, (edm.Text("Broker"),), "ERRP", "DE")
    for code in EdmCode:
        body = edm.error_response(
            EdmError(code, "x.y", "message"), request_id="urn:uuid:1", now=NOW, error_provider=broker
        )
        root = assert_edm_valid(body)
        exception = root.find("rs:Exception", NS)
        assert exception is not None and exception.get(f"{{{NS['xsi']}}}type") == code.exception_type
    redirect = edm.PreviewRedirect("https://broker.example/preview/x", (edm.Text("Bitte prüfen", "de"),))
    body = edm.error_response(
        EdmError(EdmCode.AUTHORIZATION, "preview.required", "m", preview=redirect),
        request_id=None,
        now=NOW,
        error_provider=broker,
    )
    exception = assert_edm_valid(body).find("rs:Exception", NS)
    assert exception is not None and exception.get("severity") == edm.SEVERITY_PREVIEW_REQUIRED


def test_multipart_related_names_its_root_and_keeps_bytes_intact() -> None:
    evidence = b"<?xml version='1.0'?><x>\r\n--not-a-boundary\xc3\xa4</x>"
    content_type, body = edm.multipart_related(
        edm.Part("root@x", edm.MEDIA_TYPE, b"<root/>"), [edm.Part("evidence@x", "application/xml", evidence)]
    )
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP
    )
    parts = list(message.iter_parts())
    assert message.get_param("start") == "<root@x>" and message.get_param("type") == edm.MEDIA_TYPE
    assert [p["Content-ID"] for p in parts] == ["<root@x>", "<evidence@x>"]
    assert parts[1].get_content() == evidence


def test_dsd_messages_are_schema_valid() -> None:
    service = dsd.DataServiceEvidenceType(
        "urn:t",
        "C",
        (edm.Text("T", "de"),),
        (dsd.Distribution("application/xml", "urn:ns"),),
        determination=dsd.JurisdictionDetermination("PlaceOfBirth", (edm.Text("Place of birth", "en"),)),
    )
    assert_edm_valid(dsd.query_response([service]))
    for code in dsd.DsdCode:
        assert_edm_valid(dsd.error_response(dsd.DsdError(code, "r", "m", service)))


def person(**fields: object) -> edm.NaturalPerson:
    values: dict[str, object] = {"family_name": "Mustermann", "given_name": "Erika", "date_of_birth": date(1964, 8, 12)}
    values.update(fields)
    return edm.NaturalPerson(**values)  # type: ignore[arg-type]


def test_jurisdiction_from_the_provider_or_the_determining_place(registry: RegistrySnapshot) -> None:
    geburt = registry.evidence_types["urn:de:nachweis:geburtsurkunde"]
    melde = registry.evidence_types["urn:de:nachweis:meldebescheinigung"]
    assert mapping.jurisdiction_for(registry, geburt, person(place_of_birth="Schwerin, Germany"), None) == "13004"
    assert mapping.jurisdiction_for(registry, geburt, person(place_of_birth="SCHWERIN"), None) == "13004"
    provider = edm.Agent("standesamt-13071")
    assert mapping.jurisdiction_for(registry, geburt, person(place_of_birth="Schwerin"), provider) == "13071"
    address = edm.Address(post_city_name="Schwerin", admin_unit_level1="DE")
    assert mapping.jurisdiction_for(registry, melde, person(current_address=address), None) == "13004"
    # "Schwerinsburg" is not Schwerin: whole words only.
    with pytest.raises(Problem) as elsewhere:
        mapping.jurisdiction_for(registry, geburt, person(place_of_birth="Schwerinsburg"), None)
    assert elsewhere.value.reason == "route.not_found"
    with pytest.raises(Problem) as missing:
        mapping.jurisdiction_for(registry, geburt, person(), None)
    assert missing.value.reason == "jurisdiction.required"


def test_subject_mapping(registry: RegistrySnapshot) -> None:
    subject = mapping.subject_of(
        person(identifier="DK/DE/12345678995", place_of_birth="Schwerin, Germany", birth_name="Gabler")
    )
    assert (subject.idnr, subject.birth_place, subject.birth_name) == ("12345678995", "Schwerin", "Gabler")
    assert mapping.subject_of(person(identifier="DK/DE/12345678990")).idnr is None  # bad check digit
    assert mapping.subject_of(person(identifier="DE/DK/12345678995")).idnr is None  # not for Germany
    with pytest.raises(EdmError) as invalid:
        mapping.subject_of(person(family_name="x" * 201))
    assert invalid.value.reason == "oots.person_invalid"


def test_requester_agents_compare_by_bare_scheme() -> None:
    agent = edm.Agent("DK22233223", "urn:cef.eu:names:identifier:EAS:0096")
    assert mapping.requester_matches("0096:DK22233223", agent)
    assert mapping.requester_matches("urn:cef.eu:names:identifier:EAS:0096:DK22233223", agent)
    assert not mapping.requester_matches("0096:DK22233224", agent)
    assert not mapping.requester_matches("0190:DK22233223", agent)
    assert not mapping.requester_matches(None, agent)


def test_person_levels_of_assurance() -> None:
    assert person(level_of_assurance="http://eidas.europa.eu/LoA/substantial").assurance == "substantial"
    assert person(level_of_assurance="High").assurance == "high"
    assert person(level_of_assurance="very").assurance is None
    assert Person().level_of_assurance == "High"


def test_sample_answers_of_the_shared_set_are_valid_for_the_oracle() -> None:
    for sample in ("birth-certificate/oots_response.xml", "secondary-education/oots_exception_preview.xml"):
        assert_edm_valid(Path(SAMPLES / sample).read_bytes())
