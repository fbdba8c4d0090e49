"""Between the EDM and the broker's exchange: evidence types, the subject, the competent
authority, assurance levels, and the EDM error code of every refusal.

Which authority is competent (the broker routes by Regionalschlüssel, an OOTS request carries
none) is decided in this order:

1. the request's ``EvidenceProvider`` names one of the registry's authorities (by its OOTS
   identifier and scheme, as the broker's Data Service Directory publishes it, or by its
   registry id): that one;
2. only one authority holds the evidence type: that one (plain routing without jurisdiction);
3. the person's place attribute that decides competence for the register kind — the place of
   birth for a Standesamt, the current address for Melde- and Gewerberegister (the same
   ``JurisdictionDetermination`` the DSD announces) — names exactly one authority's place
   (the authority's name without its office word, e.g. "Schwerin" of "Standesamt Schwerin",
   compared as whole words, case and accents ignored): that one.

Otherwise the request is refused: no place given, or one naming several authorities, is an
invalid request (EDM:ERR:0003: use the DSD's EvidenceProvider); a place no authority of the
broker is competent for is EDM:ERR:0004. The subject is never sent to authorities on the
off chance that they hold it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from adapters.identity import idnr_of_person_identifier, name_key
from broker.exchange.schemas import EvidenceRequestIn, SubjectIn
from broker.oots.edm import (
    UNREGISTERED_SCHEME,
    Agent,
    Distribution,
    EdmCode,
    EdmError,
    EvidenceRequest,
    NaturalPerson,
    RequestedEvidenceType,
    normalise_scheme,
    qualified_scheme,
)
from broker.problems import Problem
from broker.registry.schemas import ASSURANCE_LEVELS, AuthoritySpec, EvidenceTypeSpec
from broker.registry.service import RegistrySnapshot

CHANNEL = "oots"
# Every OOTS exchange rests on the Single Digital Gateway Regulation; the explicit request is
# the citizen's, given at the requester's portal (ExplicitRequestGiven). The registry id of that
# legal basis (Regulation (EU) 2018/1724, Art. 14); the request's Procedure names the purpose,
# by a registered purpose's id or exact name.
LEGAL_BASIS = "eu-sdgr-14"

# The OOTS code list "Procedures" (the SDGR's Annex II procedures): the rules want a request's
# Procedure to be one of these codes (R-EDM-REQ-C003). A code stands for its procedure's name,
# which the registry's purposes carry (here the codes of the procedures the demo evidence types
# serve; others are read as purpose names); a request naming the purpose itself is read as before.
SDG_PROCEDURES = {
    "R1": "Requesting a birth certificate",
    "S1": "Requesting proof of residence",
    "V1": "Registering a change of address",
}

# (register kind) → the person's attribute that decides which authority is competent.
DETERMINING_ATTRIBUTE = {
    "standesamt": "PlaceOfBirth",
    "melderegister": "CurrentAddress",
    "gewerberegister": "CurrentAddress",
}

# Stable reason codes (prefixes) → EDM error code; the first match wins. The business rules keep
# EDM:ERR:0002 (rs:AuthorizationExceptionType) for the preview alone (R-EDM-ERR-C015: never with
# severity Error): every other refusal of the requester is a failed authentication (0001).
_CODES: tuple[tuple[str, EdmCode], ...] = (
    ("auth.", EdmCode.AUTHENTICATION),
    ("oots.assurance_insufficient", EdmCode.AUTHENTICATION),
    ("oots.requester_", EdmCode.AUTHENTICATION),
    ("policy.", EdmCode.AUTHENTICATION),
    ("consent.", EdmCode.AUTHENTICATION),
    ("preview.required", EdmCode.AUTHORIZATION),
    ("preview.expired", EdmCode.TIMEOUT),
    ("preview.pending", EdmCode.TIMEOUT),
    # The type needs a preview the requester cannot offer, or the broker cannot hold one.
    ("preview.", EdmCode.UNSUPPORTED),
    ("evidence_type.unknown", EdmCode.NOT_FOUND),
    ("purpose.unknown", EdmCode.INVALID_REQUEST),
    ("legal_basis.not_applicable", EdmCode.INVALID_REQUEST),
    ("route.not_found", EdmCode.NOT_FOUND),
    ("subject.", EdmCode.NOT_FOUND),
    ("evidence.expired", EdmCode.NOT_FOUND),
    ("exchange.expired", EdmCode.TIMEOUT),
    ("exchange.pending", EdmCode.TIMEOUT),
    ("authority.timeout", EdmCode.TIMEOUT),
    ("oots.unsupported", EdmCode.UNSUPPORTED),
    ("jurisdiction.", EdmCode.INVALID_REQUEST),
    ("xml.", EdmCode.INVALID_REQUEST),
    ("request.", EdmCode.INVALID_REQUEST),
    ("idempotency.", EdmCode.INVALID_REQUEST),
    ("oots.", EdmCode.INVALID_REQUEST),
)


def code_for(reason: str, status: int = 0) -> EdmCode:
    for prefix, code in _CODES:
        if reason.startswith(prefix):
            return code
    return EdmCode.TIMEOUT if status == 504 else EdmCode.PROCESSING


def edm_error(problem: Problem) -> EdmError:
    return EdmError(code_for(problem.reason, problem.status), problem.reason, problem.detail)


# --- evidence types ---------------------------------------------------------------------------


def evidence_type_for(registry: RegistrySnapshot, requested: RequestedEvidenceType) -> EvidenceTypeSpec | None:
    """The registry's evidence type: by the broker's own id (as its DSD publishes it), then by
    the OOTS identifiers and classifications the registry maps."""
    for key in (requested.identifier, requested.classification):
        if key and key in registry.evidence_types:
            return registry.evidence_types[key]
    for key in (requested.identifier, requested.classification):
        if key:
            spec = registry.evidence_type_for_oots(key)
            if spec is not None:
                return spec
    return None


def classification_of(spec: EvidenceTypeSpec, requested: RequestedEvidenceType | None = None) -> str:
    """The OOTS classification to name the type by. The rules want the Semantic Repository's
    (``https://sr.oots.tech.europa.eu/evidencetypeclassifications/CC/UUID``): the request's if it
    is one of the type's, else the type's first; a type the registry maps to none is named by
    the request's classification, else the first the registry maps."""
    asked = requested.classification if requested is not None else None
    in_repository = [c for c in spec.oots_classifications if _SR_CLASSIFICATION.match(c)]
    if in_repository:
        return asked if asked in in_repository else in_repository[0]
    if asked:
        return asked
    names = [c for c in spec.oots_classifications if not _UUID.match(c)]
    return names[0] if names else spec.id


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SR_CLASSIFICATION = re.compile(
    r"^https://sr\.oots\.tech\.europa\.eu/evidencetypeclassifications/[A-Za-z]{2}/"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def data_service_identifier(spec: EvidenceTypeSpec) -> str:
    """The type's DataServiceEvidenceType identifier, a UUID as the rules want: the first UUID
    among its OOTS classifications (requests name the type by it), else one derived from its id."""
    registered = [c for c in spec.oots_classifications if _UUID.match(c)]
    return registered[0].lower() if registered else str(uuid.uuid5(uuid.NAMESPACE_URL, spec.id))


# --- distributions (DistributedAs) ------------------------------------------------------------

XML = "application/xml"
PDF = "application/pdf"


def offered_distributions(spec: EvidenceTypeSpec) -> tuple[Distribution, ...]:
    """The forms the broker delivers a type's evidence in: the authority's XML document (sealed),
    conforming to the type's own schema, and its human-readable version as a PDF, which the
    broker renders from that document, so every type offers it without a registry field. The
    Data Service Directory should publish the same list as the type's DistributedAs."""
    # The data model as the rules want it named (the Semantic Repository's), where the registry has it.
    return (Distribution(XML, spec.data_model or spec.namespace), Distribution(PDF))


@dataclass(frozen=True)
class Delivery:
    """One document of an evidence response: its form, and whether it is the human-readable
    version that accompanies a structured one."""

    distribution: Distribution
    human_readable: bool = False


def _offers(spec: EvidenceTypeSpec, offered: Distribution, asked: Distribution) -> bool:
    """Whether a requested DistributedAs is this offered form: the same format; for a structured
    form the same data model where the request names one (the Semantic Repository's, or the
    type's own schema namespace), and no transformation (the broker makes none). A ConformsTo
    beside an unstructured format (the EC's sample asks for application/pdf "conforming to" a
    data model) says what the document is about, not its form: it does not keep the PDF out."""
    if asked.media_type.strip().lower() != offered.media_type:
        return False
    if offered.conforms_to is None:
        return True
    return (not asked.conforms_to or asked.conforms_to.strip() in {offered.conforms_to, spec.namespace}) and (
        not asked.transformation
    )


def delivered_distributions(spec: EvidenceTypeSpec, requested: Sequence[Distribution]) -> tuple[Delivery, ...]:
    """What a response carries for a request's DistributedAs (its order kept). A request that
    names none gets the XML document. The XML document always comes with its PDF: structured
    evidence that conforms to no OOTS data model (none of the registry's types does) is to be
    accompanied by a human-readable version (TDD, user journey step 6). Raises a Problem
    (``oots.unsupported_distribution``, EDM:ERR:0007) when the type offers none of the forms asked for."""
    offered = offered_distributions(spec)
    chosen = [o for a in requested for o in offered if _offers(spec, o, a)] if requested else [offered[0]]
    unique = list(dict.fromkeys(chosen))
    if not unique:
        forms = "; ".join(o.media_type + (f" conforming to {o.conforms_to}" if o.conforms_to else "") for o in offered)
        raise Problem(
            406,
            "oots.unsupported_distribution",
            f"{spec.title} is not available in the form DistributedAs asks for; this data service offers: {forms}.",
        )
    deliveries = [Delivery(d) for d in unique]
    if any(d.media_type == XML for d in unique) and not any(d.media_type == PDF for d in unique):
        deliveries.append(Delivery(Distribution(PDF), human_readable=True))
    return tuple(deliveries)


# --- the authority as an OOTS agent -----------------------------------------------------------


def oots_identity(authority: AuthoritySpec) -> tuple[str, str]:
    """The identifier and scheme OOTS messages name the authority by: its registered identifier
    in an EAS scheme, else its registry id under the unregistered scheme."""
    if authority.oots_identifier and authority.oots_identifier_scheme:
        return authority.oots_identifier, qualified_scheme(authority.oots_identifier_scheme)
    return authority.id, UNREGISTERED_SCHEME


def names_authority(provider: Agent, authority: AuthoritySpec) -> bool:
    """Whether a request's EvidenceProvider names the authority: by its OOTS identity (as the
    DSD publishes it, the scheme compared by its bare code) or by its registry id."""
    if provider.identifier == authority.id:
        return True
    identifier, scheme = oots_identity(authority)
    return (
        provider.identifier.casefold() == identifier.casefold()
        and normalise_scheme(provider.scheme).casefold() == normalise_scheme(scheme).casefold()
    )


# --- the subject ------------------------------------------------------------------------------


def subject_of(person: NaturalPerson) -> SubjectIn:
    """The eIDAS minimum data set as the broker's subject.

    The eIDAS identifier is used only where it carries a German Identifikationsnummer (``XX/DE/…``
    with a valid check digit); other identifiers (pseudonyms of other states' eIDs) are no
    register key and are only echoed in the response. Of the place of birth the first part is
    kept ("Schwerin, Germany" → "Schwerin"): registers hold the town alone.
    """
    idnr = idnr_of_person_identifier(person.identifier) if person.identifier else None
    place = person.place_of_birth.split(",")[0].strip() if person.place_of_birth else None
    try:
        return SubjectIn(
            idnr=idnr,
            family_name=person.family_name,
            given_name=person.given_name,
            birth_date=person.date_of_birth,
            birth_place=place or None,
            birth_name=person.birth_name,
        )
    except ValidationError as invalid:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "person" for e in invalid.errors())
        raise EdmError(EdmCode.INVALID_REQUEST, "oots.person_invalid", f"NaturalPerson: invalid {fields}.") from None


def evidence_request_in(
    request: EvidenceRequest, evidence_type: str, jurisdiction: str | None, subject: SubjectIn
) -> EvidenceRequestIn:
    procedure = request.procedure_text
    if not procedure:
        raise EdmError(EdmCode.INVALID_REQUEST, "oots.procedure_missing", "The request names no Procedure.")
    try:
        return EvidenceRequestIn(
            evidence_type=evidence_type,
            jurisdiction=jurisdiction,
            subject=subject,
            purpose=SDG_PROCEDURES.get(procedure.strip(), procedure)[:300],
            legal_basis=LEGAL_BASIS,
            explicit_request=request.explicit_request_given,
            preview=request.possibility_for_preview,
            assurance=request.person.assurance if request.person is not None else None,
        )
    except ValidationError as invalid:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in invalid.errors())
        raise EdmError(EdmCode.INVALID_REQUEST, "oots.request_invalid", f"Invalid request: {fields}.") from None


