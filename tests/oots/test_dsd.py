"""GET /oots/rest/search, the Data Service Directory query, answered from the registry.

Every answer is HTTP 200 with a schema-valid query:QueryResponse; failures carry DSD:ERR codes.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from lxml import etree

from tests.conftest import LiveBroker
from tests.oots.support import NS, EdmRequest, Person, assert_edm_valid, evidence_of, post_edm

QUERY_ID = "urn:fdc:oots:dsd:ebxml-regrep:queries:dataservices-by-evidencetype-and-jurisdiction"
SEARCH = "/oots/rest/search"


def search(broker: LiveBroker, **params: str) -> etree._Element:
    query: dict[str, Any] = {"queryId": QUERY_ID, "country-code": "DE", **params}
    query = {k.replace("_", "-"): v for k, v in query.items() if v is not None}
    with httpx.Client(base_url=broker.base_url, timeout=30) as client:
        answer = client.get(SEARCH, params=query)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/x-ebrs+xml")
    return assert_edm_valid(answer.content)


def error_of(root: etree._Element) -> tuple[str, str, str]:
    assert root.get("status") == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
    exception = root.find("rs:Exception", NS)
    assert exception is not None
    reason = exception.findtext("rim:Slot[@name='Reason']/rim:SlotValue/rim:Value", namespaces=NS)
    return exception.get("code", ""), exception.get(f"{{{NS['xsi']}}}type", ""), reason or ""


def test_a_fine_enough_jurisdiction_names_one_data_service(live_broker: LiveBroker) -> None:
    root = search(live_broker, evidence_type_classification="CertificateOfBirth", jurisdiction_admin_l3="13004")
    assert root.get("status") == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    assert root.get("totalResultCount") == "1"
    found = root.find(
        "rim:RegistryObjectList/rim:RegistryObject/rim:Slot[@name='DataServiceEvidenceType']"
        "/rim:SlotValue/sdg:DataServiceEvidenceType",
        NS,
    )
    assert found is not None
    assert found.findtext("sdg:Identifier", namespaces=NS) == "urn:de:nachweis:geburtsurkunde"
    assert found.findtext("sdg:EvidenceTypeClassification", namespaces=NS) == "CertificateOfBirth"
    assert found.findtext("sdg:AuthenticationLevelOfAssurance", namespaces=NS) == "Substantial"
    services = found.findall("sdg:AccessService", NS)
    assert len(services) == 1
    publisher = services[0].find("sdg:Publisher", NS)
    assert publisher is not None
    assert publisher.findtext("sdg:Identifier", namespaces=NS) == "standesamt-13004"
    assert publisher.findtext("sdg:Name", namespaces=NS) == "Standesamt Schwerin"
    assert publisher.findtext("sdg:Jurisdiction/sdg:AdminUnitLevel2", namespaces=NS) == "DE8"
    assert publisher.findtext("sdg:Jurisdiction/sdg:AdminUnitLevel3", namespaces=NS) == "13004"


def test_the_directory_answer_routes_an_evidence_request(live_broker: LiveBroker, requester: str) -> None:
    root = search(live_broker, evidence_type_classification="CertificateOfBirth", jurisdiction_admin_l3="13004")
    publisher = root.find(".//sdg:AccessService/sdg:Publisher/sdg:Identifier", NS)
    assert publisher is not None and publisher.text
    request = EdmRequest(person=Person(place_of_birth=None), provider=publisher.text)
    with live_broker.client(requester) as client:
        evidence_of(post_edm(client, request.xml()))


@pytest.mark.parametrize("l2", [None, "DE8", "DE80", "13"])
def test_several_authorities_need_the_users_place_of_birth(live_broker: LiveBroker, l2: str | None) -> None:
    root = search(live_broker, evidence_type_classification="CertificateOfBirth", jurisdiction_admin_l2=l2)  # type: ignore[arg-type]
    assert error_of(root) == ("DSD:ERR:0005", "rs:ObjectNotFoundExceptionType", "dsd.jurisdiction_required")
    exception = root.find("rs:Exception", NS)
    assert exception is not None
    assert (
        exception.get("severity") == "urn:sr.oots.tech.europa.eu:codes:ErrorSeverity:DSDErrorResponse:AdditionalInput"
    )
    determination = exception.find(
        "rim:Slot[@name='JurisdictionDetermination']/rim:SlotValue/sdg:EvidenceProviderJurisdictionDetermination", NS
    )
    assert determination is not None
    assert determination.findtext("sdg:JurisdictionContextId", namespaces=NS) == "PlaceOfBirth"
    assert (
        exception.find("rim:Slot[@name='DataServiceEvidenceType']/rim:SlotValue/sdg:DataServiceEvidenceType", NS)
        is not None
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"evidence_type_classification": "MarriageCertificate"}, ("DSD:ERR:0002", "dsd.evidence_type_unknown")),
        (
            {"evidence_type_classification": "CertificateOfBirth", "country_code": "FR"},
            ("DSD:ERR:0001", "dsd.no_data_service"),
        ),
        (
            {"evidence_type_classification": "CertificateOfBirth", "jurisdiction_admin_l3": "09162"},
            ("DSD:ERR:0001", "dsd.no_data_service"),
        ),
        (
            {"evidence_type_classification": "CertificateOfBirth", "queryId": "urn:example:other"},
            ("DSD:ERR:0004", "dsd.query_unknown"),
        ),
        ({"evidence_type_classification": None}, ("DSD:ERR:0003", "dsd.parameter_missing")),
        (
            {"evidence_type_classification": "CertificateOfBirth", "jurisdiction_admin_l2": "FR10"},
            ("DSD:ERR:0006", "dsd.jurisdiction_invalid"),
        ),
    ],
    ids=[
        "unknown-type",
        "other-country",
        "no-authority-there",
        "unknown-query",
        "missing-parameter",
        "bad-jurisdiction",
    ],
)
def test_directory_failures(live_broker: LiveBroker, params: dict[str, str], expected: tuple[str, str]) -> None:
    code, _, reason = error_of(search(live_broker, **params))
    assert (code, reason) == expected


def test_the_broker_type_id_works_as_classification(live_broker: LiveBroker) -> None:
    root = search(
        live_broker,
        evidence_type_classification="urn:de:nachweis:meldebescheinigung",
        jurisdiction_admin_l3="130040000000",
    )
    publisher = root.find(".//sdg:AccessService/sdg:Publisher/sdg:Identifier", NS)
    assert publisher is not None and publisher.text == "melderegister-13004"
