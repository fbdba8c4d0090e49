"""Health, readiness and metrics for operators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker.deps import Catalogue, ClockDep, Db, Gauges, Integrator, Keys, MetricsReader, SealerDep, SettingsDep
from broker.ops import service
from broker.problems import problem_responses

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=problem_responses(503))
def readyz(
    settings: SettingsDep,
    db: Db,
    keys: Keys,
    catalogue: Catalogue,
    integrator: Integrator,
    sealer: SealerDep,
    clock: ClockDep,
) -> dict[str, Any]:
    """200 with every check ``ok``; else 503 (``storage.unavailable``, ``storage.full`` or
    ``not_ready``) whose ``checks`` name the state of each: database, revision, keys, catalogue,
    integrator, disk, seal."""
    readiness = service.check(settings, db, keys, catalogue, integrator, sealer, clock.now())
    if not readiness.ready:
        raise readiness.problem()
    return {"status": "ready", "checks": readiness.checks}


@router.get("/metrics", responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}})
def metrics(_: MetricsReader, gauges: Gauges) -> Response:
    # The process's counters and histograms (HTTP, exchanges, authority calls), then the domain
    # gauges read from the database at this scrape (broker.ops.metrics).
    return Response(generate_latest() + gauges.exposition(), media_type=CONTENT_TYPE_LATEST)
