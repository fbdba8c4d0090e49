"""The registry document: the TOML file format and the admin API's JSON are the same shape."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal, get_args

from lxml import etree
from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_validator

from adapters.signing import SignatureError, load_public_key
from broker.egress import destination
from broker.schemas_common import MULTILINE, ApiModel

# eIDAS levels of assurance, in increasing order.
AssuranceLevel = Literal["low", "substantial", "high"]
ASSURANCE_LEVELS: tuple[AssuranceLevel, ...] = get_args(AssuranceLevel)


def assurance_level(value: str) -> AssuranceLevel | None:
    """The level a value names (case-insensitive), or None."""
    return next((level for level in ASSURANCE_LEVELS if level == value.lower()), None)


# Where a Regionalschlüssel (ARS) may be cut: the whole country, Land (2 digits), Regierungsbezirk
# (1), Kreis (2), Gemeindeverband (4), Gemeinde (3). A prefix between two levels names no area.
ARS_LEVELS = (0, 2, 3, 5, 9, 12)
# Ids of registry entries: requests, grants and log entries name them, so they are identifiers.
ID_PATTERN = r"^[A-Za-z0-9._-]+$"

# The schemes an authority's OOTS agent identifier may be in: codes of the code list "EAS" (CEF
# Electronic Address Scheme, version 2022-03-04, as the OOTS rules use it) that identify German
# public bodies. More codes of that list can be added here when an authority needs one.
OOTS_IDENTIFIER_SCHEMES = {
    "0060": "Data Universal Numbering System (D-U-N-S Number)",
    "0088": "EAN Location Code (GLN)",
    "0199": "Global legal entity identifier (GLEIF)",
    "0203": "eDelivery Network Participant identifier",
    "0204": "Leitweg-ID",
    "9930": "Germany VAT number",
}
# A Leitweg-ID: coarse address (2 to 12 digits of the Regionalschlüssel), optional fine address
# (up to 30 letters and digits), two check digits (ISO 7064 MOD 97-10) — the KoSIT format.
_LEITWEG_ID = re.compile(r"^(?P<coarse>[0-9]{2,12})(?:-(?P<fine>[A-Za-z0-9]{1,30}))?-(?P<check>[0-9]{2})$")


def leitweg_check_digits(coarse: str, fine: str = "") -> str:
    """The two check digits of a Leitweg-ID (letters count as 10 to 35, as in an IBAN)."""
    number = int("".join(str(int(c, 36)) for c in (coarse + fine).upper()) + "00")
    return f"{98 - number % 97:02d}"


def check_oots_identifier(scheme: str, identifier: str) -> None:
    """Raises ValueError where ``identifier`` is not one of ``scheme``'s (only Leitweg-IDs are
    checked beyond the scheme: their form and check digits)."""
    if scheme not in OOTS_IDENTIFIER_SCHEMES:
        raise ValueError(
            f"oots_identifier_scheme {scheme!r} is not one of the EAS codes {sorted(OOTS_IDENTIFIER_SCHEMES)}"
        )
    if scheme == "0204":
        found = _LEITWEG_ID.match(identifier)
        if found is None:
            raise ValueError(
                "a Leitweg-ID (scheme 0204) is COARSE[-FINE]-CHECK: 2-12 digits, 1-30 letters/digits, 2 digits"
            )
        if found["check"] != leitweg_check_digits(found["coarse"], found["fine"] or ""):
            raise ValueError(f"Leitweg-ID {identifier}: wrong check digits")


def _well_formed_ars(value: str) -> str:
    if len(value) not in ARS_LEVELS:
        raise ValueError("an ARS prefix ends at a level: 0, 2, 3, 5, 9 or 12 digits")
    if value and not 1 <= int(value[:2]) <= 16:
        raise ValueError("an ARS begins with the key of a Land, 01 to 16")
    return value


ArsPrefix = Annotated[
    str,
    Field(pattern=r"^[0-9]{0,12}$", description="Regionalschlüssel prefix (ARS), cut at one of its levels"),
    AfterValidator(_well_formed_ars),
]


def check_endpoint_url(url: str) -> None:
    """Where the broker may call an authority; raises ValueError naming what is wrong.

    Every registry write validates each authority's ``endpoint_url`` here (the admin API,
    ``broker registry load``, ``broker adapters connect``); reads of the stored registry do not,
    so a stricter rule never makes it unreadable. Here the form, whatever the settings: an
    http(s) URL with a host, nothing URL parsers disagree on (``broker.egress.destination``).
    What depends on the settings (https outside development, the addresses, the allow-list)
    is checked by the registry's write functions (``service.check_endpoints``).
    """
    destination(url)


class SubjectPaths(ApiModel):
    """Where an evidence type's documents state their subject: XPath 1.0 expressions, evaluated
    on the document's root element, each selecting one node (or giving a string)."""

    model_config = ConfigDict(extra="forbid")

    # Prefix → namespace URI, for the expressions below.
    namespaces: dict[str, str] = {}
    family_name: str = Field(min_length=1, max_length=500)
    given_names: str = Field(min_length=1, max_length=500)
    birth_date: str = Field(min_length=1, max_length=500)
    # Not every document states the IDNr; where both the request and the document have one, it decides.
    idnr: str | None = Field(default=None, min_length=1, max_length=500)

    def paths(self) -> dict[str, str]:
        """Attribute → expression, for the attributes this type's documents state."""
        named = {
            "family_name": self.family_name,
            "given_names": self.given_names,
            "birth_date": self.birth_date,
            "idnr": self.idnr,
        }
        return {attribute: path for attribute, path in named.items() if path is not None}

    @model_validator(mode="after")
    def _paths_evaluate(self) -> SubjectPaths:
        # Evaluated once on an empty element: this catches syntax errors, undeclared prefixes and
        # expressions that give numbers or truth values instead of nodes or a string.
        for attribute, path in self.paths().items():
            try:
                found = etree.XPath(path, namespaces=self.namespaces)(etree.Element("empty"))
            except (etree.XPathError, TypeError, ValueError) as error:
                raise ValueError(f"subject.{attribute}: not a usable XPath ({error})") from None
            if not isinstance(found, list | str):
                raise ValueError(f"subject.{attribute}: the XPath must select nodes or give a string")
        return self