# --- policy -----------------------------------------------------------------------------------


def oots_policy(person: NaturalPerson, possibility_for_preview: bool) -> Callable[[EvidenceTypeSpec], None]:
    """The refusals only an OOTS request can earn, checked inside the exchange (so they are logged)."""

    def check(evidence_type: EvidenceTypeSpec) -> None:
        given = person.assurance
        if given is None:
            raise Problem(
                422,
                "oots.assurance_missing",
                "NaturalPerson/LevelOfAssurance is missing or not an eIDAS level (Low, Substantial, High).",
            )
        required = evidence_type.assurance_level
        if ASSURANCE_LEVELS.index(given) < ASSURANCE_LEVELS.index(required):
            raise Problem(
                403,
                "oots.assurance_insufficient",
                f"{evidence_type.title} needs the eIDAS level of assurance {required.capitalize()} or higher; "
                f"the person was authenticated at {given.capitalize()}.",
            )
        if evidence_type.preview_required and not possibility_for_preview:
            raise Problem(
                403,
                "preview.impossible",
                f"{evidence_type.title} is released only after the citizen's preview, "
                "and the request says a preview is not possible (PossibilityForPreview).",
            )

    return check


def matching_requester(principal_agent: str | None, requesters: Sequence[Agent]) -> Agent | None:
    """The EvidenceRequester the calling client is registered as. The slot is a collection (an
    intermediary platform may send for the competent authority, both named): any one of them
    may be the client's agent."""
    return next((r for r in requesters if requester_matches(principal_agent, r)), None)


