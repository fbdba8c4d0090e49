"""Reference adapters for the demo registers: they read the register tables and issue evidence XML.

They run in-process in the broker (binding ``in_process``) and behind the reference authority
server; either way they get a database session for the register data and the authority they
answer for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from lxml.builder import ElementMaker
from sqlalchemy.orm import Session

from adapters.protocol import AdapterOutcome, EvidenceQuery, OutcomeKind
from adapters.registers.models import BirthRecord, BusinessRegistration, Resident
from adapters.registers.queries import find_matches

COMMON_NS = "urn:de:nachweis:common:1"
SEX_LABELS = {"w": "weiblich", "m": "maennlich", "d": "divers", "x": "ohne Angabe"}


class RegisterAdapter:
    """One register of one authority: matching is shared, each register renders its own document."""

    def __init__(self, session: Session, authority_id: str, authority_name: str, authority_ars: str, register: str):
        self._session = session
        self._authority = (authority_id, authority_name, authority_ars)
        self._register = register

    def fetch(self, query: EvidenceQuery) -> AdapterOutcome:
        model = REGISTERS[self._register][0]
        matches: Sequence[Any] = find_matches(self._session, model, self._authority[0], query.subject)
        if not matches:
            return AdapterOutcome(OutcomeKind.NOT_FOUND, detail="no register entry matches the subject")
        if len(matches) > 1:
            return AdapterOutcome(
                OutcomeKind.AMBIGUOUS, detail=f"{len(matches)} register entries match; give more attributes"
            )
        return AdapterOutcome.found(issue(self._register, matches[0], *self._authority, query.request_id))


def issue(
    register: str, record: Any, authority_id: str, authority_name: str, authority_ars: str, request_id: str
) -> bytes:
    """The register's document about ``record``, issued by the authority for the broker's ``request_id``."""
    _model, render, namespace = REGISTERS[register]
    issuance = _document_maker(namespace).Ausstellung(
        c.NachweisId(f"{authority_id}/{request_id}"),
        c.Ausstellungszeitpunkt(datetime.now(UTC).isoformat(timespec="seconds")),
        c.Aussteller(c.Kennung(authority_id), c.Name(authority_name), c.Regionalschluessel(authority_ars)),
    )
    return etree.tostring(render(record, issuance), xml_declaration=True, encoding="UTF-8")


def _document_maker(namespace: str) -> ElementMaker:
    return ElementMaker(namespace=namespace, nsmap={None: namespace, "nw": COMMON_NS})


# The shared types of xsd/common.xsd put the children of Ausstellung and Person in its namespace.
c = ElementMaker(namespace=COMMON_NS, nsmap={"nw": COMMON_NS})


def _person(e: ElementMaker, record: Resident | BusinessRegistration) -> etree._Element:
    person = e.Person() if isinstance(record, Resident) else e.Inhaber()
    if record.idnr:
        person.append(c.IdNr(record.idnr))
    person.append(c.Familienname(record.family_name))
    person.append(c.Vornamen(record.given_name))
    if isinstance(record, Resident) and record.birth_name:
        person.append(c.Geburtsname(record.birth_name))
    person.append(c.Geburtsdatum(record.birth_date.isoformat()))
    person.append(c.Geburtsort(record.birth_place))
    return person


MELDE_NS = "urn:de:nachweis:meldebescheinigung:1"
GEBURT_NS = "urn:de:nachweis:geburtsurkunde:1"
GEWERBE_NS = "urn:de:nachweis:gewerbeanmeldung:1"


def render_meldebescheinigung(r: Resident, issuance: etree._Element) -> etree._Element:
    e = _document_maker(MELDE_NS)
    return e.Meldebescheinigung(
        issuance,
        _person(e, r),
        e.Anschrift(
            e.Strasse(r.street),
            e.Hausnummer(r.house_number),
            e.Postleitzahl(r.postal_code),
            e.Ort(r.municipality),
            e.Gemeindeschluessel(r.municipality_ars),
        ),
        e.Wohnungsstatus("alleinige Wohnung"),
        e.Einzugsdatum(r.moved_in.isoformat()),
    )


def render_geburtsurkunde(b: BirthRecord, issuance: etree._Element) -> etree._Element:
    e = _document_maker(GEBURT_NS)
    document = e.Geburtsurkunde(
        issuance,
        e.Registereintrag(b.entry_number),
        e.Kind(
            *([e.IdNr(b.idnr)] if b.idnr else []),
            e.Familienname(b.family_name),
            e.Vornamen(b.given_name),
            e.Geschlecht(SEX_LABELS.get(b.sex, "ohne Angabe")),
            e.Geburtsdatum(b.birth_date.isoformat()),
            e.Geburtsort(b.birth_place),
        ),
        e.Mutter(b.mother_name),
    )
    if b.father_name:
        document.append(e.Vater(b.father_name))
    return document


def render_gewerbeanmeldung(g: BusinessRegistration, issuance: etree._Element) -> etree._Element:
    e = _document_maker(GEWERBE_NS)
    return e.Gewerbeanmeldung(
        issuance,
        e.Registernummer(g.registration_number),
        _person(e, g),
        e.Betrieb(
            e.Bezeichnung(g.trade_name),
            e.Taetigkeit(g.activity),
            e.Anschrift(g.business_address),
            e.Gemeindeschluessel(g.municipality_ars),
        ),
        e.Beginn(g.registered_on.isoformat()),
    )


REGISTERS: dict[str, tuple[type[Any], Callable[[Any, etree._Element], etree._Element], str]] = {
    "melderegister": (Resident, render_meldebescheinigung, MELDE_NS),
    "standesamt": (BirthRecord, render_geburtsurkunde, GEBURT_NS),
    "gewerberegister": (BusinessRegistration, render_gewerbeanmeldung, GEWERBE_NS),
}


def reference_adapter(session: Session, authority_id: str, name: str, ars: str, register: str) -> RegisterAdapter:
    return RegisterAdapter(session, authority_id, name, ars, register)
