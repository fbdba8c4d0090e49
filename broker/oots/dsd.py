"""Data Service Directory answers (OOTS DSD query interface, RegRep REST binding), framework-free.

The broker answers the DSD query for the evidence types and authorities of its own registry:
one ``DataServiceEvidenceType`` per matching evidence type with one ``AccessService`` per
authority that serves it. The access service is the broker's gateway itself (all authorities
are reached through ``/oots/edm``); the ``Publisher`` is the authority.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from lxml import etree

from broker.oots.edm import (
    DEFAULT_SPECIFICATION,
    FAILURE,
    RIM_NS,
    RS_NS,
    SDG_NS,
    SEVERITY_ADDITIONAL_INPUT,
    SEVERITY_ERROR,
    SUCCESS,
    XSI_NS,
    Distribution,
    Text,
    add_any_slot,
    exception_detail,
    language_code,
    new_response,
    qualified_scheme,
    serialise,
    sub,
)

QUERY_ID = "urn:fdc:oots:dsd:ebxml-regrep:queries:dataservices-by-evidencetype-and-jurisdiction"
# The exchange profile the gateway speaks, as the DSD names it (the rules' value).
# The EDM version a data service's access service speaks (R-DSD-RESP-C015 wants its identifier).
ACCESS_SERVICE_CONFORMS_TO = DEFAULT_SPECIFICATION
# Code list "JurisdictionLevel" (Country, NUTS1, NUTS2, NUTS3, LAU): competence follows a
# Gemeinde or Kreis, a local administrative unit.
LAU_LEVEL = "LAU"


class DsdCode(StrEnum):
    NO_DATA_SERVICE = "DSD:ERR:0001"
    UNKNOWN_EVIDENCE_TYPE = "DSD:ERR:0002"
    INVALID_QUERY = "DSD:ERR:0003"
    UNKNOWN_QUERY = "DSD:ERR:0004"
    ADDITIONAL_INPUT = "DSD:ERR:0005"
    INVALID_VALUE = "DSD:ERR:0006"

    @property
    def exception_type(self) -> str:
        if self in (DsdCode.INVALID_QUERY, DsdCode.UNKNOWN_QUERY, DsdCode.INVALID_VALUE):
            return "rs:InvalidRequestExceptionType"
        return "rs:ObjectNotFoundExceptionType"


@dataclass(frozen=True)
class Publisher:
    identifier: str
    scheme: str  # an EAS code or URN (written as the rules want it), or the unregistered scheme
    name: Text
    country: str  # ISO 3166 alpha-2
    nuts: str | None  # NUTS code of the area served (AdminUnitLevel2)
    local_unit: str | None  # finer key of the area served (AdminUnitLevel3)


@dataclass(frozen=True)
class AccessService:
    identifier: str
    scheme: str
    publisher: Publisher
    conforms_to: str = ACCESS_SERVICE_CONFORMS_TO


@dataclass(frozen=True)
class JurisdictionDetermination:
    """Which attribute of the user decides the competent provider, and at what level."""

    context_id: str  # a UUID (the rules' form), standing for the attribute named in ``contexts``
    contexts: tuple[Text, ...]
    level: str = LAU_LEVEL


@dataclass(frozen=True)
class DataServiceEvidenceType:
    identifier: str  # a UUID (the rules' form)
    classification: str  # the Semantic Repository's evidence type classification URL
    titles: tuple[Text, ...]
    distributions: tuple[Distribution, ...]
    access_services: tuple[AccessService, ...] = ()
    assurance_level: str | None = None  # eIDAS: Low | Substantial | High
    determination: JurisdictionDetermination | None = None
    descriptions: tuple[Text, ...] = ()


@dataclass
class DsdError(Exception):
    code: DsdCode
    reason: str
    message: str
    evidence_type: DataServiceEvidenceType | None = None  # with DSD:ERR:0005: what needs more input

    def __post_init__(self) -> None:
        super().__init__(f"{self.code} {self.reason}: {self.message}")


def query_response(found: Sequence[DataServiceEvidenceType]) -> bytes:
    root = new_response(None, SUCCESS, None)
    root.set("startIndex", "0")
    root.set("totalResultCount", str(len(found)))
    objects = sub(root, RIM_NS, "RegistryObjectList")
    for index, item in enumerate(found):
        # A UUID URN derived from the entry, so the same entry keeps its id from answer to answer.
        object_id = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:uuid:{item.identifier}#{index}")
        registry_object = sub(objects, RIM_NS, "RegistryObject", id=f"urn:uuid:{object_id}")
        _add_evidence_type(add_any_slot(registry_object, "DataServiceEvidenceType"), item)
    return serialise(root)


def error_response(error: DsdError) -> bytes:
    root = new_response(None, FAILURE, None)
    severity = SEVERITY_ADDITIONAL_INPUT if error.code is DsdCode.ADDITIONAL_INPUT else SEVERITY_ERROR
    exception = sub(root, RS_NS, "Exception", severity=severity, message=error.message[:1024], code=error.code)
    exception.set(f"{{{XSI_NS}}}type", error.code.exception_type)
    # The reason code goes in the detail: the rules allow no slot of the broker's own (DSD:ERR:0005
    # only JurisdictionDetermination, UserRequestedClassificationConcepts, DataServiceEvidenceType).
    exception.set("detail", exception_detail(error.reason))
    if error.evidence_type is not None:
        # The determination goes in its own slot, where requesters look for what to ask the user.
        determination = error.evidence_type.determination
        _add_evidence_type(
            add_any_slot(exception, "DataServiceEvidenceType"), replace(error.evidence_type, determination=None)
        )
        if determination is not None:
            _add_determination(add_any_slot(exception, "JurisdictionDetermination"), determination)
    return serialise(root)


def _add_evidence_type(parent: etree._Element, item: DataServiceEvidenceType) -> None:
    element = sub(parent, SDG_NS, "DataServiceEvidenceType")
    sub(element, SDG_NS, "Identifier", item.identifier)
    sub(element, SDG_NS, "EvidenceTypeClassification", item.classification)
    for title in item.titles:
        sub(element, SDG_NS, "Title", title.value, lang=language_code(title.lang))
    for description in item.descriptions:
        sub(element, SDG_NS, "Description", description.value, lang=language_code(description.lang))
    for distribution in item.distributions:
        distributed = sub(element, SDG_NS, "DistributedAs")
        sub(distributed, SDG_NS, "Format", distribution.media_type)
        if distribution.conforms_to:
            sub(distributed, SDG_NS, "ConformsTo", distribution.conforms_to)
    for service in item.access_services:
        access = sub(element, SDG_NS, "AccessService")
        sub(access, SDG_NS, "Identifier", service.identifier, schemeID=qualified_scheme(service.scheme))
        sub(access, SDG_NS, "ConformsTo", service.conforms_to)
        _add_publisher(access, service.publisher)
    if item.assurance_level:
        sub(element, SDG_NS, "AuthenticationLevelOfAssurance", item.assurance_level)
    if item.determination is not None:
        _add_determination(element, item.determination)


def _add_publisher(parent: etree._Element, publisher: Publisher) -> None:
    element = sub(parent, SDG_NS, "Publisher")
    sub(element, SDG_NS, "Identifier", publisher.identifier, schemeID=qualified_scheme(publisher.scheme))
    sub(element, SDG_NS, "Name", publisher.name.value, lang=language_code(publisher.name.lang))
    address = sub(element, SDG_NS, "Address")
    sub(address, SDG_NS, "AdminUnitLevel1", publisher.country)
    if publisher.nuts:
        sub(address, SDG_NS, "AdminUnitLevel2", publisher.nuts)
    jurisdiction = sub(element, SDG_NS, "Jurisdiction")
    sub(jurisdiction, SDG_NS, "AdminUnitLevel1", publisher.country)
    if publisher.nuts:
        sub(jurisdiction, SDG_NS, "AdminUnitLevel2", publisher.nuts)
    if publisher.local_unit:
        sub(jurisdiction, SDG_NS, "AdminUnitLevel3", publisher.local_unit)


def _add_determination(parent: etree._Element, determination: JurisdictionDetermination) -> None:
    element = sub(parent, SDG_NS, "EvidenceProviderJurisdictionDetermination")
    sub(element, SDG_NS, "JurisdictionContextId", determination.context_id)
    for context in determination.contexts:
        sub(element, SDG_NS, "JurisdictionContext", context.value, lang=language_code(context.lang))
    sub(element, SDG_NS, "JurisdictionLevel", determination.level)
