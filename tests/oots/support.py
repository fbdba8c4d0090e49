"""Helpers for the OOTS gateway tests: EDM requests, an independent oracle, answer parsing.

The oracle compiles the official EDM v1 schemas from ``../shared/oots/xsd`` with lxml through
a wrapper that imports every namespace from its local file, independently of the broker's own
schema catalogue, so a response the broker got wrong cannot pass because of the same mistake.
Then it runs the official OOTS business rules from ``../shared/oots/sch`` (the -S and -C files
of the message's kind, through ``broker.xml.schematron``): an answer must break none, except
the two :func:`accepted` names with the reason why, and a failure names the rule ids.

Requests are written with prefixes other senders might use (``q``, ``r``, a default namespace
for the SDG elements): the gateway must read them by namespace URI.
"""

from __future__ import annotations

import email
import email.policy
import urllib.parse
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from email.message import EmailMessage, MIMEPart
from functools import cache
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx
from lxml import etree

from broker.xml import schematron
from tests.conftest import SHARED_DIR

QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:4.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:4.0"
SDG = "http://data.europa.eu/p4s"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XLINK = "http://www.w3.org/1999/xlink"
NS = {"query": QUERY, "rim": RIM, "rs": RS, "sdg": SDG, "xsi": XSI, "xlink": XLINK}
MEDIA_TYPE = "application/x-ebrs+xml"
GEBURT = "urn:de:nachweis:geburtsurkunde"
MELDE = "urn:de:nachweis:meldebescheinigung"
DK_AGENT = "0096:DK22233223"
# The demo registry's OOTS data of the Geburtsurkunde and the Standesamt Schwerin (golden values).
GEBURT_CLASSIFICATION = (
    "https://sr.oots.tech.europa.eu/evidencetypeclassifications/DE/f86d3ac1-3076-5813-beba-0f8917c45da3"
)
GEBURT_DATA_MODEL = "https://sr.oots.tech.europa.eu/distributions/de-geburtsurkunde-1.0"
GEBURT_DATA_SERVICE = "2af27699-f131-4411-8fdb-9e8cd4e8bded"
SCHWERIN_LEITWEG_ID = "13004-STA-20"
PREVIEW_REQUIRED = "urn:sr.oots.tech.europa.eu:codes:ErrorSeverity:EDMErrorResponse:PreviewRequired"
ERROR_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
UNREGISTERED = "urn:oasis:names:tc:ebcore:partyid-type:unregistered"
EAS = "urn:cef.eu:names:identifier:EAS:"
OOTS_XSD = SHARED_DIR / "oots" / "xsd"
OOTS_RULES = SHARED_DIR / "oots" / "sch"
SAMPLES = SHARED_DIR / "oots" / "samples" / "exchange"
EDM_KINDS = {schematron.MessageKind.EVIDENCE_RESPONSE, schematron.MessageKind.EVIDENCE_ERROR}
DSD_KINDS = {schematron.MessageKind.DSD_RESPONSE, schematron.MessageKind.DSD_ERROR}

_IMPORTS = (
    ("http://www.w3.org/XML/1998/namespace", "xml/xml.xsd"),
    ("http://www.w3.org/1999/xlink", "xml/xlink.xsd"),
    ("http://www.w3.org/2005/08/addressing", "xml/ws-addr.xsd"),
    (RIM, "regrep4/rim.xsd"),
    (RS, "regrep4/rs.xsd"),
    (QUERY, "regrep4/query.xsd"),
    (SDG, "sdg/SDG-GenericMetadataProfile-v1.0.0.xsd"),
)


@cache
def edm_schema() -> etree.XMLSchema:
    # Imported first with local files, the namespaces the SDG schemas import by remote URL are
    # already known, so libxml2 never tries the network (which no_network forbids anyway).
    body = "".join(f'<xs:import namespace="{ns}" schemaLocation="{(OOTS_XSD / p).as_uri()}"/>' for ns, p in _IMPORTS)
    wrapper = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{body}</xs:schema>'
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.fromstring(wrapper.encode(), parser, base_url=str(OOTS_XSD / "wrapper.xsd")))