def requester_matches(principal_agent: str | None, requester: Agent | None) -> bool:
    """The request's EvidenceRequester is the calling client's registered agent (scheme:id)."""
    if principal_agent is None or requester is None:
        return False
    scheme, _, identifier = principal_agent.rpartition(":")
    mine = Agent(identifier=identifier, scheme=scheme)
    return mine.agent_id.casefold() == requester.agent_id.casefold()


# --- the competent authority ------------------------------------------------------------------


def serving_authorities(registry: RegistrySnapshot, evidence_type_id: str) -> list[AuthoritySpec]:
    ids = sorted(set(registry.routes.get(evidence_type_id, {}).values()))
    return [registry.authorities[i] for i in ids if i in registry.authorities]


def route_prefix(registry: RegistrySnapshot, evidence_type_id: str, authority_id: str) -> str:
    """The most specific route prefix of the type that leads to the authority."""
    prefixes = [p for p, a in registry.routes.get(evidence_type_id, {}).items() if a == authority_id]
    return max(prefixes, key=len)


def place_of(authority: AuthoritySpec) -> str:
    """The town or area in an authority's name: the name without its office word."""
    office, _, place = authority.name.partition(" ")
    return place or office


def names_place(text: str, place: str) -> bool:
    key = name_key(place)
    return bool(key) and re.search(rf"(?<!\w){re.escape(key)}(?!\w)", name_key(text)) is not None


