"""The FastAPI application: one router per domain, problem+json errors, middleware."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from broker import bootstrap, openapi
from broker.audit.routes import router as audit_router
from broker.citizen import session as citizen_session
from broker.citizen.routes import router as citizen_router
from broker.citizen.session import CitizenSessionMiddleware
from broker.clients.routes import router as clients_router
from broker.consent.routes import router as consent_router
from broker.exchange.routes import router as exchange_router
from broker.logging import configure_logging
from broker.middleware import BodyLimitMiddleware, RequestContextMiddleware, RequestGuardMiddleware
from broker.oots.routes import router as oots_router
from broker.ops.routes import router as ops_router
from broker.preview.routes import router as preview_router
from broker.problems import install_problem_handlers
from broker.registry.routes import router as registry_router
from broker.rollout.routes import router as rollout_router
from broker.settings import Settings, get_settings
from broker.tasks.routes import router as tasks_router

ROUTERS = (
    exchange_router,
    consent_router,
    registry_router,
    rollout_router,
    clients_router,
    ops_router,
    tasks_router,
    audit_router,
    oots_router,
    preview_router,
    citizen_router,
)

# Where XML documents arrive (OOTS requests, pull adapters' answers): these paths take bodies up
# to BROKER_MAX_BODY_BYTES; everything else up to BROKER_MAX_JSON_BYTES.
LARGE_BODY_PATHS = ("/oots/edm", "/v1/adapter/")


def freeze_startup_heap() -> None:
    """Take what start-up built out of the garbage collector's way, once per process.

    Modules, schemas, the registry, SQLAlchemy's metadata: they live as long as the process, yet
    every full collection walked them all, about 140 ms with every request in flight stalled,
    every few seconds under load (bench.exchange), which alone made the p99. Frozen, a full
    collection walks only what came later (about 6 ms). Only the first time: a process that
    builds many apps (the tests) must still collect the later ones.
    """
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


# FastAPI traces every request (its body, validation errors, exception messages) into whatever
# OpenTelemetry provider the process has, and exports to OTEL_EXPORTER_OTLP_ENDPOINT when
# FASTAPI_OTEL_AUTO_CONFIGURE=true: personal data on an outbound path around the egress policy.
# Off, whatever the environment says; the broker's own metrics (/metrics) carry bounded labels only.
NO_FRAMEWORK_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def create_app(settings: Settings | None = None, container: bootstrap.Container | None = None) -> FastAPI:
    settings = settings or get_settings()
    if problems := settings.serving_problems():
        raise RuntimeError("; ".join(problems))
    configure_logging(settings.log_level)
    built = container or bootstrap.build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        built.start()
        freeze_startup_heap()
        try:
            yield
        finally:
            built.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Once-Only evidence broker",
        version="0.1.0",
        description="Routes evidence requests to source authorities, seals evidence, keeps a verifiable log.",
        telemetry=NO_FRAMEWORK_TELEMETRY,
    )
    app.state.services = built.services
    install_problem_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    openapi.install(app)
    # The last added runs first: bodies too large by their Content-Length are refused before the
    # guard spends a token lookup on them.
    app.add_middleware(RequestGuardMiddleware, principals=built.services.principals, bearer_prefix="/v1/")
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_json_bytes,
        large_max_bytes=settings.max_body_bytes,
        large_paths=LARGE_BODY_PATHS,
    )
    app.add_middleware(
        CitizenSessionMiddleware,
        secret=citizen_session.derive_key(built.services.keys.pseudonym_secret()),
        max_age_seconds=settings.citizen_session_minutes * 60,
    )
    app.add_middleware(RequestContextMiddleware)
    return app