def assert_edm_valid(
    xml: bytes, *, rules: bool = True, allow: Collection[str] = (), kinds: Collection[str] = EDM_KINDS
) -> etree._Element:
    """The root of ``xml``, valid against the EDM v1 schemas and, with ``rules``, a message of one
    of ``kinds`` that passes the official rules (``allow``: rule ids the caller says, and says
    why, the message may break because of what it answers)."""
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    schema = edm_schema()
    assert schema.validate(root), f"not schema-valid: {schema.error_log.last_error}\n{xml[:3000]!r}"
    if rules:
        assert_rules_pass(xml, root, allow, kinds)
    return root


def assert_dsd_valid(xml: bytes, *, allow: Collection[str] = ()) -> etree._Element:
    """A Data Service Directory answer: schema-valid, and passing the DSD rules of its kind."""
    return assert_edm_valid(xml, allow=allow, kinds=DSD_KINDS)


def assert_rules_pass(xml: bytes, root: etree._Element, allow: Collection[str], kinds: Collection[str]) -> None:
    verdict = schematron.check_message(xml, OOTS_RULES)
    assert verdict.kind in kinds, f"a {verdict.kind} where one of {sorted(kinds)} was expected"
    broken = [f for f in verdict.failures if f.blocking and f.rule_id not in allow and not accepted(f, root)]
    assert not broken, f"breaks the OOTS rules {', '.join(sorted({f.rule_id for f in broken}))} " + (
        f"({', '.join(verdict.rule_sets)}):\n"
        + "\n".join(f"{f.rule_id} at {f.location}: {f.message[:300]}" for f in broken)
        + f"\n{xml[:3000]!r}"
    )


def accepted(failure: schematron.Failure, root: etree._Element) -> bool:
    """The one rule the test brokers' answers knowingly break, and only where that is why:

    R-EDM-ERR-C019 wants an https:// PreviewLocation. Outside development the broker refuses to
    start without an https public URL; the test brokers run in development on loopback http.
    Accepted for http locations on a loopback host only.
    """
    exception = root.find("rs:Exception", NS)
    if exception is None or failure.rule_id != "R-EDM-ERR-C019":
        return False
    location = urllib.parse.urlsplit(
        exception.findtext("rim:Slot[@name='PreviewLocation']/rim:SlotValue/rim:Value", "", NS)
    )
    return location.scheme == "http" and location.hostname in ("127.0.0.1", "localhost", "::1")


@dataclass
class Person:
    family_name: str = "Mustermann"
    given_name: str = "Erika"
    date_of_birth: str = "1964-08-12"
    place_of_birth: str | None = "Schwerin"
    level_of_assurance: str | None = "High"
    identifier: str | None = "DK/DE/123456789"  # XX/YY/ and nine characters, as the rules want
    city: str | None = None  # CurrentAddress/PostCityName