class EvidenceTypeSpec(ApiModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=200)
    namespace: str = Field(min_length=1, max_length=300)
    root_element: str = Field(min_length=1, max_length=100)
    assurance_level: AssuranceLevel = "substantial"
    oots_classifications: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default=[], max_length=50)
    preview_required: bool = False
    # The type's data model in the OOTS Semantic Repository, a URL under its distributions (an
    # evidence's Distribution/ConformsTo, the DSD's DistributedAs/ConformsTo), and a description
    # of the type (IsConformantTo/Description, the DSD's Description; German, like the title).
    data_model: str | None = Field(
        default=None, max_length=300, pattern=r"^https://sr\.oots\.tech\.europa\.eu/distributions/\S+$"
    )
    description: str | None = Field(default=None, min_length=1, max_length=1000)
    # Required on every write; None only for a type stored before the broker checked subjects
    # (its evidence is then never delivered: the broker cannot tell whom it is about).
    subject: SubjectPaths | None = None

    @model_validator(mode="after")
    def _names_its_subject(self) -> EvidenceTypeSpec:
        if self.subject is None:
            raise ValueError(f"evidence type {self.id}: subject (where its documents state the subject) is required")
        return self


class PurposeSpec(ApiModel):
    """Why a requester may ask: requests and grants name it by id or by its exact name."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100, pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=300, examples=["Wohngeldantrag"])
    # Key of the administrative service in the Leistungskatalog (LeiKa), 14 digits.
    leika_key: str | None = Field(default=None, pattern=r"^[0-9]{14}$")


class LegalBasisSpec(ApiModel):
    """A provision an explicit request rests on, named by id or by its exact citation."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100, pattern=ID_PATTERN)
    citation: str = Field(min_length=1, max_length=300, examples=["§ 23 WoGG"])
    # The evidence types a request may obtain on this basis.
    evidence_types: list[str] = Field(min_length=1, max_length=200)
    # Where the law exempts retrievals on this basis from disclosure for a time (e.g. queries of
    # an investigation): the citizen's cockpit shows such an exchange only this many days after
    # it. The log entry exists at once either way; None discloses at once.
    disclosure_delay_days: int | None = Field(default=None, ge=1, le=36_500)


