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


@dataclass(frozen=True)
class EdmVersion:
    """An EDM version the gateway speaks: a request declaring it is answered in it.

    The one place versions are decided: adding one (v1.1, v1.2, v2.0 once their schemas and
    rules are at hand and the messages checked against them) is a row of :data:`EDM_VERSIONS`.
    """

    specification: str  # the SpecificationIdentifier value
    schemas: str  # the official schema release its messages are checked against


EDM_VERSIONS: tuple[EdmVersion, ...] = (EdmVersion("oots-edm:v1.0", "EDM v1.0.0"),)
SUPPORTED_SPECIFICATIONS = tuple(v.specification for v in EDM_VERSIONS)
# What a message that declares no supported version (or none at all) is answered in.
DEFAULT_SPECIFICATION = SUPPORTED_SPECIFICATIONS[0]


def edm_version(specification: str | None) -> EdmVersion | None:
    """The supported version a SpecificationIdentifier names; None for any other."""
    return next((v for v in EDM_VERSIONS if v.specification == specification), None)


# Schemes an agent identifier's schemeID may be written in; the bare EAS code is what we compare.
# The OOTS rules want an EAS code (code list "EAS", the CEF Electronic Address Scheme) written
# behind EAS_SCHEME_PREFIX, or the ebCore "unregistered" scheme.
EAS_SCHEME_PREFIX = "urn:cef.eu:names:identifier:EAS:"
_SCHEME_PREFIXES = (EAS_SCHEME_PREFIX, "urn:oasis:names:tc:ebcore:partyid-type:iso6523:")
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
    along as the start of the exception's ``detail`` attribute (``reason`` or ``reason: detail``)
    so that callers can branch on it: the OOTS rules allow no slot of the broker's own there.
    """

    code: EdmCode
    reason: str
    message: str
    detail: str = ""
    preview: PreviewRedirect | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.code} {self.reason}: {self.message}")
        # The business rules keep EDM:ERR:0002 for the preview alone (R-EDM-ERR-C015).
        if self.code is EdmCode.AUTHORIZATION and self.preview is None:
            raise ValueError("EDM:ERR:0002 is the preview's code: it needs a PreviewRedirect")

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
class Distribution:
    """A form of an evidence type's documents: a media type (code list OOTSMediaTypes) and, for
    structured ones, the data model it conforms to (``DistributedAs``, ``Distribution``)."""

    media_type: str
    conforms_to: str | None = None
    transformation: str | None = None


@dataclass(frozen=True)
class RequestedEvidenceType:
    identifier: str | None
    classification: str | None
    titles: tuple[Text, ...] = ()
    # DistributedAs: the forms the requester accepts, in its order of preference.
    distributions: tuple[Distribution, ...] = ()


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
    # EvidenceRequester is a collection: an intermediary platform may name itself beside the
    # competent authority it sends for. The gateway puts the one the client is registered as first.
    requesters: tuple[Agent, ...]
    provider: Agent | None
    person: NaturalPerson | None
    legal_person: bool
    evidence_type: RequestedEvidenceType | None
    # SHA-256 of the message's canonical form (C14N 2.0): a resend of the same request id is
    # told from a changed request by the whole message, not only by what the exchange reads of it.
    message_digest: str = ""

    @property
    def requester(self) -> Agent | None:
        """The EvidenceRequester the answer names: the first (the matched one, once checked)."""
        return self.requesters[0] if self.requesters else None

    @property
    def procedure_text(self) -> str | None:
        return pick_text(self.procedure)


def exception_detail(reason: str, detail: str = "") -> str:
    """The ``detail`` attribute of an rs:Exception: the reason code, then any detail after ``": "``."""
    return f"{reason}: {detail}" if detail else reason


def qualified_scheme(scheme: str | None) -> str:
    """A schemeID as the OOTS rules want it written: an EAS code (bare, or in the ebCore iso6523
    form) as its EAS URN, no scheme as the unregistered one, any other URN as it is."""
    code = normalise_scheme(scheme)
    if not code:
        return UNREGISTERED_SCHEME
    return code if code.lower().startswith("urn:") else EAS_SCHEME_PREFIX + code


def language_code(lang: str | None) -> str | None:
    """A language as the OOTS code list "LanguageCode" writes it: the primary subtag in upper
    case ("de" and "de-DE" → "DE"); None for none."""
    primary = (lang or "").strip().replace("_", "-").split("-", 1)[0]
    return primary.upper() or None


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
