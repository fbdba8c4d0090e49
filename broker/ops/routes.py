"""Health, readiness and metrics for operators."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from broker.deps import Db, MetricsReader
from broker.problems import Problem

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(db: Db) -> dict[str, str]:
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        raise Problem(503, "not_ready.database", f"The database does not answer ({type(error).__name__}).") from None
    return {"status": "ready"}


@router.get("/metrics")
def metrics(_: MetricsReader) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
