"""/v1/admin/registry: read and change evidence types, authorities and routes (admin role)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from broker.deps import Admin, Db, Registry
from broker.problems import Problem
from broker.registry import repository
from broker.registry.schemas import AuthoritySpec, RegistryDocument, RouteSpec

router = APIRouter(prefix="/v1/admin/registry", tags=["registry"])


@router.get("", response_model=RegistryDocument)
def get_registry(_: Admin, registry: Registry) -> RegistryDocument:
    return registry.get_document()


@router.put("", response_model=RegistryDocument)
def replace_registry(body: RegistryDocument, _: Admin, db: Db, registry: Registry) -> RegistryDocument:
    with db.unit_of_work() as session:
        repository.replace_document(session, body)
    registry.refresh()
    return body


@router.put("/authorities/{authority_id}", response_model=AuthoritySpec)
def put_authority(authority_id: str, body: AuthoritySpec, _: Admin, db: Db, registry: Registry) -> AuthoritySpec:
    if body.id != authority_id:
        raise Problem(422, "registry.id_mismatch", f"Body id {body.id!r} differs from the path's {authority_id!r}.")
    with db.unit_of_work() as session:
        repository.upsert_authority(session, body)
    registry.refresh()
    return body


@router.put("/routes", response_model=RouteSpec)
def put_route(body: RouteSpec, _: Admin, db: Db, registry: Registry) -> RouteSpec:
    with db.unit_of_work() as session:
        if not repository.evidence_type_exists(session, body.evidence_type):
            raise Problem(422, "evidence_type.unknown", f"Unknown evidence type {body.evidence_type!r}.")
        if not repository.authority_exists(session, body.authority):
            raise Problem(422, "authority.unknown", f"Unknown authority {body.authority!r}.")
        repository.add_route(session, body)
    registry.refresh()
    return body


@router.delete("/routes", status_code=204)
def delete_route(evidence_type: str, ars_prefix: str, _: Admin, db: Db, registry: Registry) -> Response:
    with db.unit_of_work() as session:
        if not repository.delete_route(session, evidence_type, ars_prefix):
            raise Problem(404, "route.not_found", f"No route for {evidence_type} at {ars_prefix!r}.")
    registry.refresh()
    return Response(status_code=204)
