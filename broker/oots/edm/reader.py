"""Reading a ``query:QueryRequest`` into an :class:`EvidenceRequest`.

Incoming documents are read strictly by namespace URI — other member states bind the RegRep
and SDG namespaces to whatever prefixes they like — and are expected to have passed the
hardened parser and the EDM schemas already; what the schemas leave open (a slot missing, a
value out of its code list) is refused here as an :class:`EdmError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date

from lxml import etree

from broker.oots.edm.vocabulary import (
    QUERY_NS,
    QUERY_REQUEST,
    RIM_NS,
    SDG_NS,
    XML_NS,
    Address,
    Agent,
    Distribution,
    EdmCode,
    EdmError,
    EvidenceRequest,
    NaturalPerson,
    RequestedEvidenceType,
    Requirement,
    Text,
)

# The query every exchange request must be (RegRep "DocumentQuery" with the evidence request slots).
DOCUMENT_QUERY = "DocumentQuery"


def request_id_of(root: etree._Element) -> str | None:
    """The ``id`` of a QueryRequest root, for echoing even when the rest cannot be read."""
    if root.tag != QUERY_REQUEST:
        return None
    value = root.get("id")
    return value.strip() if value and value.strip() else None


def read_request(root: etree._Element) -> EvidenceRequest:
    """Read a schema-valid QueryRequest. Raises :class:`EdmError` (EDM:ERR:0003/0007) for what the
    schemas allow but the evidence exchange does not."""
    request_id = request_id_of(root)
    if request_id is None:
        raise _invalid("oots.request_id_missing", "The QueryRequest has no id.")
    query = root.find(f"{{{QUERY_NS}}}Query")
    if query is None or query.get("queryDefinition") != DOCUMENT_QUERY:
        raise EdmError(
            EdmCode.UNSUPPORTED,
            "oots.query_unsupported",
            f"Only the evidence request ({DOCUMENT_QUERY}) is answered here.",
        )
    specification = _string_slot(root, "SpecificationIdentifier")
    legal = _slot_value(query, "LegalPerson")
    return EvidenceRequest(
        id=request_id,
        specification=specification,
        procedure=_international_slot(root, "Procedure"),
        possibility_for_preview=_boolean_slot(root, "PossibilityForPreview", default=False),
        explicit_request_given=_boolean_slot(root, "ExplicitRequestGiven", default=False),
        preview_location=_string_slot(root, "PreviewLocation"),
        requirements=tuple(_requirements(root)),
        requesters=tuple(_agents(_slot_value(root, "EvidenceRequester"))),
        provider=_agent(_slot_value(root, "EvidenceProvider")),
        person=_person(_slot_value(query, "NaturalPerson")),
        legal_person=legal is not None and len(legal) > 0,
        evidence_type=_evidence_type(_slot_value(query, "EvidenceRequest")),
        message_digest=hashlib.sha256(etree.tostring(root, method="c14n2")).hexdigest(),
    )


def _invalid(reason: str, message: str) -> EdmError:
    return EdmError(EdmCode.INVALID_REQUEST, reason, message)


def _slot_value(parent: etree._Element, name: str) -> etree._Element | None:
    for slot in parent.iterchildren(f"{{{RIM_NS}}}Slot"):
        if slot.get("name") == name:
            return slot.find(f"{{{RIM_NS}}}SlotValue")
    return None


def _text(element: etree._Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    value = element.text.strip()
    return value or None


def _string_slot(parent: etree._Element, name: str) -> str | None:
    value = _slot_value(parent, name)
    return _text(value.find(f"{{{RIM_NS}}}Value")) if value is not None else None


def _boolean_slot(parent: etree._Element, name: str, default: bool) -> bool:
    text = _string_slot(parent, name)
    if text is None:
        return default
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _invalid("oots.slot_invalid", f"Slot {name} must be a boolean.")


def _international_slot(parent: etree._Element, name: str) -> tuple[Text, ...]:
    value = _slot_value(parent, name)
    if value is None:
        return ()
    strings = value.iterfind(f"{{{RIM_NS}}}Value/{{{RIM_NS}}}LocalizedString")
    texts = tuple(Text(s.get("value") or "", s.get(f"{{{XML_NS}}}lang")) for s in strings)
    # A plain string value is accepted too: senders do not all type Procedure the same way.
    plain = _text(value.find(f"{{{RIM_NS}}}Value"))
    return texts or ((Text(plain),) if plain else ())


def _sdg(element: etree._Element, name: str) -> etree._Element | None:
    return element.find(f"{{{SDG_NS}}}{name}")


def _sdg_text(element: etree._Element, name: str) -> str | None:
    return _text(_sdg(element, name))


def _multilingual(element: etree._Element, name: str) -> tuple[Text, ...]:
    return tuple(Text((e.text or "").strip(), e.get("lang")) for e in element.iterchildren(f"{{{SDG_NS}}}{name}"))


def _requirements(root: etree._Element) -> Iterable[Requirement]:
    value = _slot_value(root, "Requirements")
    if value is None:
        return
    for requirement in value.iter(f"{{{SDG_NS}}}Requirement"):
        identifier = _sdg_text(requirement, "Identifier")
        if identifier:
            yield Requirement(identifier, _multilingual(requirement, "Name"))


def _agents(value: etree._Element | None) -> Iterable[Agent]:
    """Every agent of a slot: one of AnyValueType, each rim:Element of a CollectionValueType."""
    if value is None:
        return
    for agent in value.iter(f"{{{SDG_NS}}}Agent"):
        yield _read_agent(agent)


def _agent(value: etree._Element | None) -> Agent | None:
    # AnyValueType holds the agent directly, CollectionValueType in rim:Element: find it either way.
    agent = next(value.iter(f"{{{SDG_NS}}}Agent"), None) if value is not None else None
    return _read_agent(agent) if agent is not None else None


def _read_agent(agent: etree._Element) -> Agent:
    identifier = _sdg(agent, "Identifier")
    if identifier is None or not _text(identifier):
        raise _invalid("oots.agent_invalid", "An Agent has no Identifier.")
    address = _sdg(agent, "Address")
    return Agent(
        identifier=_text(identifier) or "",
        scheme=identifier.get("schemeID"),
        names=_multilingual(agent, "Name"),
        classification=_sdg_text(agent, "Classification"),
        country=_sdg_text(address, "AdminUnitLevel1") if address is not None else None,
    )


def _address(element: etree._Element | None) -> Address | None:
    if element is None:
        return None
    return Address(
        full_address=_sdg_text(element, "FullAddress"),
        post_code=_sdg_text(element, "PostCode"),
        post_city_name=_sdg_text(element, "PostCityName"),
        thoroughfare=_sdg_text(element, "Thoroughfare"),
        admin_unit_level1=_sdg_text(element, "AdminUnitLevel1"),
        admin_unit_level2=_sdg_text(element, "AdminUnitLevel2"),
    )


def _person(value: etree._Element | None) -> NaturalPerson | None:
    if value is None:
        return None
    person = _sdg(value, "Person")
    if person is None:
        return None
    family, given, born = (_sdg_text(person, n) for n in ("FamilyName", "GivenName", "DateOfBirth"))
    if not (family and given and born):
        raise _invalid("oots.person_incomplete", "NaturalPerson needs FamilyName, GivenName and DateOfBirth.")
    try:
        date_of_birth = date.fromisoformat(born[:10])
    except ValueError:
        raise _invalid("oots.person_incomplete", "DateOfBirth is not a date.") from None
    identifier = _sdg(person, "Identifier")
    return NaturalPerson(
        family_name=family,
        given_name=given,
        date_of_birth=date_of_birth,
        level_of_assurance=_sdg_text(person, "LevelOfAssurance"),
        identifier=_text(identifier),
        identifier_scheme=identifier.get("schemeID") if identifier is not None else None,
        birth_name=_sdg_text(person, "BirthName"),
        place_of_birth=_sdg_text(person, "PlaceOfBirth"),
        current_address=_address(_sdg(person, "CurrentAddress")),
        gender=_sdg_text(person, "Gender"),
    )


def _evidence_type(value: etree._Element | None) -> RequestedEvidenceType | None:
    if value is None:
        return None
    requested = _sdg(value, "DataServiceEvidenceType")
    if requested is None:
        return None
    return RequestedEvidenceType(
        identifier=_sdg_text(requested, "Identifier"),
        classification=_sdg_text(requested, "EvidenceTypeClassification"),
        titles=_multilingual(requested, "Title"),
        distributions=tuple(
            Distribution(
                _sdg_text(d, "Format") or "",
                _sdg_text(d, "ConformsTo"),
                _sdg_text(d, "Transformation"),
            )
            for d in requested.iterchildren(f"{{{SDG_NS}}}DistributedAs")
        ),
    )
