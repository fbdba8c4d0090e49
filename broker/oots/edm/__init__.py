"""OOTS Exchange Data Model (EDM v1) messages: read a ``query:QueryRequest``, write ``query:QueryResponse``s.

Framework-free on purpose (lxml only): the gateway's routes and service use it, and so can
tools and tests. Callers import from the package; its modules are split by reason to change:

* :mod:`~broker.oots.edm.vocabulary` — namespaces, code lists, error codes, the message's data;
* :mod:`~broker.oots.edm.reader` — a QueryRequest read into an :class:`EvidenceRequest`;
* :mod:`~broker.oots.edm.writer` — QueryResponses (evidence, errors) and their RegRep building blocks;
* :mod:`~broker.oots.edm.multipart` — the ``multipart/related`` packaging of an evidence response.
"""

from broker.oots.edm.multipart import Part, multipart_related
from broker.oots.edm.reader import read_request, request_id_of
from broker.oots.edm.vocabulary import (
    DEFAULT_SPECIFICATION,
    EDM_VERSIONS,
    FAILURE,
    MEDIA_TYPE,
    QUERY_REQUEST,
    RIM_NS,
    RS_NS,
    SDG_NS,
    SEVERITY_ADDITIONAL_INPUT,
    SEVERITY_ERROR,
    SEVERITY_PREVIEW_REQUIRED,
    SUCCESS,
    SUPPORTED_SPECIFICATIONS,
    UNREGISTERED_SCHEME,
    XSI_NS,
    Address,
    Agent,
    Distribution,
    EdmCode,
    EdmError,
    EdmVersion,
    EvidenceRequest,
    NaturalPerson,
    PreviewRedirect,
    RequestedEvidenceType,
    Requirement,
    Text,
    edm_version,
    exception_detail,
    language_code,
    normalise_scheme,
    qualified_scheme,
)
from broker.oots.edm.writer import (
    EvidenceMetadata,
    add_any_slot,
    add_string_slot,
    error_response,
    evidence_response,
    new_response,
    serialise,
    sub,
)

__all__ = [
    "DEFAULT_SPECIFICATION",
    "EDM_VERSIONS",
    "FAILURE",
    "MEDIA_TYPE",
    "QUERY_REQUEST",
    "RIM_NS",
    "RS_NS",
    "SDG_NS",
    "SEVERITY_ADDITIONAL_INPUT",
    "SEVERITY_ERROR",
    "SEVERITY_PREVIEW_REQUIRED",
    "SUCCESS",
    "SUPPORTED_SPECIFICATIONS",
    "UNREGISTERED_SCHEME",
    "XSI_NS",
    "Address",
    "Agent",
    "Distribution",
    "EdmCode",
    "EdmError",
    "EdmVersion",
    "EvidenceMetadata",
    "EvidenceRequest",
    "NaturalPerson",
    "Part",
    "PreviewRedirect",
    "RequestedEvidenceType",
    "Requirement",
    "Text",
    "add_any_slot",
    "add_string_slot",
    "edm_version",
    "error_response",
    "evidence_response",
    "exception_detail",
    "language_code",
    "multipart_related",
    "new_response",
    "normalise_scheme",
    "qualified_scheme",
    "read_request",
    "request_id_of",
    "serialise",
    "sub",
]