def determining_places(person: NaturalPerson, register_kind: str) -> list[str]:
    if DETERMINING_ATTRIBUTE.get(register_kind) == "PlaceOfBirth":
        return [person.place_of_birth] if person.place_of_birth else []
    return person.current_address.place_texts() if person.current_address else []


def jurisdiction_for(
    registry: RegistrySnapshot, spec: EvidenceTypeSpec, person: NaturalPerson, provider: Agent | None
) -> str | None:
    """The ARS prefix to route by (see the module docstring); None where one authority serves
    all. Raises the routing refusal as a Problem."""
    authorities = serving_authorities(registry, spec.id)
    if provider is not None:
        for authority in authorities:
            if names_authority(provider, authority):
                return route_prefix(registry, spec.id, authority.id)
    if len(authorities) <= 1:
        return None
    kinds = {a.register_kind for a in authorities}
    attribute = " or ".join(sorted({DETERMINING_ATTRIBUTE.get(k, "CurrentAddress") for k in kinds}))
    candidates = [
        a for a in authorities if any(names_place(t, place_of(a)) for t in determining_places(person, a.register_kind))
    ]
    if len(candidates) == 1:
        return route_prefix(registry, spec.id, candidates[0].id)
    if not any(determining_places(person, k) for k in kinds):
        raise Problem(
            422,
            "jurisdiction.required",
            f"{len(authorities)} authorities hold {spec.title}; name one as EvidenceProvider (see the Data "
            f"Service Directory) or give the person's {attribute}.",
        )
    if not candidates:
        raise Problem(
            404,
            "route.not_found",
            f"No authority reached through this broker is competent for {spec.title} at the person's {attribute}.",
        )
    raise Problem(
        422,
        "jurisdiction.ambiguous",
        f"The person's {attribute} matches {len(candidates)} authorities; name one as EvidenceProvider "
        "(see the Data Service Directory).",
    )
