"""All registry queries."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from broker.db.models import Authority, EvidenceType, Route
from broker.registry.schemas import AuthoritySpec, EvidenceTypeSpec, RegistryDocument, RouteSpec


def read_document(session: Session) -> RegistryDocument:
    types = session.scalars(select(EvidenceType).order_by(EvidenceType.id)).all()
    authorities = session.scalars(select(Authority).order_by(Authority.id)).all()
    routes = session.scalars(select(Route).order_by(Route.evidence_type_id, Route.ars_prefix)).all()
    return RegistryDocument.model_construct(
        evidence_types=[
            EvidenceTypeSpec(
                id=t.id,
                title=t.title,
                namespace=t.namespace,
                root_element=t.root_element,
                assurance_level=t.assurance_level,  # type: ignore[arg-type]
                oots_classifications=list(t.oots_classifications or []),
                preview_required=t.preview_required,
            )
            for t in types
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
            )
            for a in authorities
        ],
        routes=[
            RouteSpec(evidence_type=r.evidence_type_id, ars_prefix=r.ars_prefix, authority=r.authority_id)
            for r in routes
        ],
    )


def replace_document(session: Session, document: RegistryDocument) -> None:
    session.execute(delete(Route))
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
        session.merge(EvidenceType(**t.model_dump()))
    for a in document.authorities:
        upsert_authority(session, a)
    session.flush()
    for r in document.routes:
        add_route(session, r)


def upsert_authority(session: Session, spec: AuthoritySpec) -> None:
    session.merge(Authority(**spec.model_dump()))


def add_route(session: Session, spec: RouteSpec) -> Route:
    existing = session.scalars(
        select(Route).where(Route.evidence_type_id == spec.evidence_type, Route.ars_prefix == spec.ars_prefix)
    ).first()
    if existing is not None:
        existing.authority_id = spec.authority
        return existing
    route = Route(evidence_type_id=spec.evidence_type, ars_prefix=spec.ars_prefix, authority_id=spec.authority)
    session.add(route)
    return route


def delete_route(session: Session, evidence_type: str, ars_prefix: str) -> bool:
    result = session.execute(
        delete(Route).where(Route.evidence_type_id == evidence_type, Route.ars_prefix == ars_prefix)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def authority_exists(session: Session, authority_id: str) -> bool:
    return session.get(Authority, authority_id) is not None


def evidence_type_exists(session: Session, evidence_type_id: str) -> bool:
    return session.get(EvidenceType, evidence_type_id) is not None
