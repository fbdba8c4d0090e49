"""OOTS Exchange Data Model (EDM v1) messages: read a ``query:QueryRequest``, write ``query:QueryResponse``s.

Framework-free on purpose (lxml only): the gateway's routes and service use it, and so can
tools and tests. Incoming documents are read strictly by namespace URI — other member states
bind the RegRep and SDG namespaces to whatever prefixes they like — and are expected to have
passed the hardened parser and the EDM schemas already; what the schemas leave open (a slot
missing, a value out of its code list) is refused here as an :class:`EdmError`. Outgoing
documents bind the conventional prefixes (``query``, ``rim``, ``rs``, ``sdg``, ``xsi``,
``xlink``), which the ``xsi:type`` values they carry rely on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from lxml import etree

QUERY_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0"
RIM_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:4.0"
RS_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:4.0"
SDG_NS = "http://data.europa.eu/p4s"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

NSMAP = {"query": QUERY_NS, "rim": RIM_NS, "rs": RS_NS, "sdg": SDG_NS, "xsi": XSI_NS, "xlink": XLINK_NS}

QUERY_REQUEST = f"{{{QUERY_NS}}}QueryRequest"
MEDIA_TYPE = "application/x-ebrs+xml"

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
SEVERITY_PREVIEW_REQUIRED = "urn:sr.oots.tech.europa.eu:codes:ErrorSeverity:EDMErrorResponse:PreviewRequired"
SEVERITY_ADDITIONAL_INPUT = "urn:sr.oots.tech.europa.eu:codes:ErrorSeverity:DSDErrorResponse:AdditionalInput"

SUPPORTED_SPECIFICATIONS = ("oots-edm:v1.0", "oots-edm:v1.1", "oots-edm:v1.2")
DEFAULT_SPECIFICATION = SUPPORTED_SPECIFICATIONS[0]

# eIDAS levels of assurance in increasing order.
ASSURANCE_LEVELS = ("low", "substantial", "high")

# Schemes an agent identifier's schemeID may be written in; the bare EAS code is what we compare.
_SCHEME_PREFIXES = ("urn:cef.eu:names:identifier:EAS:", "urn:oasis:names:tc:ebcore:partyid-type:iso6523:")
UNREGISTERED_SCHEME = "urn:oasis:names:tc:ebcore:partyid-type:unregistered"

# The query every exchange request must be (RegRep "DocumentQuery" with the evidence request slots).
DOCUMENT_QUERY = "DocumentQuery"


class EdmCode(StrEnum):
    """The EDM error codes (code list EDMErrorCodes) and the exception type each one uses."""

    AUTHENTICATION = "EDM:ERR:0001"
    AUTHORIZATION = "EDM:ERR:0002"
    INVALID_REQUEST = "EDM:ERR:0003"
    NOT_FOUND = "EDM:ERR:0004"
    TIMEOUT = "EDM:ERR:0005"
    UNRESOLVED_REFERENCE = "EDM:ERR:0006"
    UNSUPPORTED = "EDM:ERR:0007"
    PROCESSING = "EDM:ERR:0008"

    @property
    def exception_type(self) -> str:
        return _EXCEPTION_TYPES[self]


_EXCEPTION_TYPES = {
    EdmCode.AUTHENTICATION: "rs:AuthenticationExceptionType",
    EdmCode.AUTHORIZATION: "rs:AuthorizationExceptionType",
    EdmCode.INVALID_REQUEST: "rs:InvalidRequestExceptionType",
    EdmCode.NOT_FOUND: "rs:ObjectNotFoundExceptionType",
    EdmCode.TIMEOUT: "rs:TimeoutExceptionType",
    EdmCode.UNRESOLVED_REFERENCE: "rs:UnresolvedReferenceExceptionType",
    EdmCode.UNSUPPORTED: "rs:UnsupportedCapabilityExceptionType",
    EdmCode.PROCESSING: "query:QueryExceptionType",
}


@dataclass(frozen=True)
class Text:
    value: str
    lang: str | None = None


@dataclass(frozen=True)
class PreviewRedirect:
    """Where the citizen previews the evidence before the requester may have it."""

    location: str
    description: tuple[Text, ...]
    method: str = "GET"


@dataclass
class EdmError(Exception):
    """A refusal or failure as an EDM error response carries it.

    ``reason`` is the broker's stable reason code (the same as in problem+json answers), sent
    along in the exception's ``Reason`` slot so that callers can branch on it.
    """

    code: EdmCode
    reason: str
    message: str
    detail: str = ""
    preview: PreviewRedirect | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.code} {self.reason}: {self.message}")

    @property
    def severity(self) -> str:
        return SEVERITY_PREVIEW_REQUIRED if self.preview is not None else SEVERITY_ERROR


# --- the request ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Agent:
    identifier: str
    scheme: str | None = None
    names: tuple[Text, ...] = ()
    classification: str | None = None
    country: str | None = None  # Address/AdminUnitLevel1, ISO 3166

    @property
    def agent_id(self) -> str:
        """``SCHEME:ID`` with the scheme reduced to its bare code, as clients are registered."""
        return f"{normalise_scheme(self.scheme)}:{self.identifier}"


@dataclass(frozen=True)
class Address:
    full_address: str | None = None
    post_code: str | None = None
    post_city_name: str | None = None
    thoroughfare: str | None = None
    admin_unit_level1: str | None = None
    admin_unit_level2: str | None = None

    def place_texts(self) -> list[str]:
        """The parts of the address that can name a town, most specific first."""
        return [t for t in (self.post_city_name, self.full_address) if t]


@dataclass(frozen=True)
class NaturalPerson:
    family_name: str
    given_name: str
    date_of_birth: date
    level_of_assurance: str | None = None
    identifier: str | None = None
    identifier_scheme: str | None = None
    birth_name: str | None = None
    place_of_birth: str | None = None
    current_address: Address | None = None
    gender: str | None = None

    @property
    def assurance(self) -> str | None:
        """The level of assurance as ``low``/``substantial``/``high`` (eIDAS URIs reduced), or None."""
        if not self.level_of_assurance:
            return None
        level = self.level_of_assurance.strip().rstrip("/").rsplit("/", 1)[-1].lower()
        return level if level in ASSURANCE_LEVELS else None


@dataclass(frozen=True)
class RequestedEvidenceType:
    identifier: str | None
    classification: str | None
    titles: tuple[Text, ...] = ()


@dataclass(frozen=True)
class Requirement:
    identifier: str
    names: tuple[Text, ...] = ()


@dataclass(frozen=True)
class EvidenceRequest:
    """What a ``query:QueryRequest`` asks for, by the EDM's own names."""

    id: str
    specification: str | None
    procedure: tuple[Text, ...]
    possibility_for_preview: bool
    explicit_request_given: bool
    preview_location: str | None
    requirements: tuple[Requirement, ...]
    requester: Agent | None
    provider: Agent | None
    person: NaturalPerson | None
    legal_person: bool
    evidence_type: RequestedEvidenceType | None

    @property
    def procedure_text(self) -> str | None:
        return pick_text(self.procedure)


