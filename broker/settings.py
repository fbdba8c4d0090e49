"""Runtime settings, read from environment variables with the ``BROKER_`` prefix."""

from __future__ import annotations

import os
import urllib.parse
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_DIR = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BROKER_", extra="ignore")

    # `make run` sets development; only there may loopback callbacks, plain http and links built
    # from the request's Host header exist. Production is the default.
    env: Literal["development", "production"] = "production"
    # SQLite under var/ is the embedded default; PostgreSQL (postgresql+psycopg://…) in production.
    database_url: str = f"sqlite:///{REPO_DIR / 'var' / 'broker.db'}"
    keys_dir: Path = REPO_DIR / "keys"
    # Extra schema directories (os.pathsep-separated), searched after the project's own xsd/.
    schema_path: str = ""
    # The directory holding the official OOTS business rules (the EC's ISO Schematron files,
    # EDM-REQ-S.sch …): third-party files the operator points at, like the schema path. Empty:
    # no rule checks.
    oots_rules_path: str = ""
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
    # Signed callbacks to requesters: the whole of one attempt is cut off after this long, and a
    # delivery is given up after so many attempts.
    callback_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    callback_max_attempts: int = 8
    # Callbacks a process sends at once, and at most this many to one requester: a slow
    # receiver holds up only its own requester's callbacks.
    callback_concurrency: int = Field(default=16, ge=1, le=256)
    callback_concurrency_per_requester: int = Field(default=2, ge=1, le=64)
    # Outbound calls (push authorities, callbacks) go only to public addresses, unless this names
    # the destination: comma-separated networks (10.20.0.0/16), addresses (::1) and host names.
    egress_allow: str = ""
    # Seconds between two runs of the background sweeps (expiry, callbacks) in a serving process.
    background_interval_seconds: float = 1.0
    # Seconds between two readings of the registry in a serving process: a change made through
    # another process (another worker, the CLI, the admin API of another broker) reaches this one
    # within this time. A change through this process takes effect in it at once.
    registry_refresh_seconds: float = Field(default=5.0, gt=0)
    # Database connections a process keeps open. The pool closes any connection opened beyond
    # these when it comes back: with fewer than the requests served at once, most requests would
    # open a new one (on PostgreSQL a new server process; 260 for 1,940 reads at 16 connections with
    # 10). Up to 20 more are opened for bursts. Mind PostgreSQL's max_connections: processes ×
    # (this + 20) at most.
    db_pool_size: int = Field(default=20, ge=1, le=500)
    # How long opening a database connection may take before the request fails (503
    # storage.unavailable) instead of waiting on an address that never answers.
    db_connect_timeout_seconds: int = Field(default=10, ge=2, le=300)
    # Exchanges a process works on at once (more requests wait their turn, first come, first served;
    # see broker.fifo). Two: while one waits for the database (a commit's flush above
    # all) the other computes; with four the threads' contention for the GIL cost about 10 % of the
    # throughput at 16 connections (bench.exchange, PostgreSQL on the same host).
    exchange_concurrency: int = Field(default=2, ge=1)
    # Signer processes beside each serving process (broker.seal.signer): the seal, the exchange's
    # most CPU-hungry step, runs there, on another core, while the serving process goes on. 0 seals
    # in the request's own thread (two processes fewer, about 15 % fewer exchanges a second).
    seal_processes: int = Field(default=2, ge=0, le=32)
    # How long a seal may take in a signer process before the request answers 503 seal.unavailable
    # and that signer is started afresh (its first seal includes its start, about half a second).
    seal_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Largest request body accepted where XML documents arrive: /oots/edm and the pull answers.
    max_body_bytes: int = 10 * 1024 * 1024
    # Largest body anywhere else (the JSON API, forms). FastAPI parses and validates JSON bodies
    # on the event loop, so this bound is also how long one request can hold up every other:
    # about 30 ms for 128 KiB, 60 ms for the most allowed (a registry document, the densest; the
    # demo registry, with its offices, is about 80 KB, which the default must take).
    max_json_bytes: int = Field(default=128 * 1024, ge=1024, le=256 * 1024)
    # Delivered evidence is kept for retrieval this long, then purged.
    evidence_retention_hours: int = 24
    # A citizen's preview (evidence held for approval) stays open this long, then the evidence is dropped.
    preview_ttl_minutes: float = 30.0
    # The OOTS gateway's timeouts, the three phases of an evidence request with preview (README,
    # "OOTS gateway"): T1 how long a request waits for the competent authority before it is
    # answered EDM:ERR:0005, T2 how long the citizen's preview of an OOTS request stays open,
    # T3 how long a request that returns with the PreviewLocation before the citizen decided
    # is held for the decision. The Online Procedure Portal's own timeouts must exceed these.
    oots_t1_seconds: float = Field(default=60.0, gt=0, le=3600)
    oots_t2_seconds: float = Field(default=1800.0, gt=0, le=86400)
    oots_t3_seconds: float = Field(default=60.0, gt=0, le=3600)
    # The broker's address as citizens and remote requesters reach it (https://…), used in the
    # links it hands out (the OOTS PreviewLocation); empty: the address each request came in on.
    public_url: str = ""
    # Seconds between two runs of the log integrator in a serving process.
    integrate_interval_seconds: float = 0.5

    # --- the citizen's sign-in (docs: README, "The citizen's side") ---
    # "oidc": citizens sign in at the OpenID Provider below. "development": a choice of the demo
    # citizens instead, which exists only with BROKER_ENV=development. Unset: oidc when an
    # issuer is set, else development in development (outside it, serving refuses to start).
    citizen_signin: Literal["oidc", "development"] | None = None
    # The OpenID Provider (e.g. BundID behind an OIDC bridge, or a SAML-to-OIDC proxy for eIDAS)
    # and this broker's client there; the redirect URI to register is <public URL>/citizen/callback.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid profile"
    # Names of the claims that carry the subject's attributes; empty: the provider gives none.
    oidc_claim_family_name: str = "family_name"
    oidc_claim_given_name: str = "given_name"
    oidc_claim_birth_date: str = "birthdate"
    oidc_claim_birth_place: str = "place_of_birth"
    oidc_claim_idnr: str = ""
    oidc_claim_person_identifier: str = ""
    # acr value → eIDAS level of assurance (JSON object); values not listed give no level.
    oidc_acr_levels: dict[str, Literal["low", "substantial", "high"]] = {
        "http://eidas.europa.eu/LoA/low": "low",
        "http://eidas.europa.eu/LoA/substantial": "substantial",
        "http://eidas.europa.eu/LoA/high": "high",
    }
    # Seeing and deciding about evidence needs an authentication at most this old (OIDC max_age).
    citizen_max_auth_age_seconds: int = Field(default=300, ge=30, le=3600)
    # A citizen's session (the signed cookie) ends after this long.
    citizen_session_minutes: int = Field(default=30, ge=1, le=720)

    @property
    def signin_method(self) -> Literal["oidc", "development"] | None:
        """How citizens sign in; None where no sign-in is configured (serving refuses then)."""
        if self.citizen_signin is not None:
            return self.citizen_signin
        if self.oidc_issuer:
            return "oidc"
        return "development" if self.env == "development" else None

    def serving_problems(self) -> list[str]:
        """What makes these settings unfit to serve citizens and remote requesters (empty: fit)."""
        problems = []
        method = self.signin_method
        if method == "oidc" and not (self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret):
            problems.append("the citizens' sign-in needs BROKER_OIDC_ISSUER, BROKER_OIDC_CLIENT_ID and _SECRET")
        if self.env == "development":
            return problems
        if method == "development":
            problems.append("the development sign-in (BROKER_CITIZEN_SIGNIN) exists only with BROKER_ENV=development")
        elif method is None:
            problems.append("citizens cannot sign in: set BROKER_OIDC_ISSUER, BROKER_OIDC_CLIENT_ID and _SECRET")
        url = urllib.parse.urlsplit(self.public_url.strip())
        if url.scheme != "https" or not url.hostname:
            # Preview links and the OOTS PreviewLocation go to citizens: never built from a Host header.
            problems.append("BROKER_PUBLIC_URL must be the broker's https:// address outside development (BROKER_ENV)")
        return problems

    @property
    def schema_dirs(self) -> list[Path]:
        extra = [Path(p) for p in self.schema_path.split(os.pathsep) if p.strip()]
        return [REPO_DIR / "xsd", *extra]

    @property
    def preview_ttl(self) -> timedelta:
        return timedelta(minutes=self.preview_ttl_minutes)

    @property
    def oots_preview_ttl(self) -> timedelta:
        return timedelta(seconds=self.oots_t2_seconds)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def get_settings() -> Settings:
    """Read from the environment on every call: an entry point (app, command) reads them once."""
    return Settings()
