"""/oots: the broker's OOTS face — EDM v1 evidence requests and the Data Service Directory query.

HTTP statuses. OOTS carries outcomes as messages, so once a request is authenticated and its
message is a schema-valid QueryRequest, every answer is **200**: the evidence
(``multipart/related``), a ``query:QueryResponse`` with status Success and no evidence (nothing
about the subject, or the citizen declined), or one with status Failure and one
``rs:Exception`` (EDM:ERR:0002…0008). Before that, the HTTP status says what was wrong with the
transport, and the body is still an EDM error response (EDM:ERR:0003 or 0001/0002):

* 415 wrong Content-Type; 413 body too large; 400 not well-formed or unsafe XML (the hardened
  parser's reason: DOCTYPE, encoding, depth, …); 422 not a QueryRequest or schema-invalid;
* 401 no or unknown bearer token (EDM:ERR:0001), 403 a client that is not a requester (0002);
* 500 only for a fault of the broker itself (EDM:ERR:0008).

An answer may take a while: a request waits up to T1 for a remote authority, and one that
returns with a PreviewLocation before the citizen decided is held up to T3 for the decision
(``broker.oots.gateway``); a requester's HTTP timeout must be longer than both.

The broker's stable reason code leads the exception's ``detail`` either way. The order is
media type, parse, authentication, root, schema, then the EDM content: parsing first (it is
cheap and bounded) lets even a refusal of an unauthenticated caller echo the ``requestId``; what
the message is (its root) concerns only a caller who may send one.
A body over the configured limit announced by Content-Length is refused by the HTTP layer
before it reaches the gateway (413 problem+json ``request.too_large``), and so are two
Authorization headers (400 ``auth.duplicate_header``) and control characters in the URL (422).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from broker.deps import Gateway, Registry, SettingsDep
from broker.middleware import BodyTooLarge
from broker.oots import directory, edm
from broker.oots.service import Answer
from broker.preview.presenters import public_base

router = APIRouter(prefix="/oots", tags=["oots"])

EDM_CONTENT = {edm.MEDIA_TYPE: {"schema": {"type": "string"}}}


def _response(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type, headers=dict(answer.headers))


@router.post(
    "/edm",
    summary="OOTS evidence request (EDM v1 query:QueryRequest)",
    # The gateway authenticates the requester itself (after parsing, see above).
    openapi_extra={"requestBody": {"required": True, "content": EDM_CONTENT}, "security": [{"bearer": []}]},
    responses={
        200: {
            "description": "Evidence (multipart/related: the QueryResponse, then the sealed evidence and its "
            "PDF), a QueryResponse with status Success and no evidence, or one with status Failure and one "
            "rs:Exception",
            "content": {"multipart/related": {}, **EDM_CONTENT},
        },
        **{
            code: {"description": "Transport-level refusal; the body is an EDM error response", "content": EDM_CONTENT}
            for code in (400, 401, 403, 413, 415, 422, 500)
        },
    },
)
async def evidence_request(request: Request, gateway: Gateway, settings: SettingsDep) -> Response:
    try:
        raw = await request.body()
    except BodyTooLarge:
        return _response(gateway.too_large())
    base = public_base(request, settings.public_url)
    return _response(await run_in_threadpool(gateway.handle, request.headers, raw, base))


# --- Data Service Directory --------------------------------------------------------------------


@router.get(
    "/rest/search",
    summary="Data Service Directory query (data services by evidence type and jurisdiction)",
    responses={200: {"description": "A query:QueryResponse; failures carry DSD:ERR codes", "content": EDM_CONTENT}},
)
def search(
    registry: Registry,
    settings: SettingsDep,
    query_id: Annotated[str | None, Query(alias="queryId")] = None,
    classification: Annotated[str | None, Query(alias="evidence-type-classification")] = None,
    country: Annotated[str | None, Query(alias="country-code")] = None,
    admin_l2: Annotated[str | None, Query(alias="jurisdiction-admin-l2")] = None,
    admin_l3: Annotated[str | None, Query(alias="jurisdiction-admin-l3")] = None,
) -> Response:
    body = directory.search_data_services(
        registry.get(),
        query_id=query_id,
        classification=classification,
        country=country,
        admin_l2=admin_l2,
        admin_l3=admin_l3,
        origin=settings.origin,
    )
    return Response(body, media_type=f"{edm.MEDIA_TYPE}; charset=UTF-8")
