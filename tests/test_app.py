"""The application object itself: what it hands to libraries beyond its routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace

from broker.app import create_app
from broker.settings import Settings


class RecordingTracer(trace.NoOpTracer):
    """A tracer an operator (or a library) configured process-wide: it records every span started."""

    def __init__(self, spans: list[str]) -> None:
        self._spans = spans

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self._spans.append(name)
        return super().start_span(name, *args, **kwargs)


class RecordingTracerProvider(trace.TracerProvider):
    def __init__(self) -> None:
        self.spans: list[str] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return RecordingTracer(self.spans)


def test_fastapis_own_telemetry_never_sees_a_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FastAPI traces requests, their bodies and exception messages into any OpenTelemetry provider
    configured in the process, and exports them to OTEL_EXPORTER_OTLP_ENDPOINT when
    FASTAPI_OTEL_AUTO_CONFIGURE=true: an outbound path around the egress policy, carrying what
    requests say about citizens. The broker turns it off; its metrics are its own (/metrics)."""
    provider = RecordingTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    settings = Settings(env="development", database_url=f"sqlite:///{tmp_path / 'broker.db'}", keys_dir=tmp_path / "k")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        refused = client.post("/v1/evidence-requests", json={"subject": {"family_name": "Mustermann"}})
        assert refused.status_code == 401
    assert provider.spans == []