@dataclass
class EdmRequest:
    """The parts of an EDM v1 evidence request the tests vary."""

    id: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")
    specification: str | None = "oots-edm:v1.0"
    procedure: str | None = "Requesting a birth certificate"
    possibility_for_preview: bool = False
    explicit_request: bool = True
    preview_location: str | None = None
    requester: str = DK_AGENT
    provider: str | None = None  # an authority id, or its identifier as the DSD publishes it …
    provider_scheme: str = UNREGISTERED  # … with the scheme the DSD publishes
    person: Person | None = field(default_factory=Person)
    legal_person: bool = False
    classification: str = "CertificateOfBirth"
    type_identifier: str = "2af27699-f131-4411-8fdb-9e8cd4e8bded"
    # The language of every text; the rules want the code list's upper case ("EN").
    lang: str = "en"
    # Further EvidenceRequester agents named before ``requester`` (an intermediary platform).
    intermediaries: tuple[str, ...] = ()
    formats: tuple[str, ...] = ("application/xml",)  # DistributedAs/Format, in order

    def xml(self) -> bytes:
        def slot(name: str, value_type: str, inner: str) -> str:
            return f'<r:Slot name="{name}"><r:SlotValue xsi:type="r:{value_type}">{inner}</r:SlotValue></r:Slot>'

        def value(text: str) -> str:
            return f"<r:Value>{escape(text)}</r:Value>"

        scheme, _, identifier = self.requester.rpartition(":")
        top = []
        if self.specification is not None:
            top.append(slot("SpecificationIdentifier", "StringValueType", value(self.specification)))
        top.append(slot("IssueDateTime", "DateTimeValueType", value("2026-01-15T10:00:00Z")))
        if self.procedure is not None:
            localized = f'<r:LocalizedString xml:lang="{self.lang}" value={quoteattr(self.procedure)}/>'
            top.append(slot("Procedure", "InternationalStringValueType", f"<r:Value>{localized}</r:Value>"))
        top.append(slot("PossibilityForPreview", "BooleanValueType", value(str(self.possibility_for_preview).lower())))
        top.append(slot("ExplicitRequestGiven", "BooleanValueType", value(str(self.explicit_request).lower())))
        if self.preview_location is not None:
            top.append(slot("PreviewLocation", "StringValueType", value(self.preview_location)))
        requirement = (
            '<r:Element xsi:type="r:AnyValueType"><Requirement><Identifier>315cfd75-6605-49c4-b0fe-799833b41099'
            f'</Identifier><Name lang="{self.lang}">Proof of Birth</Name></Requirement></r:Element>'
        )
        top.append(slot("Requirements", "CollectionValueType", requirement))
        agent = (
            f'<r:Element xsi:type="r:AnyValueType"><Agent><Identifier schemeID={quoteattr(scheme)}>'
            f'{escape(identifier)}</Identifier><Name lang="{self.lang}">Denmark University Portal</Name>'
            "<Address><AdminUnitLevel1>DK</AdminUnitLevel1></Address>"
            "<Classification>ER</Classification></Agent></r:Element>"
        )
        for other in reversed(self.intermediaries):
            other_scheme, _, other_id = other.rpartition(":")
            agent = (
                f'<r:Element xsi:type="r:AnyValueType"><Agent><Identifier schemeID={quoteattr(other_scheme)}>'
                f'{escape(other_id)}</Identifier><Name lang="{self.lang}">Intermediary platform</Name>'
                "</Agent></r:Element>"
            ) + agent
        top.append(slot("EvidenceRequester", "CollectionValueType", agent))
        if self.provider is not None:
            provider = (
                f"<Agent><Identifier schemeID={quoteattr(self.provider_scheme)}>"
                f"{escape(self.provider)}</Identifier><Name>Provider</Name></Agent>"
            )
            top.append(slot("EvidenceProvider", "AnyValueType", provider))
        query = []
        if self.person is not None:
            p = self.person
            parts = []
            if p.level_of_assurance:
                parts.append(f"<LevelOfAssurance>{escape(p.level_of_assurance)}</LevelOfAssurance>")
            if p.identifier:
                parts.append(f'<Identifier schemeID="eidas">{escape(p.identifier)}</Identifier>')
            parts += [
                f"<FamilyName>{escape(p.family_name)}</FamilyName>",
                f"<GivenName>{escape(p.given_name)}</GivenName>",
                f"<DateOfBirth>{p.date_of_birth}</DateOfBirth>",
            ]
            if p.place_of_birth:
                parts.append(f"<PlaceOfBirth>{escape(p.place_of_birth)}</PlaceOfBirth>")
            if p.city:
                parts.append(
                    f"<CurrentAddress><PostCityName>{escape(p.city)}</PostCityName>"
                    "<AdminUnitLevel1>DE</AdminUnitLevel1></CurrentAddress>"
                )
            query.append(slot("NaturalPerson", "AnyValueType", f"<Person>{''.join(parts)}</Person>"))
        if self.legal_person:
            query.append(
                slot("LegalPerson", "AnyValueType", "<LegalPerson><LegalName>ACME GmbH</LegalName></LegalPerson>")
            )
        evidence = (
            f"<DataServiceEvidenceType><Identifier>{escape(self.type_identifier)}</Identifier>"
            f"<EvidenceTypeClassification>{escape(self.classification)}</EvidenceTypeClassification>"
            f'<Title lang="{self.lang}">Certificate of Birth</Title>'
            + "".join(f"<DistributedAs><Format>{escape(f)}</Format></DistributedAs>" for f in self.formats)
            + "</DataServiceEvidenceType>"
        )
        query.append(slot("EvidenceRequest", "AnyValueType", evidence))
        document = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<q:QueryRequest xmlns:q="{QUERY}" xmlns:r="{RIM}" xmlns="{SDG}" xmlns:xsi="{XSI}"'
            f" id={quoteattr(self.id)}>"
            + "".join(top)
            + '<q:ResponseOption returnType="LeafClassWithRepositoryItem"/>'
            + '<q:Query queryDefinition="DocumentQuery">'
            + "".join(query)
            + "</q:Query></q:QueryRequest>"
        )
        return document.encode("utf-8")


