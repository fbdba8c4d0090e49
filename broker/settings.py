"""Runtime settings, read from environment variables with the ``BROKER_`` prefix."""

from __future__ import annotations

import os
from functools import lru_cache
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
    # Largest request body accepted on any endpoint.
    max_body_bytes: int = 10 * 1024 * 1024
    # Delivered evidence is kept for retrieval this long, then purged.
    evidence_retention_hours: int = 24
    # Seconds between two runs of the log integrator in a serving process.
    integrate_interval_seconds: float = 0.5

    @property
    def schema_dirs(self) -> list[Path]:
        extra = [Path(p) for p in self.schema_path.split(os.pathsep) if p.strip()]
        return [REPO_DIR / "xsd", *extra]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
