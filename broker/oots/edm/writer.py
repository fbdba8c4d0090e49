"""Writing ``query:QueryResponse``s: the evidence response, the error response, and the RegRep
building blocks they (and the Data Service Directory's answers) are made of.

Outgoing documents bind the conventional prefixes (``query``, ``rim``, ``rs``, ``sdg``,
``xsi``, ``xlink``), which the ``xsi:type`` values they carry rely on.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from lxml import etree

from broker.oots.edm.vocabulary import (
    DEFAULT_SPECIFICATION,
    FAILURE,
    NSMAP,
    QUERY_NS,
    RIM_NS,
    RS_NS,
    SDG_NS,
    SUCCESS,
    UNREGISTERED_SCHEME,
    XLINK_NS,
    XML_NS,
    XSI_NS,
    Address,
    Agent,
    EdmError,
    NaturalPerson,
    Text,
    exception_detail,
    language_code,
    pick_text,
    qualified_scheme,
)

# A QueryRequest id in the form the rules want (RFC 4122 UUID URN).
_REQUEST_ID = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)

# Who an error answers when the request could not be read or named no EvidenceRequester: the
# rules want the slot in every error response, so it says "unknown" rather than going missing.
UNKNOWN_REQUESTER = Agent("unknown", UNREGISTERED_SCHEME, (Text("Unknown evidence requester", "EN"),))


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def sub(parent: etree._Element, ns: str, tag: str, text: str | None = None, **attrib: str | None) -> etree._Element:
    element = etree.SubElement(parent, _q(ns, tag), {k: v for k, v in attrib.items() if v is not None})
    if text is not None:
        element.text = text
    return element


def add_slot(parent: etree._Element, name: str, value_type: str) -> etree._Element:
    """A slot with its value of ``value_type`` (``rim:…ValueType``); returns the SlotValue."""
    slot = sub(parent, RIM_NS, "Slot", name=name)
    value = sub(slot, RIM_NS, "SlotValue")
    value.set(_q(XSI_NS, "type"), f"rim:{value_type}")
    return value


def add_string_slot(parent: etree._Element, name: str, text: str) -> None:
    sub(add_slot(parent, name, "StringValueType"), RIM_NS, "Value", text)


def add_datetime_slot(parent: etree._Element, name: str, moment: datetime) -> None:
    sub(add_slot(parent, name, "DateTimeValueType"), RIM_NS, "Value", moment.isoformat(timespec="seconds"))


def add_international_slot(parent: etree._Element, name: str, texts: Sequence[Text]) -> None:
    value = sub(add_slot(parent, name, "InternationalStringValueType"), RIM_NS, "Value")
    for text in texts:
        localized = sub(value, RIM_NS, "LocalizedString", value=text.value[:1024])
        lang = language_code(text.lang)
        if lang:
            localized.set(_q(XML_NS, "lang"), lang)


def add_any_slot(parent: etree._Element, name: str) -> etree._Element:
    """An AnyValueType slot; the caller appends the one element it holds."""
    return add_slot(parent, name, "AnyValueType")


def add_collection_slot(parent: etree._Element, name: str) -> etree._Element:
    """A CollectionValueType slot with one AnyValueType element; the caller appends what it holds
    (the rules want some slots, e.g. a response's EvidenceProvider, as collections)."""
    element = sub(add_slot(parent, name, "CollectionValueType"), RIM_NS, "Element")
    element.set(_q(XSI_NS, "type"), "rim:AnyValueType")
    return element


def add_agent(
    parent: etree._Element, agent: Agent, name: str = "Agent", *, identity_only: bool = False
) -> etree._Element:
    """An sdg:Agent (or ``name``): its identifier with the scheme as the rules write it, names
    with upper-case languages, and, unless ``identity_only`` (the EvidenceRequester of a response
    carries its Identifier and Name only), address and classification."""
    element = sub(parent, SDG_NS, name)
    sub(element, SDG_NS, "Identifier", agent.identifier, schemeID=qualified_scheme(agent.scheme))
    for text in agent.names or (Text(agent.identifier),):
        sub(element, SDG_NS, "Name", text.value, lang=language_code(text.lang))
    if identity_only:
        return element
    if agent.country:
        address = sub(element, SDG_NS, "Address")
        sub(address, SDG_NS, "AdminUnitLevel1", agent.country)
    if agent.classification:
        sub(element, SDG_NS, "Classification", agent.classification)
    return element


def is_request_id(value: str) -> bool:
    """Whether ``value`` is a request id in the form the rules want (``urn:uuid:`` + RFC 4122)."""
    return _REQUEST_ID.match(value) is not None


def new_response(request_id: str | None, status: str, specification: str | None) -> etree._Element:
    root = etree.Element(_q(QUERY_NS, "QueryResponse"), nsmap=NSMAP)
    if request_id:
        root.set("requestId", request_id)
    root.set("status", status)
    if specification is not None:
        add_string_slot(root, "SpecificationIdentifier", specification)
    return root


def serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def error_response(
    error: EdmError,
    *,
    request_id: str | None,
    now: datetime,
    error_provider: Agent,
    requester: Agent | None = None,
    specification: str = DEFAULT_SPECIFICATION,
    response_id: str | None = None,
) -> bytes:
    """A QueryResponse with status Failure and exactly one rs:Exception.

    A request id that is not the urn:uuid the rules want is not echoed (an error may carry none;
    one in another form would break R-EDM-ERR-S004); such a request is refused anyway.
    """
    if request_id is not None and not is_request_id(request_id):
        request_id = None
    root = new_response(request_id, FAILURE, specification)
    add_string_slot(root, "EvidenceResponseIdentifier", response_id or str(uuid.uuid4()))
    add_agent(add_any_slot(root, "ErrorProvider"), error_provider)
    add_agent(add_any_slot(root, "EvidenceRequester"), requester or UNKNOWN_REQUESTER, identity_only=True)
    exception = sub(root, RS_NS, "Exception", severity=error.severity, message=error.message[:1024], code=error.code)
    exception.set(_q(XSI_NS, "type"), error.code.exception_type)
    # The reason code leads the detail: the rules allow no slot of the broker's own in rs:Exception.
    exception.set("detail", exception_detail(error.reason, error.detail)[:4000])
    add_datetime_slot(exception, "Timestamp", now)
    if error.preview is not None:
        add_string_slot(exception, "PreviewLocation", error.preview.location)
        add_international_slot(exception, "PreviewDescription", error.preview.description)
        add_string_slot(exception, "PreviewMethod", error.preview.method)
    return serialise(root)


@dataclass(frozen=True)
class EvidenceMetadata:
    """What the response says about one evidence document (the ``EvidenceMetadata`` slot)."""

    identifier: str
    person: NaturalPerson
    issuing_authority: Agent
    classification: str
    titles: tuple[Text, ...]
    issuing_date: date
    media_type: str
    conforms_to: str | None  # the evidence type's data model (Semantic Repository distribution)
    content_id: str  # the MIME Content-ID of the evidence part, without angle brackets
    registry_object_id: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")
    descriptions: tuple[Text, ...] = ()  # of the evidence type (IsConformantTo/Description)
    # RepositoryItemRef/@xlink:title where it is not the type's title: "HumanReadableVersion"
    # marks the PDF that accompanies a structured document (EDM v1 has no element for it).
    repository_item_title: str | None = None


def evidence_response(
    *,
    request_id: str,
    now: datetime,
    provider: Agent,
    requester: Agent | None,
    evidence: Sequence[EvidenceMetadata],
    specification: str = DEFAULT_SPECIFICATION,
    response_id: str | None = None,
) -> bytes:
    """A QueryResponse with status Success whose registry objects reference the evidence parts by cid:."""
    root = new_response(request_id, SUCCESS, specification)
    add_string_slot(root, "EvidenceResponseIdentifier", response_id or str(uuid.uuid4()))
    add_datetime_slot(root, "IssueDateTime", now)
    add_agent(add_collection_slot(root, "EvidenceProvider"), provider)
    add_agent(add_any_slot(root, "EvidenceRequester"), requester or UNKNOWN_REQUESTER, identity_only=True)
    objects = sub(root, RIM_NS, "RegistryObjectList")
    for item in evidence:
        registry_object = sub(objects, RIM_NS, "RegistryObject", id=item.registry_object_id)
        registry_object.set(_q(XSI_NS, "type"), "rim:ExtrinsicObjectType")
        _add_evidence_metadata(add_any_slot(registry_object, "EvidenceMetadata"), item)
        reference = sub(registry_object, RIM_NS, "RepositoryItemRef")
        reference.set(_q(XLINK_NS, "href"), f"cid:{item.content_id}")
        title = item.repository_item_title or pick_text(item.titles) or item.classification
        reference.set(_q(XLINK_NS, "title"), title)
    return serialise(root)


def _add_evidence_metadata(parent: etree._Element, item: EvidenceMetadata) -> None:
    evidence = sub(parent, SDG_NS, "Evidence")
    sub(evidence, SDG_NS, "Identifier", item.identifier)
    add_person(sub(evidence, SDG_NS, "IsAbout"), item.person, "NaturalPerson")
    add_agent(evidence, item.issuing_authority, "IssuingAuthority")
    conformant = sub(evidence, SDG_NS, "IsConformantTo")
    sub(conformant, SDG_NS, "EvidenceTypeClassification", item.classification)
    for title in item.titles:
        sub(conformant, SDG_NS, "Title", title.value, lang=language_code(title.lang))
    for description in item.descriptions:
        sub(conformant, SDG_NS, "Description", description.value, lang=language_code(description.lang))
    sub(evidence, SDG_NS, "IssuingDate", item.issuing_date.isoformat())
    distribution = sub(evidence, SDG_NS, "Distribution")
    sub(distribution, SDG_NS, "Format", item.media_type)
    if item.conforms_to:
        sub(distribution, SDG_NS, "ConformsTo", item.conforms_to)


def add_person(
    parent: etree._Element, person: NaturalPerson, name: str = "Person", *, as_requested: bool = False
) -> etree._Element:
    """The person as the request named them. A response leaves out the level of assurance (it is
    about the login) and the current address and gender; ``as_requested`` writes them too, in the
    schema's order, as an evidence request carries them."""
    element = sub(parent, SDG_NS, name)
    if as_requested and person.level_of_assurance:
        sub(element, SDG_NS, "LevelOfAssurance", person.level_of_assurance)
    if person.identifier:
        sub(element, SDG_NS, "Identifier", person.identifier, schemeID=person.identifier_scheme)
    sub(element, SDG_NS, "FamilyName", person.family_name)
    sub(element, SDG_NS, "GivenName", person.given_name)
    sub(element, SDG_NS, "DateOfBirth", person.date_of_birth.isoformat())
    if person.birth_name:
        sub(element, SDG_NS, "BirthName", person.birth_name)
    if person.place_of_birth:
        sub(element, SDG_NS, "PlaceOfBirth", person.place_of_birth)
    if as_requested and person.current_address is not None:
        _add_address(sub(element, SDG_NS, "CurrentAddress"), person.current_address)
    if as_requested and person.gender:
        sub(element, SDG_NS, "Gender", person.gender)
    return element


def _add_address(element: etree._Element, address: Address) -> None:
    fields = (
        ("FullAddress", address.full_address),
        ("PostCode", address.post_code),
        ("PostCityName", address.post_city_name),
        ("Thoroughfare", address.thoroughfare),
        ("AdminUnitLevel1", address.admin_unit_level1),
        ("AdminUnitLevel2", address.admin_unit_level2),
    )
    for field_name, value in fields:
        if value:
            sub(element, SDG_NS, field_name, value)