def post_edm(client: httpx.Client, body: bytes, media_type: str = MEDIA_TYPE) -> httpx.Response:
    return client.post("/oots/edm", content=body, headers={"Content-Type": media_type})


@dataclass
class Failure:
    root: etree._Element
    code: str
    reason: str
    severity: str
    exception_type: str
    slots: dict[str, Any]


def slot_values(parent: etree._Element) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for slot in parent.findall("rim:Slot", NS):
        value = slot.find("rim:SlotValue", NS)
        assert value is not None
        strings = value.findall("rim:Value/rim:LocalizedString", NS)
        if strings:
            values[slot.get("name", "")] = {
                s.get("{http://www.w3.org/XML/1998/namespace}lang"): s.get("value") for s in strings
            }
        else:
            values[slot.get("name", "")] = value.findtext("rim:Value", namespaces=NS) or value
    return values


def reason_of(exception: etree._Element) -> str:
    """The broker's reason code: the rs:Exception's ``detail``, up to any ": " that adds detail."""
    return exception.get("detail", "").partition(": ")[0]


def failure_of(answer: httpx.Response, status: int = 200, allow: Collection[str] = ()) -> Failure:
    """The single rs:Exception of a schema-valid Failure response that passes the rules."""
    assert answer.status_code == status, (answer.status_code, answer.text[:2000])
    assert answer.headers["content-type"].startswith(MEDIA_TYPE), answer.headers["content-type"]
    root = assert_edm_valid(answer.content, allow=allow)
    assert root.tag == f"{{{QUERY}}}QueryResponse"
    assert root.get("status") == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
    exceptions = root.findall("rs:Exception", NS)
    assert len(exceptions) == 1
    exception = exceptions[0]
    assert exception.get("message")
    return Failure(
        root,
        exception.get("code", ""),
        reason_of(exception),
        exception.get("severity", ""),
        exception.get(f"{{{XSI}}}type", ""),
        slot_values(exception),
    )


@dataclass
class Evidence:
    root: etree._Element
    evidence: bytes
    evidence_part: MIMEPart


def evidence_of(answer: httpx.Response) -> Evidence:
    """A multipart/related success: the schema-valid root part and the part it references."""
    assert answer.status_code == 200, answer.text[:3000]
    content_type = answer.headers["content-type"]
    assert content_type.startswith("multipart/related"), content_type
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + answer.content, policy=email.policy.HTTP
    )
    assert isinstance(message, EmailMessage)
    parts = list(message.iter_parts())
    start = message.get_param("start")
    assert message.get_param("type") == MEDIA_TYPE
    by_id = {str(part["Content-ID"]): part for part in parts}
    root_part = by_id[str(start)]
    assert root_part.get_content_type() == MEDIA_TYPE
    root = assert_edm_valid(root_part.get_content())
    assert root.get("status") == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    reference = root.find("rim:RegistryObjectList/rim:RegistryObject/rim:RepositoryItemRef", NS)
    assert reference is not None
    href = reference.get(f"{{{XLINK}}}href", "")
    assert href.startswith("cid:")
    evidence_part = by_id[f"<{href[4:]}>"]
    assert evidence_part.get_content_type() == "application/xml"
    return Evidence(root, evidence_part.get_content(), evidence_part)


def no_evidence_of(answer: httpx.Response) -> etree._Element:
    """A success without evidence (the EC test cases TC02 and TC08): a rule-conformant
    QueryResponse, status Success, with an empty RegistryObjectList, and no multipart."""
    assert answer.status_code == 200, answer.text[:3000]
    assert answer.headers["content-type"].startswith(MEDIA_TYPE), answer.headers["content-type"]
    root = assert_edm_valid(answer.content)
    assert root.get("status") == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    objects = root.find("rim:RegistryObjectList", NS)
    assert objects is not None and len(objects) == 0
    return root
