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
from dataclasses import replace
from datetime import datetime

from lxml import etree

from broker.oots.edm.reader import DOCUMENT_QUERY
from broker.oots.edm.vocabulary import (
    NSMAP,
    QUERY_NS,
    RIM_NS,
    SDG_NS,
    XSI_NS,
    Agent,
    EvidenceRequest,
    RequestedEvidenceType,
    Requirement,
    Text,
    language_code,
)
from broker.oots.edm.writer import (
    add_agent,
    add_any_slot,
    add_datetime_slot,
    add_international_slot,
    add_person,
    add_slot,
    add_string_slot,
    serialise,
    sub,
)

# The RegRep return type an evidence request asks for: the registry objects with their documents.
RETURN_TYPE = "LeafClassWithRepositoryItem"
# The scheme of a natural person's identifier (the eIDAS unique identifier) the rules fix.
EIDAS_SCHEME = "eidas"


def write_request(request: EvidenceRequest, *, issued: datetime) -> bytes:
    """The QueryRequest for ``request``, issued at ``issued`` (its IssueDateTime slot)."""
    root = etree.Element(f"{{{QUERY_NS}}}QueryRequest", nsmap=NSMAP)
    root.set("id", request.id)
    if request.specification is not None:
        add_string_slot(root, "SpecificationIdentifier", request.specification)
    add_datetime_slot(root, "IssueDateTime", issued)
    if request.procedure:
        add_international_slot(root, "Procedure", request.procedure)
    _boolean(root, "PossibilityForPreview", request.possibility_for_preview)
    _boolean(root, "ExplicitRequestGiven", request.explicit_request_given)
    if request.preview_location is not None:
        add_string_slot(root, "PreviewLocation", request.preview_location)
    if request.requirements:
        _requirements(root, request.requirements)
    if request.requesters:
        requesters = add_slot(root, "EvidenceRequester", "CollectionValueType")
        for requester in request.requesters:
            add_agent(_element(requesters), _named(requester))
    if request.provider is not None:
        add_agent(add_any_slot(root, "EvidenceProvider"), _named(request.provider))
    sub(root, QUERY_NS, "ResponseOption", returnType=RETURN_TYPE)
    query = sub(root, QUERY_NS, "Query", queryDefinition=DOCUMENT_QUERY)
    if request.person is not None:
        person = replace(request.person, identifier_scheme=request.person.identifier_scheme or EIDAS_SCHEME)
        add_person(add_any_slot(query, "NaturalPerson"), person, as_requested=True)
    if request.evidence_type is not None:
        _evidence_type(add_any_slot(query, "EvidenceRequest"), request.evidence_type)
    return serialise(root)


def _named(agent: Agent) -> Agent:
    """The agent with a Name: the schema wants one, and one known by its identifier alone is named by it."""
    return agent if agent.names else replace(agent, names=(Text(agent.identifier, "EN"),))


def _element(collection: etree._Element) -> etree._Element:
    """One more AnyValueType member of a CollectionValueType slot value."""
    element = sub(collection, RIM_NS, "Element")
    element.set(f"{{{XSI_NS}}}type", "rim:AnyValueType")
    return element


def _boolean(parent: etree._Element, name: str, value: bool) -> None:
    sub(add_slot(parent, name, "BooleanValueType"), RIM_NS, "Value", "true" if value else "false")


def _texts(parent: etree._Element, name: str, texts: Sequence[Text]) -> None:
    for text in texts:
        sub(parent, SDG_NS, name, text.value, lang=language_code(text.lang))


def _requirements(root: etree._Element, requirements: Sequence[Requirement]) -> None:
    collection = add_slot(root, "Requirements", "CollectionValueType")
    for requirement in requirements:
        element = sub(_element(collection), SDG_NS, "Requirement")
        sub(element, SDG_NS, "Identifier", requirement.identifier)
        _texts(element, "Name", requirement.names)


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