class AuthoritySpec(ApiModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100, pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=300)
    ars: ArsPrefix
    register_kind: Literal["melderegister", "standesamt", "gewerberegister"]
    binding: Literal["in_process", "http_push", "pull"] = "in_process"
    endpoint_url: str | None = Field(default=None, max_length=500)
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    public_key_pem: Annotated[str | None, MULTILINE] = Field(default=None, max_length=2000)
    # The authority as an OOTS agent (EvidenceProvider, the DSD's Publisher): its identifier in an
    # EAS scheme (OOTS_IDENTIFIER_SCHEMES, e.g. its Leitweg-ID under 0204). Without one, OOTS
    # messages name it by its id under the ebCore "unregistered" scheme.
    oots_identifier: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )
    oots_identifier_scheme: str | None = Field(default=None, pattern=r"^[0-9A-Z]{2,4}$")

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_allowed(cls, value: str | None) -> str | None:
        if value is not None:
            check_endpoint_url(value)
        return value

    @field_validator("public_key_pem")
    @classmethod
    def _key_parses(cls, value: str | None) -> str | None:
        # Answers are verified against this key: one that does not load would fail every answer.
        if value is not None:
            try:
                load_public_key(value)
            except SignatureError:
                raise ValueError("public_key_pem must be a PEM Ed25519 public key") from None
        return value

    @model_validator(mode="after")
    def _push_needs_endpoint(self) -> AuthoritySpec:
        if self.binding == "http_push" and not self.endpoint_url:
            raise ValueError(f"authority {self.id}: binding http_push needs endpoint_url")
        return self

    @model_validator(mode="after")
    def _oots_identifier_in_its_scheme(self) -> AuthoritySpec:
        if (self.oots_identifier is None) != (self.oots_identifier_scheme is None):
            raise ValueError(f"authority {self.id}: oots_identifier and oots_identifier_scheme go together")
        if self.oots_identifier is not None and self.oots_identifier_scheme is not None:
            try:
                check_oots_identifier(self.oots_identifier_scheme, self.oots_identifier)
            except ValueError as invalid:
                raise ValueError(f"authority {self.id}: {invalid}") from None
        return self


# Only an active route routes; a pending one waits for its authority to pass the conformance kit
# (`broker rollout onboard`).
RouteState = Literal["active", "pending"]


class RouteSpec(ApiModel):
    model_config = ConfigDict(extra="forbid")

    evidence_type: str = Field(min_length=1, max_length=200)
    ars_prefix: ArsPrefix
    authority: str = Field(min_length=1, max_length=100)
    # Unstated (None), the write decides (``registry.service.route_state``): the state the same
    # route to the same authority has already, else active for an in-process authority and
    # pending for a remote one. Read back, a route always states it.
    state: RouteState | None = None


OfficeKind = Literal["amt", "amtsfreie_gemeinde", "kreisfreie_stadt"]


class OfficeSpec(ApiModel):
    """A municipal office the rollout covers: its area is an ARS prefix (routes resolve for it
    like for a request's jurisdiction), its Kreis the ARS's first 5 digits."""

    model_config = ConfigDict(extra="forbid")

    ars: ArsPrefix
    name: str = Field(min_length=1, max_length=300)
    kind: OfficeKind
    # The name of its Kreis (for a kreisfreie Stadt, its own), as the rollout report groups it.
    kreis: str = Field(min_length=1, max_length=300)

    @field_validator("ars")
    @classmethod
    def _within_a_kreis(cls, value: str) -> str:
        if len(value) < 5:
            raise ValueError("an office's ARS names at least its Kreis (5 digits)")
        return value


