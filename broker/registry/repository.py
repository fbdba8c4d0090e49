"""All registry queries."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.orm import Session

from broker.db.models import Authority, EvidenceType, LegalBasis, Office, Purpose, RegistryHistory, Route
from broker.registry.schemas import (
    AuthoritySpec,
    EvidenceTypeSpec,
    LegalBasisSpec,
    OfficeSpec,
    PurposeSpec,
    RegistryDocument,
    RouteSpec,
    RouteState,
    SubjectPaths,
    with_route_states,
)

# pg_advisory_xact_lock takes a bigint; derived from a name, like the integrator's.
REGISTRY_LOCK_KEY = int.from_bytes(hashlib.sha256(b"broker.registry.changes").digest()[:8], "big", signed=True)


def lock_registry(session: Session) -> None:
    """Be the only registry writer until the transaction ends: a PostgreSQL advisory lock; on
    SQLite the engine's BEGIN IMMEDIATE already admits one writer (the query begins it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(REGISTRY_LOCK_KEY)))
    else:
        session.execute(text("SELECT 1"))


def read_document(session: Session) -> RegistryDocument:
    """The stored registry, as it is: read without validation, so that a rule added later never
    makes a stored registry unreadable (writes are validated)."""
    types = session.scalars(select(EvidenceType).order_by(EvidenceType.id)).all()
    purposes = session.scalars(select(Purpose).order_by(Purpose.id)).all()
    legal_bases = session.scalars(select(LegalBasis).order_by(LegalBasis.id)).all()
    authorities = session.scalars(select(Authority).order_by(Authority.id)).all()
    routes = session.scalars(select(Route).order_by(Route.evidence_type_id, Route.ars_prefix)).all()
    offices = session.scalars(select(Office).order_by(Office.ars)).all()
    return RegistryDocument.model_construct(
        evidence_types=[
            EvidenceTypeSpec.model_construct(
                id=t.id,
                title=t.title,
                namespace=t.namespace,
                root_element=t.root_element,
                assurance_level=t.assurance_level,
                oots_classifications=list(t.oots_classifications or []),
                preview_required=t.preview_required,
                data_model=t.data_model,
                description=t.description,
                subject=SubjectPaths.model_construct(**t.subject_paths) if t.subject_paths else None,
            )
            for t in types
        ],
        purposes=[PurposeSpec.model_construct(id=p.id, name=p.name, leika_key=p.leika_key) for p in purposes],
        legal_bases=[
            LegalBasisSpec.model_construct(
                id=b.id,
                citation=b.citation,
                evidence_types=list(b.evidence_types),
                disclosure_delay_days=b.disclosure_delay_days,
            )
            for b in legal_bases
        ],
        authorities=[
            AuthoritySpec.model_construct(
                id=a.id,
                name=a.name,
                ars=a.ars,
                register_kind=a.register_kind,
                binding=a.binding,
                endpoint_url=a.endpoint_url,
                timeout_seconds=a.timeout_seconds,
                public_key_pem=a.public_key_pem,
                oots_identifier=a.oots_identifier,
                oots_identifier_scheme=a.oots_identifier_scheme,
            )
            for a in authorities
        ],
        routes=[
            RouteSpec.model_construct(
                evidence_type=r.evidence_type_id, ars_prefix=r.ars_prefix, authority=r.authority_id, state=r.state
            )
            for r in routes
        ],
        offices=[OfficeSpec.model_construct(ars=o.ars, name=o.name, kind=o.kind, kreis=o.kreis) for o in offices],
    )


