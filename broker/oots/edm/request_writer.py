"""Writing a ``query:QueryRequest`` from an :class:`EvidenceRequest`: the reader's inverse.

The gateway only ever reads requests; the broker writes them for its own checks (the
conformance run, :mod:`broker.oots.conformance`, plays the Evidence Requester). Written the
way the official rules want a request (EDM-REQ-S/-C): agent schemes as EAS URNs, language
codes in upper case, the person's identifier in the ``eidas`` scheme unless it names another,
so what the broker answers is judged on a request it could not refuse for its form.

Only what :class:`EvidenceRequest` holds is written; a ``LegalPerson`` is not (the request
model keeps no more than that there is one).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lxml import etree

from broker.oots.edm.reader import DOCUMENT_QUERY
from broker.oots.edm.vocabulary import (
    NSMAP,
    QUERY_NS,
    RIM_NS,
    SDG_NS,
    XML_NS,
    XSI_NS,
    Address,
    Agent,
    EvidenceRequest,
    NaturalPerson,
    RequestedEvidenceType,
    Requirement,
    Text,
    language_code,
    qualified_scheme,
)
from broker.oots.edm.writer import serialise, sub

# The RegRep return type an evidence request asks for: the registry objects with their documents.
RETURN_TYPE = "LeafClassWithRepositoryItem"
# The scheme of a natural person's identifier (the eIDAS unique identifier) the rules fix.
EIDAS_SCHEME = "eidas"


def write_request(request: EvidenceRequest, *, issued: datetime) -> bytes:
    """The QueryRequest for ``request``, issued at ``issued`` (its IssueDateTime slot)."""
    root = etree.Element(f"{{{QUERY_NS}}}QueryRequest", nsmap=NSMAP)
    root.set("id", request.id)
    if request.specification is not None:
        sub(_slot(root, "SpecificationIdentifier", "StringValueType"), RIM_NS, "Value", request.specification)
    sub(_slot(root, "IssueDateTime", "DateTimeValueType"), RIM_NS, "Value", issued.isoformat(timespec="seconds"))
    if request.procedure:
        _international(_slot(root, "Procedure", "InternationalStringValueType"), request.procedure)
    _boolean(root, "PossibilityForPreview", request.possibility_for_preview)
    _boolean(root, "ExplicitRequestGiven", request.explicit_request_given)
    if request.preview_location is not None:
        sub(_slot(root, "PreviewLocation", "StringValueType"), RIM_NS, "Value", request.preview_location)
    if request.requirements:
        _requirements(root, request.requirements)
    if request.requesters:
        requesters = _slot(root, "EvidenceRequester", "CollectionValueType")
        for requester in request.requesters:
            _agent(_element(requesters), requester)
    if request.provider is not None:
        _agent(_slot(root, "EvidenceProvider", "AnyValueType"), request.provider)
    sub(root, QUERY_NS, "ResponseOption", returnType=RETURN_TYPE)
    query = sub(root, QUERY_NS, "Query", queryDefinition=DOCUMENT_QUERY)
    if request.person is not None:
        _person(_slot(query, "NaturalPerson", "AnyValueType"), request.person)
    if request.evidence_type is not None:
        _evidence_type(_slot(query, "EvidenceRequest", "AnyValueType"), request.evidence_type)
    return serialise(root)


def _slot(parent: etree._Element, name: str, value_type: str) -> etree._Element:
    value = sub(sub(parent, RIM_NS, "Slot", name=name), RIM_NS, "SlotValue")
    value.set(f"{{{XSI_NS}}}type", f"rim:{value_type}")
    return value


def _element(collection: etree._Element) -> etree._Element:
    """One more AnyValueType member of a CollectionValueType slot value."""
    element = sub(collection, RIM_NS, "Element")
    element.set(f"{{{XSI_NS}}}type", "rim:AnyValueType")
    return element


def _boolean(parent: etree._Element, name: str, value: bool) -> None:
    sub(_slot(parent, name, "BooleanValueType"), RIM_NS, "Value", "true" if value else "false")


def _international(value: etree._Element, texts: Sequence[Text]) -> None:
    strings = sub(value, RIM_NS, "Value")
    for text in texts:
        localized = sub(strings, RIM_NS, "LocalizedString", value=text.value)
        lang = language_code(text.lang)
        if lang:
            localized.set(f"{{{XML_NS}}}lang", lang)


def _texts(parent: etree._Element, name: str, texts: Sequence[Text]) -> None:
    for text in texts:
        sub(parent, SDG_NS, name, text.value, lang=language_code(text.lang))


def _requirements(root: etree._Element, requirements: Sequence[Requirement]) -> None:
    collection = _slot(root, "Requirements", "CollectionValueType")
    for requirement in requirements:
        element = sub(_element(collection), SDG_NS, "Requirement")
        sub(element, SDG_NS, "Identifier", requirement.identifier)
        _texts(element, "Name", requirement.names)


def _agent(parent: etree._Element, agent: Agent) -> None:
    element = sub(parent, SDG_NS, "Agent")
    sub(element, SDG_NS, "Identifier", agent.identifier, schemeID=qualified_scheme(agent.scheme))
    # The schema wants a Name; an agent known by its identifier alone is named by it.
    _texts(element, "Name", agent.names or (Text(agent.identifier, "EN"),))
    if agent.country:
        sub(sub(element, SDG_NS, "Address"), SDG_NS, "AdminUnitLevel1", agent.country)
    if agent.classification:
        sub(element, SDG_NS, "Classification", agent.classification)


def _person(parent: etree._Element, person: NaturalPerson) -> None:
    # The schema's order: LevelOfAssurance, Identifier, names, DateOfBirth, BirthName, PlaceOfBirth, …
    element = sub(parent, SDG_NS, "Person")
    if person.level_of_assurance:
        sub(element, SDG_NS, "LevelOfAssurance", person.level_of_assurance)
    if person.identifier:
        sub(element, SDG_NS, "Identifier", person.identifier, schemeID=person.identifier_scheme or EIDAS_SCHEME)
    sub(element, SDG_NS, "FamilyName", person.family_name)
    sub(element, SDG_NS, "GivenName", person.given_name)
    sub(element, SDG_NS, "DateOfBirth", person.date_of_birth.isoformat())
    if person.birth_name:
        sub(element, SDG_NS, "BirthName", person.birth_name)
    if person.place_of_birth:
        sub(element, SDG_NS, "PlaceOfBirth", person.place_of_birth)
    if person.current_address is not None:
        _address(sub(element, SDG_NS, "CurrentAddress"), person.current_address)
    if person.gender:
        sub(element, SDG_NS, "Gender", person.gender)


def _address(element: etree._Element, address: Address) -> None:
    fields = (
        ("FullAddress", address.full_address),
        ("PostCode", address.post_code),
        ("PostCityName", address.post_city_name),
        ("Thoroughfare", address.thoroughfare),
        ("AdminUnitLevel1", address.admin_unit_level1),
        ("AdminUnitLevel2", address.admin_unit_level2),
    )
    for name, value in fields:
        if value:
            sub(element, SDG_NS, name, value)


def _evidence_type(parent: etree._Element, requested: RequestedEvidenceType) -> None:
    element = sub(parent, SDG_NS, "DataServiceEvidenceType")
    if requested.identifier:
        sub(element, SDG_NS, "Identifier", requested.identifier)
    if requested.classification:
        sub(element, SDG_NS, "EvidenceTypeClassification", requested.classification)
    _texts(element, "Title", requested.titles)
    for distribution in requested.distributions:
        distributed = sub(element, SDG_NS, "DistributedAs")
        sub(distributed, SDG_NS, "Format", distribution.media_type)
        if distribution.conforms_to:
            sub(distributed, SDG_NS, "ConformsTo", distribution.conforms_to)
        if distribution.transformation:
            sub(distributed, SDG_NS, "Transformation", distribution.transformation)
