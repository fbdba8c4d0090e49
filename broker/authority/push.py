"""Push mode: the authority's HTTP endpoint ``POST /evidence`` that the broker calls.

A request must carry a valid broker signature (``adapters/signing.py``) by the broker's request
key; the answer is signed with the authority's key and bound to the request's digest.
"""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from adapters.signing import SignatureError, SignedMessage, content_digest, verify
from broker.authority.answers import wire_answer
from broker.authority.core import ReferenceAuthority, parse_query

PATH = "/evidence"


class FaultIn(BaseModel):
    fault: str
    delay_seconds: float = 0.0


def _problem(status: int, reason: str, detail: str) -> JSONResponse:
    body = {"type": "about:blank", "status": status, "title": reason, "reason": reason, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def create_push_app(
    authority: ReferenceAuthority, broker_key: Ed25519PublicKey, allow_fault_injection: bool = False
) -> FastAPI:
    app = FastAPI(title=f"Reference authority {authority.spec.id}", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "authority": authority.spec.id}

    @app.post(PATH)
    async def evidence(request: Request) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        try:
            verify(SignedMessage(content_type, body, method="POST", path=request.url.path), request.headers, broker_key)
        except SignatureError as error:
            return _problem(401, error.reason, error.detail)
        try:
            query = parse_query(body)
        except ValueError as error:
            return _problem(400, "query.malformed", str(error))
        switch = authority.faults
        fault, delay = switch.fault, switch.delay_seconds
        if fault in ("slow", "hang") and delay > 0:
            await asyncio.sleep(delay)
        outcome = await run_in_threadpool(authority.answer, query)
        answer = wire_answer(outcome, authority.key, fault, request_digest=content_digest(body))
        # The Content-Type is set verbatim: it is signed, and Starlette would append a charset to text/*.
        headers = {"Content-Type": answer.content_type, **answer.headers}
        return Response(answer.body, status_code=answer.status, headers=headers)

    if allow_fault_injection:

        @app.put("/_faults")
        def set_fault(change: FaultIn) -> dict[str, object]:
            """Test aid (only with --allow-fault-injection): make the next answers wrong on purpose."""
            try:
                authority.faults.set(change.fault, change.delay_seconds)
            except ValueError as error:
                return _problem(422, "fault.unknown", str(error))  # type: ignore[return-value]
            return {"fault": change.fault, "delay_seconds": change.delay_seconds}

    return app
