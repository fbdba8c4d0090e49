"""/oots: the broker's OOTS face — EDM v1 evidence requests and the Data Service Directory query.

HTTP statuses. OOTS carries outcomes as messages, so once a request is authenticated and its
message is a schema-valid QueryRequest, every answer is **200**: the evidence
(``multipart/related``) or a ``query:QueryResponse`` with status Failure and one
``rs:Exception`` (EDM:ERR:0002…0008). Before that, the HTTP status says what was wrong with the
transport, and the body is still an EDM error response (EDM:ERR:0003 or 0001/0002):

* 415 wrong Content-Type; 413 body too large; 400 not well-formed or unsafe XML (the hardened
  parser's reason: DOCTYPE, encoding, depth, …); 422 not a QueryRequest or schema-invalid;
* 401 no or unknown bearer token (EDM:ERR:0001), 403 a client that is not a requester (0002);
* 500 only for a fault of the broker itself (EDM:ERR:0008).

The broker's stable reason code is in the exception's ``Reason`` slot either way. The order is
media type, parse, root, authentication, schema, then the EDM content: parsing first (it is
cheap and bounded) lets even a refusal of an unauthenticated caller echo the ``requestId``.
A body over the configured limit announced by Content-Length is refused by the HTTP layer
before it reaches the gateway (413 problem+json ``request.too_large``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from broker.clients.auth import authenticate
from broker.clients.service import Principal
from broker.context import BrokerContext
from broker.deps import Context
from broker.exchange.service import ExchangeResult
from broker.logging import get_logger
from broker.middleware import BodyTooLarge
from broker.oots import edm, service
from broker.oots.edm import EdmCode, EdmError
from broker.preview import routes as preview_routes
from broker.problems import Problem
from broker.xml.hardened import XmlIntakeError, check_media_type, expect_root, parse_xml

log = get_logger(__name__)

router = APIRouter(prefix="/oots", tags=["oots"])

EDM_CONTENT = {edm.MEDIA_TYPE: {"schema": {"type": "string"}}}


def _response(answer: service.Answer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


def _intake_failure(context: BrokerContext, error: XmlIntakeError, request_id: str | None) -> Response:
    where = f" (line {error.line})" if error.line else ""
    detail = f"{error.detail}{where}" + (f" at {error.path}" if error.path else "")
    edm_error = EdmError(
        EdmCode.INVALID_REQUEST, error.reason, "The message is not an acceptable QueryRequest.", detail
    )
    answer = service.failure(
        edm_error, now=context.clock.now(), origin=context.settings.origin, request_id=request_id, status=error.status
    )
    headers = {"Connection": "close"} if error.status == 413 else None
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type, headers=headers)


@router.post(
    "/edm",
    summary="OOTS evidence request (EDM v1 query:QueryRequest)",
    openapi_extra={"requestBody": {"required": True, "content": EDM_CONTENT}},
    responses={
        200: {
            "description": "Evidence (multipart/related: the QueryResponse, then the sealed evidence), "
            "or a QueryResponse with status Failure and one rs:Exception",
            "content": {"multipart/related": {}, **EDM_CONTENT},
        },
        **{
            code: {"description": "Transport-level refusal; the body is an EDM error response", "content": EDM_CONTENT}
            for code in (400, 401, 403, 413, 415, 422, 500)
        },
    },
)
async def evidence_request(request: Request, context: Context) -> Response:
    try:
        raw = await request.body()
    except BodyTooLarge:
        error = XmlIntakeError.of("xml.too_large", f"the body exceeds {context.settings.max_body_bytes} bytes")
        return _intake_failure(context, error, None)
    return await run_in_threadpool(_evidence_request, request, context, raw)


def _evidence_request(request: Request, context: BrokerContext, raw: bytes) -> Response:
    request_id: str | None = None
    try:
        check_media_type(request.headers.get("content-type"), (edm.MEDIA_TYPE,))
        root = parse_xml(raw, context.xml_limits)
        request_id = edm.request_id_of(root)
        expect_root(root, (edm.QUERY_REQUEST,))
    except XmlIntakeError as error:
        return _intake_failure(context, error, request_id)
    try:
        principal = authenticate(request, context.principals, "requester")
    except Problem as refusal:
        code = EdmCode.AUTHENTICATION if refusal.status == 401 else EdmCode.AUTHORIZATION
        answer = service.failure(
            EdmError(code, refusal.reason, refusal.detail),
            now=context.clock.now(),
            origin=context.settings.origin,
            request_id=request_id,
            status=refusal.status,
        )
        response = _response(answer)
        if refusal.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response
    try:
        context.catalogue.validate(root)
    except XmlIntakeError as error:
        return _intake_failure(context, error, request_id)
    try:
        return _response(_exchange(request, context, principal, edm.read_request(root)))
    except EdmError as error:
        return _response(
            service.failure(error, now=context.clock.now(), origin=context.settings.origin, request_id=request_id)
        )
    except Exception as error:  # a fault of ours still gets an EDM answer, never a bare 500 page
        log.error("oots_request_failed", error_type=type(error).__name__)
        fault = EdmError(
            EdmCode.PROCESSING, "internal_error", "The broker could not process the request; it has been logged."
        )
        return _response(
            service.failure(
                fault, now=context.clock.now(), origin=context.settings.origin, request_id=request_id, status=500
            )
        )


def _exchange(
    request: Request, context: BrokerContext, principal: Principal, edm_request: edm.EvidenceRequest
) -> service.Answer:
    def fail(error: EdmError) -> service.Answer:
        return service.failure(
            error,
            now=context.clock.now(),
            origin=context.settings.origin,
            request_id=edm_request.id,
            request=edm_request,
        )

    try:
        service.check(principal, edm_request)
    except EdmError as error:
        return fail(error)
    deps = context.exchange_dependencies()
    try:
        if edm_request.preview_location:
            with context.unit_of_work() as session:
                exchange = service.after_preview(session, deps, principal, edm_request)
        else:
            with context.unit_of_work() as session:
                result = service.start(session, deps, principal, edm_request)
                context.remote.begin(session, result)
            exchange = _settled(context, result).exchange
    except EdmError as error:
        return fail(error)
    return service.answer(
        exchange,
        edm_request,
        deps.registry,
        now=context.clock.now(),
        origin=context.settings.origin,
        preview_location=lambda exchange_id: preview_routes.location(request, context, exchange_id),
    )


def _settled(context: BrokerContext, result: ExchangeResult) -> ExchangeResult:
    # A remote authority is asked only after the routed state is committed; then the gateway
    # waits the synchronous window like the JSON API (an exchange still open then is EDM:ERR:0005).
    return context.remote.settle(result) if result.pending is not None else result


# --- Data Service Directory --------------------------------------------------------------------


@router.get(
    "/rest/search",
    summary="Data Service Directory query (data services by evidence type and jurisdiction)",
    responses={200: {"description": "A query:QueryResponse; failures carry DSD:ERR codes", "content": EDM_CONTENT}},
)
def search(
    context: Context,
    query_id: Annotated[str | None, Query(alias="queryId")] = None,
    classification: Annotated[str | None, Query(alias="evidence-type-classification")] = None,
    country: Annotated[str | None, Query(alias="country-code")] = None,
    admin_l2: Annotated[str | None, Query(alias="jurisdiction-admin-l2")] = None,
    admin_l3: Annotated[str | None, Query(alias="jurisdiction-admin-l3")] = None,
) -> Response:
    body = service.search_data_services(
        context.registry.get(),
        query_id=query_id,
        classification=classification,
        country=country,
        admin_l2=admin_l2,
        admin_l3=admin_l3,
        origin=context.settings.origin,
    )
    return Response(body, media_type=f"{edm.MEDIA_TYPE}; charset=UTF-8")
