"""Between the EDM and the broker's exchange: evidence types, the subject, the competent
authority, assurance levels, and the EDM error code of every refusal.

Which authority is competent (the broker routes by Regionalschlüssel, an OOTS request carries
none) is decided in this order:

1. the request's ``EvidenceProvider`` names one of the registry's authorities (its identifier
   is the authority id, as the broker's Data Service Directory publishes it): that one;
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
from collections.abc import Callable

from pydantic import ValidationError

from adapters.identity import idnr_of_person_identifier, name_key
from broker.exchange.schemas import EvidenceRequestIn, SubjectIn
from broker.oots.edm import (
    Agent,
    EdmCode,
    EdmError,
    EvidenceRequest,
    NaturalPerson,
    RequestedEvidenceType,
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

# (register kind) → the person's attribute that decides which authority is competent.
DETERMINING_ATTRIBUTE = {
    "standesamt": "PlaceOfBirth",
    "melderegister": "CurrentAddress",
    "gewerberegister": "CurrentAddress",
}

# Stable reason codes (prefixes) → EDM error code; the first match wins.
_CODES: tuple[tuple[str, EdmCode], ...] = (
    ("auth.wrong_role", EdmCode.AUTHORIZATION),
    ("auth.", EdmCode.AUTHENTICATION),
    ("oots.assurance_insufficient", EdmCode.AUTHENTICATION),
    ("oots.requester_", EdmCode.AUTHORIZATION),
    ("policy.", EdmCode.AUTHORIZATION),
    ("consent.", EdmCode.AUTHORIZATION),
    ("preview.expired", EdmCode.TIMEOUT),
    ("preview.unavailable", EdmCode.UNSUPPORTED),
    ("preview.", EdmCode.AUTHORIZATION),
    ("evidence_type.unknown", EdmCode.NOT_FOUND),
    ("purpose.unknown", EdmCode.INVALID_REQUEST),
    ("legal_basis.not_applicable", EdmCode.AUTHORIZATION),
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
    """The OOTS classification to name the type by: the request's, else the first the registry maps."""
    if requested is not None and requested.classification:
        return requested.classification
    names = [c for c in spec.oots_classifications if not _UUID.match(c)]
    return names[0] if names else spec.id


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


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
            purpose=procedure[:300],
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
            if authority.id == provider.identifier:
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
