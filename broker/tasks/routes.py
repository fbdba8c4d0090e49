"""/v1/adapter: the pull queue that authorities behind firewalls poll (role ``adapter``).

``GET /v1/adapter/tasks?wait=S`` waits up to S seconds for work and leases what it hands out;
``POST /v1/adapter/tasks/{id}/result`` takes evidence XML, ``…/failure`` a JSON outcome
(``not_found``, ``ambiguous``, ``failed``); both must be signed by the authority
(``adapters/signing.py``). An adapter sees only the tasks of the authority its token is bound to.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from adapters.wire import JSON, XML
from broker.clients.service import Principal
from broker.deps import AdapterClient, Db, Exchanges, Remote, SettingsDep
from broker.problems import Problem, problem_responses
from broker.tasks import repository, service
from broker.tasks.schemas import AnswerOut, TaskList, TaskOut

router = APIRouter(prefix="/v1/adapter", tags=["adapter"])

PROBLEM_RESPONSES = problem_responses(400, 401, 403, 404, 409, 410, 413, 415, 422, 502, 504)

# How often a long poll looks for new work when no task is there.
POLL_SECONDS = 0.5


def _authority_of(principal: Principal) -> str:
    if principal.authority_id is None:
        raise Problem(403, "adapter.unbound", "This adapter client is bound to no authority.")
    return principal.authority_id


@router.get("/tasks", response_model=TaskList, responses=PROBLEM_RESPONSES)
async def take_tasks(
    principal: AdapterClient,
    db: Db,
    deps: Exchanges,
    settings: SettingsDep,
    wait: Annotated[float, Query(ge=0, description="Seconds to wait for a task (long poll)")] = 0,
    limit: Annotated[int, Query(ge=1, le=20)] = 1,
) -> TaskList:
    authority_id = _authority_of(principal)
    deadline = time.monotonic() + min(wait, settings.task_max_wait_seconds)
    lease_for = timedelta(seconds=settings.task_lease_seconds)

    def claim() -> list[service.LeasedTask]:
        now = deps.clock.now()
        # A plain read first, so that idle polls never take a write lock.
        with db.read() as session:
            if not repository.has_claimable(session, authority_id, now):
                return []
        with db.unit_of_work() as session:
            return service.lease(session, authority_id, now, lease_for, limit)

    while True:
        leased = await run_in_threadpool(claim)
        remaining = deadline - time.monotonic()
        if leased or remaining <= 0:
            break
        await asyncio.sleep(min(POLL_SECONDS, remaining))
    return TaskList(
        tasks=[
            TaskOut(
                id=task.id,
                lease_until=task.lease_until,
                attempt=task.attempt,
                query=task.query,
                links={
                    "result": f"/v1/adapter/tasks/{task.id}/result",
                    "failure": f"/v1/adapter/tasks/{task.id}/failure",
                },
            )
            for task in leased
        ]
    )


async def _answer(
    request: Request, principal: Principal, db: Db, deps: Exchanges, remote: Remote, task_id: str, expect: str
) -> AnswerOut:
    body = await request.body()

    def take() -> service.Accepted:
        with db.unit_of_work() as session:
            return service.answer(
                session,
                deps,
                principal,
                task_id,
                request.url.path,
                request.headers.get("content-type"),
                body,
                request.headers,
                expect,
            )

    accepted = await run_in_threadpool(take)
    if accepted.finished is not None:
        remote.ended(accepted.exchange_id)
    if accepted.refusal is not None:
        raise accepted.refusal
    return AnswerOut(task=accepted.task_id, exchange_state=accepted.exchange_state, replayed=accepted.replayed)


@router.post(
    "/tasks/{task_id}/result",
    response_model=AnswerOut,
    responses=PROBLEM_RESPONSES,
    openapi_extra={"requestBody": {"content": {XML: {}}, "required": True}},
)
async def post_result(
    task_id: str, request: Request, principal: AdapterClient, db: Db, deps: Exchanges, remote: Remote
) -> AnswerOut:
    """The evidence document for the task, signed by the authority."""
    return await _answer(request, principal, db, deps, remote, task_id, XML)


@router.post(
    "/tasks/{task_id}/failure",
    response_model=AnswerOut,
    responses=PROBLEM_RESPONSES,
    openapi_extra={"requestBody": {"content": {JSON: {}}, "required": True}},
)
async def post_failure(
    task_id: str, request: Request, principal: AdapterClient, db: Db, deps: Exchanges, remote: Remote
) -> AnswerOut:
    """``{"kind": "not_found" | "ambiguous" | "failed", "detail": "…"}``, signed by the authority."""
    return await _answer(request, principal, db, deps, remote, task_id, JSON)
