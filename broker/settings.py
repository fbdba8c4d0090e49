"""Runtime settings, read from environment variables with the ``BROKER_`` prefix."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_DIR = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BROKER_", extra="ignore")

    # SQLite under var/ is the embedded default; PostgreSQL (postgresql+psycopg://…) in production.
    database_url: str = f"sqlite:///{REPO_DIR / 'var' / 'broker.db'}"
    keys_dir: Path = REPO_DIR / "keys"
    # Extra schema directories (os.pathsep-separated), searched after the project's own xsd/.
    schema_path: str = ""
    # Names this broker instance in checkpoints (the C2SP origin line) and in sealed evidence.
    origin: str = "broker.example/once-only"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # How long a request waits for an authority before the exchange turns asynchronous (202).
    sync_timeout_seconds: float = 5.0
    # Remote authorities (push and pull bindings, asynchronous exchanges; see adapters/http_push.py).
    # An exchange that no authority has answered after this long ends `expired` (504).
    exchange_expiry_seconds: float = 600.0
    # How long a pulled task stays leased to the adapter that took it before others can take it.
    task_lease_seconds: float = 60.0
    # Longest wait an adapter may ask for when it long-polls GET /v1/adapter/tasks.
    task_max_wait_seconds: float = 30.0
    # Threads that carry push calls (and finish their exchanges) in one process.
    push_workers: int = 32
    # Optional mutual TLS towards push authorities: client certificate (PEM; key inside or in
    # push_client_key) and the CA bundle that authorities' server certificates must chain to.
    push_client_cert: str | None = None
    push_client_key: str | None = None
    push_ca_bundle: str | None = None
    # Circuit breaker per authority: consecutive failures that open it, and seconds it stays open.
    breaker_failure_threshold: int = 5
    breaker_reset_seconds: float = 30.0
    # Signed callbacks to requesters: timeout of one attempt, attempts before giving up.
    callback_timeout_seconds: float = 10.0
    callback_max_attempts: int = 8
    # Seconds between two runs of the background sweeps (expiry, callbacks) in a serving process.
    background_interval_seconds: float = 1.0
    # Exchanges a process works on at once (more requests wait their turn; see broker.deps.Services).
    exchange_concurrency: int = 4
    # Largest request body accepted on any endpoint.
    max_body_bytes: int = 10 * 1024 * 1024
    # Delivered evidence is kept for retrieval this long, then purged.
    evidence_retention_hours: int = 24
    # A citizen's preview (evidence held for approval) stays open this long, then the evidence is dropped.
    preview_ttl_minutes: float = 30.0
    # The broker's address as citizens and remote requesters reach it (https://…), used in the
    # links it hands out (the OOTS PreviewLocation); empty: the address each request came in on.
    public_url: str = ""
    # Seconds between two runs of the log integrator in a serving process.
    integrate_interval_seconds: float = 0.5

    @property
    def schema_dirs(self) -> list[Path]:
        extra = [Path(p) for p in self.schema_path.split(os.pathsep) if p.strip()]
        return [REPO_DIR / "xsd", *extra]

    @property
    def preview_ttl(self) -> timedelta:
        return timedelta(minutes=self.preview_ttl_minutes)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def get_settings() -> Settings:
    """Read from the environment on every call: an entry point (app, command) reads them once."""
    return Settings()
