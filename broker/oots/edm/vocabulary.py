"""The EDM's shared vocabulary: namespaces, code lists, error codes and the message's data.

What the reader produces and the writer consumes; it changes when the EDM version does, not
when the way a document is read or written does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from broker.registry.schemas import AssuranceLevel, assurance_level

QUERY_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0"
RIM_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:4.0"
RS_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:4.0"
SDG_NS = "http://data.europa.eu/p4s"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

# The prefixes outgoing documents bind; the prefixed xsi:type values below rely on them.
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

# Schemes an agent identifier's schemeID may be written in; the bare EAS code is what we compare.
_SCHEME_PREFIXES = ("urn:cef.eu:names:identifier:EAS:", "urn:oasis:names:tc:ebcore:partyid-type:iso6523:")
UNREGISTERED_SCHEME = "urn:oasis:names:tc:ebcore:partyid-type:unregistered"


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
    def assurance(self) -> AssuranceLevel | None:
        """The level of assurance as ``low``/``substantial``/``high`` (eIDAS URIs reduced), or None."""
        if not self.level_of_assurance:
            return None
        return assurance_level(self.level_of_assurance.strip().rstrip("/").rsplit("/", 1)[-1])


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