def replace_document(session: Session, document: RegistryDocument) -> None:
    """Store the document as the whole registry; a route that does not state its state gets the
    one ``schemas.route_state`` gives it."""
    document = with_route_states(document, route_states(session))
    session.execute(delete(Route))
    session.execute(delete(Office))
    # Vocabularies are replaced whole (nothing refers to their rows), so a name or citation that
    # moves from one entry to another never meets itself in the unique index.
    session.execute(delete(Purpose))
    session.execute(delete(LegalBasis))
    wanted_types = {t.id for t in document.evidence_types}
    wanted_authorities = {a.id for a in document.authorities}
    for existing in session.scalars(select(EvidenceType)).all():
        if existing.id not in wanted_types:
            session.delete(existing)
    for existing_authority in session.scalars(select(Authority)).all():
        if existing_authority.id not in wanted_authorities:
            session.delete(existing_authority)
    session.flush()
    for t in document.evidence_types:
        fields = t.model_dump(exclude={"subject"})
        session.merge(EvidenceType(**fields, subject_paths=t.subject.model_dump() if t.subject else None))
    session.add_all(Purpose(**purpose.model_dump()) for purpose in document.purposes)
    session.add_all(LegalBasis(**basis.model_dump()) for basis in document.legal_bases)
    for a in document.authorities:
        upsert_authority(session, a)
    session.flush()
    session.add_all(_route_row(r) for r in document.routes)
    session.add_all(Office(**office.model_dump()) for office in document.offices)


def upsert_authority(session: Session, spec: AuthoritySpec) -> None:
    session.merge(Authority(**spec.model_dump()))


def add_route(session: Session, spec: RouteSpec) -> None:
    """Add or replace the route of its type and prefix; ``spec`` states its state."""
    # Route states change through UPDATE statements, like every state column outside the exchange.
    replaced = session.execute(
        update(Route)
        .where(Route.evidence_type_id == spec.evidence_type, Route.ars_prefix == spec.ars_prefix)
        .values(authority_id=spec.authority, state=spec.state)
    )
    if not replaced.rowcount:  # type: ignore[attr-defined]
        session.add(_route_row(spec))


def _route_row(spec: RouteSpec) -> Route:
    assert spec.state is not None, "a stored route states its state (schemas.route_state)"
    return Route(
        evidence_type_id=spec.evidence_type, ars_prefix=spec.ars_prefix, authority_id=spec.authority, state=spec.state
    )


def route_states(session: Session) -> dict[tuple[str, str], tuple[str, str]]:
    """(evidence type, ARS prefix) → (authority id, state) of every stored route."""
    rows = session.execute(select(Route.evidence_type_id, Route.ars_prefix, Route.authority_id, Route.state))
    return {(t, prefix): (authority, state) for t, prefix, authority, state in rows}


def set_route_states(session: Session, authority_id: str, state: RouteState) -> int:
    """Put every route of the authority in ``state``; returns how many changed."""
    result = session.execute(
        update(Route).where(Route.authority_id == authority_id, Route.state != state).values(state=state)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def delete_route(session: Session, evidence_type: str, ars_prefix: str) -> bool:
    result = session.execute(
        delete(Route).where(Route.evidence_type_id == evidence_type, Route.ars_prefix == ars_prefix)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def authority_exists(session: Session, authority_id: str) -> bool:
    return session.get(Authority, authority_id) is not None


def evidence_type_exists(session: Session, evidence_type_id: str) -> bool:
    return session.get(EvidenceType, evidence_type_id) is not None


def purpose_id(session: Session, reference: str) -> str | None:
    """The id of the purpose named by its id or its exact name; None if none is registered."""
    return session.scalar(select(Purpose.id).where(or_(Purpose.id == reference, Purpose.name == reference)))


def keep_document(
    session: Session, document: RegistryDocument, *, etag: str, actor: str, replaced_at: datetime
) -> None:
    """Keep a whole document that a replacement replaced (``registry_history``)."""
    session.add(
        RegistryHistory(replaced_at=replaced_at, actor=actor, etag=etag, document=document.model_dump(mode="json"))
    )


def newest_kept_other_than(session: Session, etag: str) -> RegistryHistory | None:
    """The newest kept document that differs from the one with ``etag`` (the current one)."""
    return session.scalars(
        select(RegistryHistory).where(RegistryHistory.etag != etag).order_by(RegistryHistory.id.desc()).limit(1)
    ).first()