def normalise_scheme(scheme: str | None) -> str:
    scheme = (scheme or "").strip()
    for prefix in _SCHEME_PREFIXES:
        if scheme.startswith(prefix):
            return scheme[len(prefix) :]
    return scheme


def pick_text(texts: Sequence[Text], prefer: Sequence[str] = ("en", "de")) -> str | None:
    """One text of a multilingual value: a preferred language, else the first."""
    for lang in prefer:
        for text in texts:
            if (text.lang or "").lower().startswith(lang) and text.value.strip():
                return text.value.strip()
    return next((t.value.strip() for t in texts if t.value.strip()), None)


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
        requester=_agent(_slot_value(root, "EvidenceRequester")),
        provider=_agent(_slot_value(root, "EvidenceProvider")),
        person=_person(_slot_value(query, "NaturalPerson")),
        legal_person=legal is not None and len(legal) > 0,
        evidence_type=_evidence_type(_slot_value(query, "EvidenceRequest")),
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


def _agent(value: etree._Element | None) -> Agent | None:
    if value is None:
        return None
    # AnyValueType holds the agent directly, CollectionValueType in rim:Element: find it either way.
    agent = next(value.iter(f"{{{SDG_NS}}}Agent"), None)
    if agent is None:
        return None
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
    )


# --- writing ------------------------------------------------------------------------------------


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def sub(parent: etree._Element, ns: str, tag: str, text: str | None = None, **attrib: str | None) -> etree._Element:
    element = etree.SubElement(parent, _q(ns, tag), {k: v for k, v in attrib.items() if v is not None})
    if text is not None:
        element.text = text
    return element


def _slot(parent: etree._Element, name: str, value_type: str) -> etree._Element:
    slot = sub(parent, RIM_NS, "Slot", name=name)
    value = sub(slot, RIM_NS, "SlotValue")
    value.set(_q(XSI_NS, "type"), f"rim:{value_type}")
    return value


def add_string_slot(parent: etree._Element, name: str, text: str) -> None:
    sub(_slot(parent, name, "StringValueType"), RIM_NS, "Value", text)


def add_datetime_slot(parent: etree._Element, name: str, moment: datetime) -> None:
    sub(_slot(parent, name, "DateTimeValueType"), RIM_NS, "Value", moment.isoformat(timespec="seconds"))


def add_international_slot(parent: etree._Element, name: str, texts: Sequence[Text]) -> None:
    value = sub(_slot(parent, name, "InternationalStringValueType"), RIM_NS, "Value")
    for text in texts:
        localized = sub(value, RIM_NS, "LocalizedString", value=text.value[:1024])
        if text.lang:
            localized.set(_q(XML_NS, "lang"), text.lang)


def add_any_slot(parent: etree._Element, name: str) -> etree._Element:
    """An AnyValueType slot; the caller appends the one element it holds."""
    return _slot(parent, name, "AnyValueType")


