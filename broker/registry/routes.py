"""/v1/admin/registry: read and change the registry (admin role).

Every GET answers an ``ETag``; replacing what exists (the whole registry, an authority, a route)
needs it back as ``If-Match`` (428 without, 412 when it has changed since). Every change is a
``registry_changed`` log entry naming the admin. A whole replacement states every section and
needs ``?allow_empty=true`` to leave nothing to route by; ``POST /rollback`` restores the
document the last replacement replaced.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from broker.deps import Admin, ClockDep, Db, Egress, Registry
from broker.problems import Problem, problem_responses
from broker.registry import repository, service
from broker.registry.schemas import AuthoritySpec, RegistryDocument, RouteSpec

router = APIRouter(prefix="/v1/admin/registry", tags=["registry"])

IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", max_length=1000, description="The ETag of what the request replaces (from its GET)"),
]
EvidenceTypeParam = Annotated[str, Query(min_length=1, max_length=200)]
ArsPrefixParam = Annotated[str, Query(pattern=r"^[0-9]{0,12}$")]
AllowEmpty = Annotated[
    bool, Query(description="Allow a registry with no evidence types, authorities or routes (routes nothing)")
]
RESPONSES = problem_responses(401, 403, 404, 412, 422, 428)


def _tagged(entry: BaseModel, etag: str, status_code: int = 200) -> JSONResponse:
    return JSONResponse(entry.model_dump(mode="json"), status_code=status_code, headers={"ETag": f'"{etag}"'})


@router.get("", response_model=RegistryDocument, responses=RESPONSES)
def get_registry(_: Admin, db: Db) -> JSONResponse:
    # From the database, not this process's snapshot: the ETag must be the one a change compares.
    with db.read() as session:
        document = repository.read_document(session)
    return _tagged(document, service.digest(document))


@router.put("", response_model=RegistryDocument, responses=RESPONSES)
def replace_registry(
    body: RegistryDocument,
    admin: Admin,
    db: Db,
    registry: Registry,
    clock: ClockDep,
    egress: Egress,
    if_match: IfMatch = None,
    allow_empty: AllowEmpty = False,
) -> JSONResponse:
    with db.unit_of_work() as session:
        etag = service.replace_registry(
            session,
            body,
            actor=admin.name,
            now=clock.now(),
            if_match=if_match,
            egress=egress,
            allow_empty=allow_empty,
        )
        # As stored: the routes that stated no state show the one they got.
        stored = repository.read_document(session)
    registry.refresh()
    return _tagged(stored, etag)


@router.post("/rollback", response_model=RegistryDocument, responses=problem_responses(401, 403, 409, 412, 422, 428))
def rollback_registry(
    admin: Admin,
    db: Db,
    registry: Registry,
    clock: ClockDep,
    egress: Egress,
    if_match: IfMatch = None,
    allow_empty: AllowEmpty = False,
) -> JSONResponse:
    """Restore the document the last whole replacement replaced (If-Match: the current ETag)."""
    with db.unit_of_work() as session:
        restored = service.rollback_registry(
            session, actor=admin.name, now=clock.now(), if_match=if_match, egress=egress, allow_empty=allow_empty
        )
    registry.refresh()
    return _tagged(restored.document, restored.etag_after)


@router.get("/authorities/{authority_id}", response_model=AuthoritySpec, responses=RESPONSES)
def get_authority(authority_id: str, _: Admin, db: Db) -> JSONResponse:
    with db.read() as session:
        authority = service.authority_of(repository.read_document(session), authority_id)
    return _tagged(authority, service.digest(authority))


@router.put("/authorities/{authority_id}", response_model=AuthoritySpec, responses=RESPONSES)
def put_authority(
    authority_id: str,
    body: AuthoritySpec,
    admin: Admin,
    db: Db,
    registry: Registry,
    clock: ClockDep,
    egress: Egress,
    if_match: IfMatch = None,
) -> JSONResponse:
    if body.id != authority_id:
        raise Problem(422, "registry.id_mismatch", f"Body id {body.id!r} differs from the path's {authority_id!r}.")
    with db.unit_of_work() as session:
        etag = service.put_authority(session, body, actor=admin.name, now=clock.now(), if_match=if_match, egress=egress)
    registry.refresh()
    return _tagged(body, etag)


@router.get("/routes", response_model=RouteSpec, responses=RESPONSES)
def get_route(evidence_type: EvidenceTypeParam, ars_prefix: ArsPrefixParam, _: Admin, db: Db) -> JSONResponse:
    with db.read() as session:
        route = service.route_of(repository.read_document(session), evidence_type, ars_prefix)
    return _tagged(route, service.digest(route))


@router.put("/routes", response_model=RouteSpec, responses=RESPONSES)
def put_route(
    body: RouteSpec, admin: Admin, db: Db, registry: Registry, clock: ClockDep, if_match: IfMatch = None
) -> JSONResponse:
    with db.unit_of_work() as session:
        route = service.put_route(session, body, actor=admin.name, now=clock.now(), if_match=if_match)
    registry.refresh()
    return _tagged(route, service.digest(route))


@router.delete("/routes", status_code=204, responses=RESPONSES)
def delete_route(
    evidence_type: EvidenceTypeParam,
    ars_prefix: ArsPrefixParam,
    admin: Admin,
    db: Db,
    registry: Registry,
    clock: ClockDep,
) -> Response:
    with db.unit_of_work() as session:
        service.delete_route(session, evidence_type, ars_prefix, actor=admin.name, now=clock.now())
    registry.refresh()
    return Response(status_code=204)
