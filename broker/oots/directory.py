"""The Data Service Directory search: the registry's authorities that serve an evidence type in
a jurisdiction, as the DSD query answers it (the messages are :mod:`broker.oots.dsd`'s).

Jurisdictions come as NUTS codes of a Land or as Regionalschlüssel (ARS) prefixes, the
broker's own routing key. Where several authorities serve the area, the answer asks for the
user's attribute that decides competence (DSD:ERR:0005: place of birth or current address).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import replace

from broker.logging import get_logger
from broker.oots import dsd, mapping
from broker.oots.edm import UNREGISTERED_SCHEME, RequestedEvidenceType, Text
from broker.problems import Problem
from broker.registry.schemas import AuthoritySpec, EvidenceTypeSpec
from broker.registry.service import RegistrySnapshot

# NUTS level 1 code of each Land → its Regionalschlüssel (first two digits of the ARS).
NUTS1_TO_LAND = {
    "DE1": "08", "DE2": "09", "DE3": "11", "DE4": "12", "DE5": "04", "DE6": "02", "DE7": "06", "DE8": "13",
    "DE9": "03", "DEA": "05", "DEB": "07", "DEC": "10", "DED": "14", "DEE": "15", "DEF": "01", "DEG": "16",
}  # fmt: skip
LAND_TO_NUTS1 = {land: nuts for nuts, land in NUTS1_TO_LAND.items()}
_NUTS = re.compile(r"^DE[1-9A-G][0-9A-Z]{0,2}$")
_ARS = re.compile(r"^[0-9]{2,12}$")

log = get_logger(__name__)

DETERMINATIONS = {
    "PlaceOfBirth": (Text("Place of birth", "en"), Text("Geburtsort", "de")),
    "CurrentAddress": (Text("Current address", "en"), Text("Wohnort", "de")),
}
# The JurisdictionContextId of each determining attribute: the rules want a UUID, so each name
# stands for one derived from it (the same in every answer; the JurisdictionContext names it).
CONTEXT_IDS = {
    name: str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:once-only-broker:jurisdiction-context:{name}"))
    for name in DETERMINATIONS
}


def area_of(admin_l2: str | None, admin_l3: str | None) -> str | None:
    """The ARS prefix a DSD query's jurisdiction parameters name (the finer one wins): an ARS
    prefix as it is, or a NUTS code of a Land (NUTS 1, or finer, read as its Land)."""
    for value in (admin_l3, admin_l2):
        if not value:
            continue
        value = value.strip().upper()
        if _ARS.match(value):
            return value
        if _NUTS.match(value) and value[:3] in NUTS1_TO_LAND:
            return NUTS1_TO_LAND[value[:3]]
        raise dsd.DsdError(
            dsd.DsdCode.INVALID_VALUE,
            "dsd.jurisdiction_invalid",
            f"Jurisdiction {value[:40]!r} is neither a German NUTS code nor a Regionalschlüssel prefix.",
        )
    return None


def search_data_services(
    registry: RegistrySnapshot,
    *,
    query_id: str | None,
    classification: str | None,
    country: str | None,
    admin_l2: str | None,
    admin_l3: str | None,
    origin: str,
) -> bytes:
    """The DSD answer (always a QueryResponse; failures carry their DSD:ERR code)."""
    try:
        found = _data_services(registry, query_id, classification, country, admin_l2, admin_l3, origin)
    except dsd.DsdError as error:
        # The answer carries the reason code in rs:Exception/@detail; the log keeps it as a field.
        log.info("dsd_error_answered", code=str(error.code), reason=error.reason)
        return dsd.error_response(error)
    return dsd.query_response([found])


def _data_services(
    registry: RegistrySnapshot,
    query_id: str | None,
    classification: str | None,
    country: str | None,
    admin_l2: str | None,
    admin_l3: str | None,
    origin: str,
) -> dsd.DataServiceEvidenceType:
    if query_id != dsd.QUERY_ID:
        raise dsd.DsdError(
            dsd.DsdCode.UNKNOWN_QUERY, "dsd.query_unknown", f"Unknown queryId; this directory answers {dsd.QUERY_ID}."
        )
    if not classification or not country or max(len(classification), len(country)) > 300:
        raise dsd.DsdError(
            dsd.DsdCode.INVALID_QUERY,
            "dsd.parameter_missing",
            "The query needs evidence-type-classification and country-code.",
        )
    requested = RequestedEvidenceType(identifier=classification, classification=classification)
    spec = mapping.evidence_type_for(registry, requested)
    if spec is None:
        raise dsd.DsdError(
            dsd.DsdCode.UNKNOWN_EVIDENCE_TYPE,
            "dsd.evidence_type_unknown",
            "The evidence type requested cannot be found.",
        )
    if country.strip().upper() != "DE":
        raise dsd.DsdError(
            dsd.DsdCode.NO_DATA_SERVICE, "dsd.no_data_service", "This directory lists data services in DE only."
        )
    area = area_of(admin_l2, admin_l3)
    routes = registry.routes.get(spec.id, {})
    in_area = sorted(
        {a for prefix, a in routes.items() if area is None or prefix.startswith(area) or area.startswith(prefix)}
    )
    authorities = [registry.authorities[a] for a in in_area if a in registry.authorities]
    described = _described(spec, classification)
    if not authorities:
        raise dsd.DsdError(
            dsd.DsdCode.NO_DATA_SERVICE, "dsd.no_data_service", "No data services were found for the given parameters."
        )
    if area is not None and len(authorities) > 1:
        with contextlib.suppress(Problem):  # too coarse an area: the user must say more, below
            authorities = [registry.route(spec.id, area)]
    if len(authorities) > 1:
        kinds = {a.register_kind for a in authorities}
        context_id = "PlaceOfBirth" if kinds == {"standesamt"} else "CurrentAddress"
        raise dsd.DsdError(
            dsd.DsdCode.ADDITIONAL_INPUT,
            "dsd.jurisdiction_required",
            f"{len(authorities)} authorities provide this evidence type; the competent one follows from the "
            f"user's {DETERMINATIONS[context_id][0].value.lower()} (give jurisdiction-admin-l3).",
            evidence_type=replace(
                described,
                determination=dsd.JurisdictionDetermination(CONTEXT_IDS[context_id], DETERMINATIONS[context_id]),
            ),
        )
    services = tuple(_access_service(registry, spec.id, a, origin) for a in authorities)
    return replace(described, access_services=services)


def _described(spec: EvidenceTypeSpec, classification: str) -> dsd.DataServiceEvidenceType:
    """The type as the DSD describes it, by the identifiers and classification the rules want
    (a UUID; the Semantic Repository's classification where the registry has one)."""
    requested = RequestedEvidenceType(identifier=None, classification=classification)
    return dsd.DataServiceEvidenceType(
        identifier=mapping.data_service_identifier(spec),
        classification=mapping.classification_of(spec, requested),
        titles=(Text(spec.title, "de"),),
        distributions=mapping.offered_distributions(spec),
        assurance_level=spec.assurance_level.capitalize(),
        descriptions=(Text(spec.description, "de"),) if spec.description else (),
    )


def _access_service(
    registry: RegistrySnapshot, evidence_type_id: str, authority: AuthoritySpec, origin: str
) -> dsd.AccessService:
    prefix = mapping.route_prefix(registry, evidence_type_id, authority.id)
    identifier, scheme = mapping.oots_identity(authority)
    publisher = dsd.Publisher(
        identifier=identifier,
        scheme=scheme,
        name=Text(authority.name, "de"),
        country="DE",
        nuts=LAND_TO_NUTS1.get(prefix[:2]),
        local_unit=prefix if len(prefix) > 2 else None,
    )
    return dsd.AccessService(identifier=origin, scheme=UNREGISTERED_SCHEME, publisher=publisher)
