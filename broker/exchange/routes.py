"""/v1/evidence-requests: the online services' API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from broker.clock import as_utc
from broker.db.models import Exchange
from broker.deps import ClockDep, Db, Evidence, ExchangeRoute, ExchangeRouteDep, Requester
from broker.exchange import repository
from broker.exchange.lifecycle import State
from broker.exchange.presenters import exchange_out, href, receipt_out
from broker.exchange.schemas import EvidenceRequestIn, ExchangeOut, ReceiptOut
from broker.exchange.service import ExchangeResult, KeyTaken, request_evidence
from broker.preview import service as previews
from broker.preview.presenters import preview_path
from broker.problems import PROBLEM_MEDIA_TYPE, Problem, problem_responses

router = APIRouter(prefix="/v1/evidence-requests", tags=["exchange"])

PROBLEM_RESPONSES = problem_responses(400, 401, 403, 404, 409, 410, 413, 415, 422, 502, 504)


def _answer(
    exchange: Exchange, problem: Problem | None, receipt: ReceiptOut | None = None, preview: str | None = None
) -> JSONResponse:
    body = exchange_out(exchange, receipt, preview).model_dump(mode="json", exclude_none=True)
    if problem is not None:
        # The problem document names what went wrong and still carries the exchange for reference.
        return JSONResponse(
            {**problem.body(href(exchange.id)), "exchange": body},
            status_code=problem.status,
            media_type=PROBLEM_MEDIA_TYPE,
        )
    code = 200 if exchange.state == State.DELIVERED else 202
    headers = {"Location": body["links"]["self"]} if code in (201, 202) else None
    return JSONResponse(body, status_code=code, headers=headers)


def _as_it_stands(route: ExchangeRoute, exchange: Exchange) -> Exchange:
    """The exchange with its preview expired first if its time is up (which writes)."""
    if exchange.state != State.AWAITING_PREVIEW:
        return exchange
    with route.database.unit_of_work() as session:
        return previews.current(session, route.exchanges, exchange.id) or exchange


@router.post(
    "",
    response_model=ExchangeOut,
    responses={202: {"description": "Accepted: the exchange continues asynchronously"}, **PROBLEM_RESPONSES},
    summary="Request a piece of evidence about a subject",
)
def create_evidence_request(
    body: EvidenceRequestIn,
    principal: Requester,
    route: ExchangeRouteDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    with route.slots:
        try:
            result, receipt = _run(route, principal, body, idempotency_key)
        except KeyTaken:  # a concurrent request with this key won; now this one replays it
            result, receipt = _run(route, principal, body, idempotency_key)
    # A remote authority is asked only now that the routed exchange is committed.
    result = route.remote.settle(result)
    exchange = _as_it_stands(route, result.exchange)
    return _answer(exchange, result.problem, receipt, preview_path(route.previews, exchange))


def _run(
    route: ExchangeRoute, principal: Requester, body: EvidenceRequestIn, key: str | None
) -> tuple[ExchangeResult, ReceiptOut | None]:
    with route.database.unit_of_work() as session:
        result = request_evidence(session, route.exchanges, principal, body, key)
        route.remote.begin(session, result)
        # Known now: the delivery entry's leaf hash; its log index once the integrator ran.
        return result, receipt_out(session, result.exchange)


def _owned(db: Db, principal: Requester, exchange_id: str) -> Exchange:
    with db.read() as session:
        exchange = repository.get(session, exchange_id)
    if exchange is None or exchange.requester_id != principal.id:
        raise Problem(404, "exchange.not_found", f"No exchange {exchange_id!r} for this client.")
    return exchange


@router.get("/{exchange_id}", response_model=ExchangeOut, responses=PROBLEM_RESPONSES)
def get_evidence_request(exchange_id: str, principal: Requester, route: ExchangeRouteDep) -> JSONResponse:
    exchange = _as_it_stands(route, _owned(route.database, principal, exchange_id))
    with route.database.read() as session:
        receipt = receipt_out(session, exchange)
    out = exchange_out(exchange, receipt, preview_path(route.previews, exchange))
    return JSONResponse(out.model_dump(mode="json", exclude_none=True))


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
    db: Db,
    clock: ClockDep,
    evidence: Evidence,
    format: Annotated[str, Query(pattern="^(xml|json)$")] = "xml",
) -> Response:
    exchange = _owned(db, principal, exchange_id)
    if exchange.state != State.DELIVERED:
        raise Problem(409, "evidence.not_available", f"The exchange is {exchange.state}; there is no evidence.")
    if exchange.evidence is None or (exchange.expires_at is not None and as_utc(exchange.expires_at) <= clock.now()):
        raise Problem(410, "evidence.expired", "The evidence was delivered but its retention period has ended.")
    if format == "json":
        return JSONResponse(evidence.as_json(exchange.evidence))
    return Response(exchange.evidence, media_type="application/xml")