class RegistryDocument(ApiModel):
    model_config = ConfigDict(extra="forbid")

    evidence_types: list[EvidenceTypeSpec] = []
    purposes: list[PurposeSpec] = []
    legal_bases: list[LegalBasisSpec] = []
    authorities: list[AuthoritySpec] = []
    routes: list[RouteSpec] = []
    # The offices the rollout matrix covers (`broker rollout status`); routing does not read them.
    offices: list[OfficeSpec] = []

    @model_validator(mode="after")
    def _entries_unique(self) -> RegistryDocument:
        for section, ids in (
            ("evidence type", [t.id for t in self.evidence_types]),
            ("purpose", [p.id for p in self.purposes]),
            ("legal basis", [b.id for b in self.legal_bases]),
            ("authority", [a.id for a in self.authorities]),
            # An OOTS request names its EvidenceProvider by this identity: it must name one authority.
            (
                "OOTS agent identifier",
                [
                    f"{a.oots_identifier_scheme}:{a.oots_identifier}".upper()
                    for a in self.authorities
                    if a.oots_identifier
                ],
            ),
        ):
            _refuse_duplicates(section, ids)
        # A request names a purpose or legal basis by id or by its exact name or citation: no
        # such name may stand for two entries.
        _refuse_ambiguous_names("purpose", [(p.id, p.name) for p in self.purposes])
        _refuse_ambiguous_names("legal basis", [(b.id, b.citation) for b in self.legal_bases])
        return self

    @model_validator(mode="after")
    def _references_resolve(self) -> RegistryDocument:
        types = {t.id for t in self.evidence_types}
        authorities = {a.id for a in self.authorities}
        for basis in self.legal_bases:
            for evidence_type in basis.evidence_types:
                if evidence_type not in types:
                    raise ValueError(f"legal basis {basis.id}: unknown evidence type {evidence_type}")
        seen: set[tuple[str, str]] = set()
        for route in self.routes:
            if route.evidence_type not in types:
                raise ValueError(f"route {route.ars_prefix!r}: unknown evidence type {route.evidence_type}")
            if route.authority not in authorities:
                raise ValueError(f"route {route.ars_prefix!r}: unknown authority {route.authority}")
            key = (route.evidence_type, route.ars_prefix)
            if key in seen:
                raise ValueError(f"duplicate route for {route.evidence_type} at {route.ars_prefix!r}")
            seen.add(key)
        return self

    @model_validator(mode="after")
    def _offices_apart(self) -> RegistryDocument:
        # Offices are disjoint areas: one inside another would count its cells twice.
        areas = sorted(office.ars for office in self.offices)
        for outer, inner in zip(areas, areas[1:], strict=False):
            if inner.startswith(outer):
                what = "duplicate office" if inner == outer else f"office {inner!r} lies within office"
                raise ValueError(f"{what} {outer!r}")
        kreise: dict[str, str] = {}
        for office in self.offices:
            if kreise.setdefault(office.ars[:5], office.kreis) != office.kreis:
                raise ValueError(
                    f"office {office.ars!r}: Kreis {office.ars[:5]} is named both {kreise[office.ars[:5]]!r} "
                    f"and {office.kreis!r}"
                )
        return self


# (evidence type, ARS prefix) → (authority id, state) of the routes stored already.
StoredRoutes = Mapping[tuple[str, str], tuple[str, str]]


def route_state(route: RouteSpec, binding: str | None, stored: tuple[str, str] | None) -> RouteState:
    """The state a route is stored in: the one it states; else the state of the same route to
    the same authority stored already (reloading a file keeps what onboarding activated); else
    active for an in-process authority and pending for a remote one, which routes only once it
    has passed the conformance kit."""
    if route.state is not None:
        return route.state
    if stored is not None and stored[0] == route.authority:
        return "active" if stored[1] == "active" else "pending"
    return "active" if binding == "in_process" else "pending"


def with_route_states(document: RegistryDocument, stored: StoredRoutes) -> RegistryDocument:
    """The document with every route stating its state (``route_state``)."""
    bindings = {a.id: a.binding for a in document.authorities}
    routes = [
        r
        if r.state is not None
        else r.model_copy(
            update={"state": route_state(r, bindings.get(r.authority), stored.get((r.evidence_type, r.ars_prefix)))}
        )
        for r in document.routes
    ]
    return document.model_copy(update={"routes": routes})


def _refuse_duplicates(section: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for entry_id in ids:
        if entry_id in seen:
            raise ValueError(f"duplicate {section} {entry_id!r}")
        seen.add(entry_id)


def _refuse_ambiguous_names(section: str, entries: list[tuple[str, str]]) -> None:
    owner: dict[str, str] = {}
    for entry_id, name in entries:
        for key in (entry_id, name):
            if owner.setdefault(key, entry_id) != entry_id:
                raise ValueError(f"{section} {key!r} names two entries, {owner[key]} and {entry_id}")
