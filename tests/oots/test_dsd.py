"""GET /oots/rest/search, the Data Service Directory query, answered from the registry.

Every answer is HTTP 200 with a schema-valid query:QueryResponse that passes the official DSD
rules (tests/oots/support.py); failures carry DSD:ERR codes.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from lxml import etree

from broker.oots.directory import CONTEXT_IDS
from tests.conftest import LiveBroker
from tests.oots.support import (
    EAS,
    GEBURT_CLASSIFICATION,
    GEBURT_DATA_MODEL,
    GEBURT_DATA_SERVICE,
    NS,
    SCHWERIN_LEITWEG_ID,
    EdmRequest,
    Person,
    assert_dsd_valid,
    evidence_of,
    post_edm,
    reason_of,
)

QUERY_ID = "urn:fdc:oots:dsd:ebxml-regrep:queries:dataservices-by-evidencetype-and-jurisdiction"
SEARCH = "/oots/rest/search"


def search(broker: LiveBroker, **params: str) -> etree._Element:
    query: dict[str, Any] = {"queryId": QUERY_ID, "country-code": "DE", **params}
    query = {k.replace("_", "-"): v for k, v in query.items() if v is not None}
    with httpx.Client(base_url=broker.base_url, timeout=30) as client:
        answer = client.get(SEARCH, params=query)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/x-ebrs+xml")
    return assert_dsd_valid(answer.content)


def error_of(root: etree._Element) -> tuple[str, str, str]:
    assert root.get("status") == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
    exception = root.find("rs:Exception", NS)
    assert exception is not None
    assert exception.find("rim:Slot[@name='Reason']", NS) is None  # the reason is in the detail
    return exception.get("code", ""), exception.get(f"{{{NS['xsi']}}}type", ""), reason_of(exception)


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
    # The identifiers and values the rules want: a UUID, the Semantic Repository's classification
    # and data model, upper-case languages, the exchange profile.
    assert found.findtext("sdg:Identifier", namespaces=NS) == GEBURT_DATA_SERVICE
    assert found.findtext("sdg:EvidenceTypeClassification", namespaces=NS) == GEBURT_CLASSIFICATION
    assert [(t.get("lang"), t.text) for t in found.findall("sdg:Title", NS)] == [("DE", "Geburtsurkunde")]
    assert [d.get("lang") for d in found.findall("sdg:Description", NS)] == ["DE"]
    assert found.findtext("sdg:DistributedAs/sdg:ConformsTo", namespaces=NS) == GEBURT_DATA_MODEL
    assert found.findtext("sdg:AuthenticationLevelOfAssurance", namespaces=NS) == "Substantial"
    services = found.findall("sdg:AccessService", NS)
    assert len(services) == 1
    assert services[0].findtext("sdg:ConformsTo", namespaces=NS) == "oots-edm:v1.0"
    publisher = services[0].find("sdg:Publisher", NS)
    assert publisher is not None
    identifier = publisher.find("sdg:Identifier", NS)
    assert identifier is not None and (identifier.get("schemeID"), identifier.text) == (
        f"{EAS}0204",
        SCHWERIN_LEITWEG_ID,
    )
    assert publisher.findtext("sdg:Name", namespaces=NS) == "Standesamt Schwerin"
    assert publisher.find("sdg:Name", NS).get("lang") == "DE"  # type: ignore[union-attr]
    assert publisher.findtext("sdg:Jurisdiction/sdg:AdminUnitLevel2", namespaces=NS) == "DE8"
    assert publisher.findtext("sdg:Jurisdiction/sdg:AdminUnitLevel3", namespaces=NS) == "13004"


def test_the_directory_answer_routes_an_evidence_request(live_broker: LiveBroker, requester: str) -> None:
    root = search(live_broker, evidence_type_classification=GEBURT_CLASSIFICATION, jurisdiction_admin_l3="13004")
    publisher = root.find(".//sdg:AccessService/sdg:Publisher/sdg:Identifier", NS)
    assert publisher is not None and publisher.text
    request = EdmRequest(
        person=Person(place_of_birth=None),
        provider=publisher.text,
        provider_scheme=publisher.get("schemeID", ""),
        classification=GEBURT_CLASSIFICATION,
    )
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
    assert determination.findtext("sdg:JurisdictionContextId", namespaces=NS) == CONTEXT_IDS["PlaceOfBirth"]
    assert [(c.get("lang"), c.text) for c in determination.findall("sdg:JurisdictionContext", NS)] == [
        ("EN", "Place of birth"),
        ("DE", "Geburtsort"),
    ]
    assert determination.findtext("sdg:JurisdictionLevel", namespaces=NS) == "LAU"
    assert [slot.get("name") for slot in exception.findall("rim:Slot", NS)] == [
        "DataServiceEvidenceType",
        "JurisdictionDetermination",
    ]
    logged = [line for line in live_broker.logs().splitlines() if "dsd_error_answered" in line]
    assert any("dsd.jurisdiction_required" in line for line in logged)
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
    assert publisher is not None and publisher.text == "130040000000-MEL-15"  # the Bürgeramt's Leitweg-ID
    # Answered with the Semantic Repository's classification the registry maps the type to.
    classification = root.findtext(".//sdg:DataServiceEvidenceType/sdg:EvidenceTypeClassification", namespaces=NS)
    assert classification is not None and classification.startswith(
        "https://sr.oots.tech.europa.eu/evidencetypeclassifications/DE/"
    )
