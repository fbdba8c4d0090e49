"""The FastAPI application: one router per domain, problem+json errors, middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from broker.audit.integrator import BackgroundIntegrator
from broker.audit.routes import router as audit_router
from broker.consent.routes import router as consent_router
from broker.context import BrokerContext
from broker.exchange.routes import router as exchange_router
from broker.logging import configure_logging
from broker.middleware import BodyLimitMiddleware, RequestContextMiddleware
from broker.oots.routes import router as oots_router
from broker.ops.routes import router as ops_router
from broker.preview.routes import router as preview_router
from broker.problems import install_problem_handlers
from broker.registry.routes import router as registry_router
from broker.settings import Settings, get_settings
from broker.tasks.routes import router as tasks_router


def create_app(settings: Settings | None = None, context: BrokerContext | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    context = context or BrokerContext.create(settings)
    serving = context
    log_integrator = BackgroundIntegrator(
        context.sessions, context.keys, settings.origin, context.clock.now, settings.integrate_interval_seconds
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        serving.start_background()
        log_integrator.start()
        try:
            yield
        finally:
            log_integrator.stop()
            serving.stop_background()

    app = FastAPI(
        lifespan=lifespan,
        title="Once-Only evidence broker",
        version="0.1.0",
        description="Routes evidence requests to source authorities, seals evidence, keeps a verifiable log.",
    )
    app.state.context = context
    install_problem_handlers(app)
    routers = (exchange_router, consent_router, registry_router, ops_router, tasks_router, audit_router)
    for router in (*routers, oots_router, preview_router):
        app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    return app
