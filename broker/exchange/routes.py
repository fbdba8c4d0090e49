"""/v1/evidence-requests: the online services' API."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from broker.audit.proofs import receipt as delivery_receipt
from broker.clock import as_utc
from broker.db.models import Exchange
from broker.deps import Context, Requester
from broker.exchange import repository
from broker.exchange.schemas import EvidenceLink, EvidenceRequestIn, ExchangeOut, ProblemOut, ReceiptOut
from broker.exchange.service import problem_of, request_evidence
from broker.preview.routes import preview_link
from broker.problems import PROBLEM_MEDIA_TYPE, Problem

router = APIRouter(prefix="/v1/evidence-requests", tags=["exchange"])

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": "Problem details (RFC 9457)", "content": {PROBLEM_MEDIA_TYPE: {}}}
    for code in (400, 401, 403, 404, 409, 410, 413, 415, 422, 502, 504)
}


def exchange_out(exchange: Exchange, receipt: ReceiptOut | None = None, preview: str | None = None) -> ExchangeOut:
    href = f"/v1/evidence-requests/{exchange.id}"
    problem = problem_of(exchange)
    return ExchangeOut(
        id=exchange.id,
        state=exchange.state,
        evidence_type=exchange.evidence_type_id,
        jurisdiction=exchange.jurisdiction,
        authority=exchange.authority_id,
        purpose=exchange.purpose,
        legal_basis=exchange.legal_basis,
        consent_id=exchange.consent_id,
        created_at=as_utc(exchange.created_at),
        updated_at=as_utc(exchange.updated_at),
        evidence=EvidenceLink(href=f"{href}/evidence", digest=f"sha256:{exchange.evidence_digest}")
        if exchange.state == "delivered"
        else None,
        problem=ProblemOut(status=problem.status, reason=problem.reason, detail=problem.detail) if problem else None,
        receipt=receipt,
        # While the citizen's approval is pending, the requester sends them to the preview link.
        links={"self": href, **({"preview": preview} if preview else {})},
    )


def _receipt(session: Session, exchange: Exchange) -> ReceiptOut | None:
    found = delivery_receipt(session, exchange.delivery_log_seq)
    return ReceiptOut(**asdict(found)) if found is not None else None


def _answer(
    exchange: Exchange, problem: Problem | None, receipt: ReceiptOut | None = None, preview: str | None = None
) -> JSONResponse:
    body = exchange_out(exchange, receipt, preview).model_dump(mode="json", exclude_none=True)
    if problem is not None:
        # The problem document names what went wrong and still carries the exchange for reference.
        return JSONResponse(
            {**problem.body(f"/v1/evidence-requests/{exchange.id}"), "exchange": body},
            status_code=problem.status,
            media_type=PROBLEM_MEDIA_TYPE,
        )
    code = 200 if exchange.state == "delivered" else 202
    headers = {"Location": body["links"]["self"]} if code in (201, 202) else None
    return JSONResponse(body, status_code=code, headers=headers)


@router.post(
    "",
    response_model=ExchangeOut,
    responses={202: {"description": "Accepted: the exchange continues asynchronously"}, **PROBLEM_RESPONSES},
    summary="Request a piece of evidence about a subject",
)
def create_evidence_request(
    body: EvidenceRequestIn,
    principal: Requester,
    context: Context,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    deps = context.exchange_dependencies()
    with context.exchange_slots, context.unit_of_work() as session:
        result = request_evidence(session, deps, principal, body, idempotency_key)
        context.remote.begin(session, result)
        # Known now: the delivery entry's leaf hash; its log index once the integrator ran.
        receipt = _receipt(session, result.exchange)
    # A remote authority is asked only now that the routed exchange is committed.
    result = context.remote.settle(result)
    exchange, preview = preview_link(context, result.exchange)
    return _answer(exchange, result.problem, receipt, preview)


def _owned(context: Context, principal: Requester, exchange_id: str) -> Exchange:
    with context.sessions() as session:
        exchange = repository.get(session, exchange_id)
    if exchange is None or exchange.requester_id != principal.id:
        raise Problem(404, "exchange.not_found", f"No exchange {exchange_id!r} for this client.")
    return exchange


@router.get("/{exchange_id}", response_model=ExchangeOut, responses=PROBLEM_RESPONSES)
def get_evidence_request(exchange_id: str, principal: Requester, context: Context) -> JSONResponse:
    exchange, preview = preview_link(context, _owned(context, principal, exchange_id))
    with context.sessions() as session:
        receipt = _receipt(session, exchange)
    return JSONResponse(exchange_out(exchange, receipt, preview).model_dump(mode="json", exclude_none=True))


@router.get(
    "/{exchange_id}/evidence",
    responses={
        200: {"content": {"application/xml": {}}, "description": "The sealed evidence"},
        **PROBLEM_RESPONSES,
    },
)
def get_evidence(
    exchange_id: str,
    principal: Requester,
    context: Context,
    format: Annotated[str, Query(pattern="^(xml|json)$")] = "xml",
) -> Response:
    exchange = _owned(context, principal, exchange_id)
    if exchange.state != "delivered":
        raise Problem(409, "evidence.not_available", f"The exchange is {exchange.state}; there is no evidence.")
    if exchange.evidence is None or (
        exchange.expires_at is not None and as_utc(exchange.expires_at) <= context.clock.now()
    ):
        raise Problem(410, "evidence.expired", "The evidence was delivered but its retention period has ended.")
    if format == "json":
        return JSONResponse(context.evidence_as_json(exchange.evidence))
    return Response(exchange.evidence, media_type="application/xml")