def add_agent(parent: etree._Element, agent: Agent, name: str = "Agent") -> etree._Element:
    element = sub(parent, SDG_NS, name)
    sub(element, SDG_NS, "Identifier", agent.identifier, schemeID=agent.scheme)
    for text in agent.names or (Text(agent.identifier),):
        sub(element, SDG_NS, "Name", text.value, lang=text.lang)
    if agent.country:
        address = sub(element, SDG_NS, "Address")
        sub(address, SDG_NS, "AdminUnitLevel1", agent.country)
    if agent.classification:
        sub(element, SDG_NS, "Classification", agent.classification)
    return element


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
    """A QueryResponse with status Failure and exactly one rs:Exception."""
    root = new_response(request_id, FAILURE, specification)
    add_string_slot(root, "EvidenceResponseIdentifier", response_id or str(uuid.uuid4()))
    add_agent(add_any_slot(root, "ErrorProvider"), error_provider)
    if requester is not None:
        add_agent(add_any_slot(root, "EvidenceRequester"), requester)
    exception = sub(root, RS_NS, "Exception", severity=error.severity, message=error.message[:1024], code=error.code)
    exception.set(_q(XSI_NS, "type"), error.code.exception_type)
    if error.detail:
        exception.set("detail", error.detail[:4000])
    add_datetime_slot(exception, "Timestamp", now)
    add_string_slot(exception, "Reason", error.reason)
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
    conforms_to: str | None
    content_id: str  # the MIME Content-ID of the evidence part, without angle brackets
    registry_object_id: str = field(default_factory=lambda: f"urn:uuid:{uuid.uuid4()}")


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
    add_agent(add_any_slot(root, "EvidenceProvider"), provider)
    if requester is not None:
        add_agent(add_any_slot(root, "EvidenceRequester"), requester)
    objects = sub(root, RIM_NS, "RegistryObjectList")
    for item in evidence:
        registry_object = sub(objects, RIM_NS, "RegistryObject", id=item.registry_object_id)
        registry_object.set(_q(XSI_NS, "type"), "rim:ExtrinsicObjectType")
        _add_evidence_metadata(add_any_slot(registry_object, "EvidenceMetadata"), item)
        reference = sub(registry_object, RIM_NS, "RepositoryItemRef")
        reference.set(_q(XLINK_NS, "href"), f"cid:{item.content_id}")
        reference.set(_q(XLINK_NS, "title"), pick_text(item.titles) or item.classification)
    return serialise(root)


def _add_evidence_metadata(parent: etree._Element, item: EvidenceMetadata) -> None:
    evidence = sub(parent, SDG_NS, "Evidence")
    sub(evidence, SDG_NS, "Identifier", item.identifier)
    add_person(sub(evidence, SDG_NS, "IsAbout"), item.person, "NaturalPerson")
    add_agent(evidence, item.issuing_authority, "IssuingAuthority")
    conformant = sub(evidence, SDG_NS, "IsConformantTo")
    sub(conformant, SDG_NS, "EvidenceTypeClassification", item.classification)
    for title in item.titles:
        sub(conformant, SDG_NS, "Title", title.value, lang=title.lang)
    sub(evidence, SDG_NS, "IssuingDate", item.issuing_date.isoformat())
    distribution = sub(evidence, SDG_NS, "Distribution")
    sub(distribution, SDG_NS, "Format", item.media_type)
    if item.conforms_to:
        sub(distribution, SDG_NS, "ConformsTo", item.conforms_to)


def add_person(parent: etree._Element, person: NaturalPerson, name: str = "Person") -> etree._Element:
    """The person as the request named them (without the level of assurance, which is about the login)."""
    element = sub(parent, SDG_NS, name)
    if person.identifier:
        sub(element, SDG_NS, "Identifier", person.identifier, schemeID=person.identifier_scheme)
    sub(element, SDG_NS, "FamilyName", person.family_name)
    sub(element, SDG_NS, "GivenName", person.given_name)
    sub(element, SDG_NS, "DateOfBirth", person.date_of_birth.isoformat())
    if person.birth_name:
        sub(element, SDG_NS, "BirthName", person.birth_name)
    if person.place_of_birth:
        sub(element, SDG_NS, "PlaceOfBirth", person.place_of_birth)
    return element


# --- transport --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    content_id: str  # without angle brackets
    media_type: str
    body: bytes


def multipart_related(root: Part, attachments: Sequence[Part]) -> tuple[str, bytes]:
    """A ``multipart/related`` body (RFC 2387) with ``root`` as the start part; returns
    (Content-Type header value, body). The boundary is random, so it cannot occur in the parts
    by accident; it is checked anyway."""
    parts = (root, *attachments)
    boundary = f"=_edm_{uuid.uuid4().hex}"
    while any(boundary.encode() in part.body for part in parts):
        boundary = f"=_edm_{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for part in parts:
        headers = (
            f"--{boundary}\r\n"
            f"Content-Type: {part.media_type}\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{part.content_id}>\r\n\r\n"
        )
        chunks += [headers.encode("ascii"), part.body, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    content_type = f'multipart/related; boundary="{boundary}"; type="{MEDIA_TYPE}"; start="<{root.content_id}>"'
    return content_type, b"".join(chunks)
