"""Pull mode: the authority polls the broker for tasks and posts signed answers.

Only outbound HTTPS from the authority's network is needed. A loop: long-poll
``GET /v1/adapter/tasks?wait=20``, answer each task, post ``…/result`` (evidence XML) or
``…/failure`` (JSON outcome), signed; on errors back off and poll again. A task whose answer
could not be posted is simply handed out again by the broker when its lease runs out.
"""

from __future__ import annotations

import json
import threading
import time

import httpx

from adapters.protocol import EvidenceQuery, OutcomeKind
from broker.authority.answers import wire_answer
from broker.authority.core import ReferenceAuthority
from broker.logging import get_logger

log = get_logger(__name__)


def answer_task(client: httpx.Client, authority: ReferenceAuthority, task: dict[str, object]) -> int:
    """Answer one task; returns the broker's HTTP status for the post."""
    task_id = str(task["id"])
    try:
        query = EvidenceQuery.from_json(dict(task["query"]))  # type: ignore[call-overload]
        outcome = authority.answer(query)
    except (KeyError, TypeError, ValueError) as error:
        from adapters.protocol import AdapterOutcome

        outcome = AdapterOutcome(OutcomeKind.FAILED, detail=f"malformed task ({type(error).__name__})")
    which = "result" if outcome.kind is OutcomeKind.EVIDENCE else "failure"
    path = f"/v1/adapter/tasks/{task_id}/{which}"
    wire = wire_answer(outcome, authority.key, authority.faults.fault, method="POST", path=path)
    if authority.faults.fault == "slow" and authority.faults.delay_seconds > 0:
        time.sleep(authority.faults.delay_seconds)
    headers = {"Content-Type": wire.content_type, **wire.headers}
    response = client.post(path, content=wire.body, headers=headers)
    log.info("task_answered", task=task_id, kind=outcome.kind.value, status=response.status_code)
    return response.status_code


def pull_loop(
    authority: ReferenceAuthority,
    broker_url: str,
    token: str,
    wait_seconds: float = 20.0,
    stop: threading.Event | None = None,
) -> None:
    stop = stop or threading.Event()
    backoff = 0.5
    with httpx.Client(
        base_url=broker_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=wait_seconds + 10,
        trust_env=False,
    ) as client:
        while not stop.is_set():
            try:
                response = client.get("/v1/adapter/tasks", params={"wait": wait_seconds, "limit": 5})
                if response.status_code != 200:
                    raise httpx.HTTPStatusError(
                        f"HTTP {response.status_code}", request=response.request, response=response
                    )
                for task in json.loads(response.content)["tasks"]:
                    answer_task(client, authority, task)
                backoff = 0.5
            except (httpx.HTTPError, ValueError, KeyError) as error:
                log.warning("poll_failed", error_type=type(error).__name__, retry_in=backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
