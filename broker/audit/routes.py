"""The audit API: signed checkpoints, proofs, the entry listing for auditors, and the broker's keys.

Checkpoints, proofs and keys are public, as in Certificate Transparency: they consist of hashes
and signatures and reveal nothing about anyone, and citizens and requesters must be able to check
a receipt without an account. Listing entries is for auditors (and admins): entries name
requesters, authorities and pseudonyms.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from broker.audit import proofs, repository
from broker.audit.auditor import checkpoint_verifiers
from broker.audit.proofs import ProofUnavailable, b64
from broker.audit.schemas import ConsistencyProofOut, EntriesPage, EntryOut, InclusionProofOut
from broker.deps import Auditor, Db, Keys, SettingsDep
from broker.problems import Problem, problem_responses
from broker.schemas_common import MAX_LOG_INDEX, Moment

router = APIRouter(tags=["audit"])

_PROBLEMS = problem_responses(400, 401, 403, 404, 422)
_TEXT = "text/plain; charset=utf-8"
# Proofs for a given size never change; the latest checkpoint does, every integration.
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_FRESH = {"Cache-Control": "no-cache"}


def _problem(error: ProofUnavailable) -> Problem:
    return Problem(error.status, error.reason, error.detail)


@router.get(
    "/v1/audit/checkpoint",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "C2SP signed checkpoint"}, **_PROBLEMS},
    summary="The latest signed checkpoint (or the one for tree_size)",
)
def get_checkpoint(db: Db, tree_size: Annotated[int | None, Query(ge=0, le=MAX_LOG_INDEX)] = None) -> PlainTextResponse:
    with db.read() as session:
        if tree_size is None:
            found = repository.latest_checkpoint(session)
        else:
            found = repository.checkpoint_at(session, tree_size)
    if found is None:
        if tree_size is None:
            raise Problem(404, "audit.log_empty", "The log has no signed checkpoint yet.")
        raise Problem(404, "audit.checkpoint_not_found", f"There is no signed checkpoint for tree size {tree_size}.")
    return PlainTextResponse(found.note, media_type=_TEXT, headers=_FRESH if tree_size is None else _IMMUTABLE)


@router.get(
    "/v1/audit/proofs/inclusion",
    response_model=InclusionProofOut,
    responses=_PROBLEMS,
    summary="RFC 9162 inclusion proof of leaf `index` in the tree of `tree_size` (default: latest)",
)
def get_inclusion_proof(
    db: Db,
    index: Annotated[int, Query(ge=0, le=MAX_LOG_INDEX)],
    tree_size: Annotated[int | None, Query(ge=1, le=MAX_LOG_INDEX)] = None,
) -> JSONResponse:
    try:
        with db.read() as session:
            proof = proofs.inclusion_proof(session, index, tree_size)
    except ProofUnavailable as error:
        raise _problem(error) from None
    return JSONResponse(proof.as_json(), headers=_IMMUTABLE if tree_size is not None else _FRESH)


@router.get(
    "/v1/audit/proofs/consistency",
    response_model=ConsistencyProofOut,
    responses=_PROBLEMS,
    summary="RFC 9162 consistency proof from `old_size` to `tree_size` (default: latest)",
)
def get_consistency_proof(
    db: Db,
    old_size: Annotated[int, Query(ge=1, le=MAX_LOG_INDEX)],
    tree_size: Annotated[int | None, Query(ge=1, le=MAX_LOG_INDEX)] = None,
) -> JSONResponse:
    try:
        with db.read() as session:
            proof = proofs.consistency_proof(session, old_size, tree_size)
    except ProofUnavailable as error:
        raise _problem(error) from None
    return JSONResponse(proof.as_json(), headers=_IMMUTABLE if tree_size is not None else _FRESH)


@router.get(
    "/v1/audit/entries",
    response_model=EntriesPage,
    responses=_PROBLEMS,
    summary="Integrated log entries by index, filtered (auditor or admin role)",
)
def list_entries(
    request: Request,
    _: Auditor,
    db: Db,
    since: Annotated[Moment | None, Query(alias="from", description="Recorded at or after (RFC 3339)")] = None,
    until: Annotated[Moment | None, Query(alias="to", description="Recorded before (RFC 3339)")] = None,
    requester: Annotated[str | None, Query(max_length=200)] = None,
    authority: Annotated[str | None, Query(max_length=100)] = None,
    evidence_type: Annotated[str | None, Query(max_length=200)] = None,
    subject: Annotated[str | None, Query(max_length=100, description="Subject pseudonym (ps1:…)")] = None,
    event: Annotated[str | None, Query(max_length=40)] = None,
    exchange: Annotated[str | None, Query(max_length=36)] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_LOG_INDEX, description="Return entries with a larger log index")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EntriesPage:
    where = repository.EntryFilter(
        since=since,
        until=until,
        requester=requester,
        authority=authority,
        evidence_type=evidence_type,
        subject=subject,
        event=event,
        exchange=exchange,
    )
    with db.read() as session:
        # Listing stops at the latest signed size, so every entry shown can be proven included.
        size = repository.tree_size(session)
        rows = repository.integrated_entries(session, where, after=after, limit=limit + 1, upto=size)
    more = len(rows) > limit
    rows = rows[:limit]
    next_page = None
    if more:
        url = request.url.include_query_params(after=rows[-1][0])
        next_page = f"{url.path}?{url.query}"
    return EntriesPage(
        entries=[EntryOut(index=index, leaf_hash=b64(leaf), entry=json.loads(body)) for index, leaf, body in rows],
        tree_size=size,
        next=next_page,
    )


@router.get(
    "/v1/audit/keys",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "One C2SP verifier key per line"}},
    summary="The checkpoint verifier keys (vkey strings for `broker audit verify-bundle --key`)",
)
def get_verifier_keys(keys: Keys, settings: SettingsDep) -> PlainTextResponse:
    verifiers = checkpoint_verifiers(keys, settings.origin, serving=True)
    return PlainTextResponse("".join(f"{v.vkey()}\n" for v in verifiers), media_type=_TEXT)


@router.get(
    "/.well-known/broker-keys",
    summary="JWKS of the broker's public keys: checkpoint (Ed25519) and evidence-sealing (x5c) keys",
)
def get_broker_keys(keys: Keys) -> JSONResponse:
    return JSONResponse(keys.jwks(), headers={"Cache-Control": "public, max-age=300"})
