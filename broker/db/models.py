"""The broker's tables. One Alembic history (broker/db/migrations) creates them on SQLite and PostgreSQL,
together with the demo register tables (adapters/registers/models.py, which have their own metadata).

Personal data lives only in the demo register tables (the authorities' data), in pending
adapter tasks (erased when the task ends) and in delivered evidence (purged after the
retention period). Exchanges and log entries carry subjects only as keyed pseudonyms.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, but INTEGER on SQLite so that it stays the rowid alias (autoincrement).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


# --- registry -------------------------------------------------------------------------------


class EvidenceType(Base):
    __tablename__ = "evidence_types"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    namespace: Mapped[str] = mapped_column(String(300))
    root_element: Mapped[str] = mapped_column(String(100))
    # eIDAS level of assurance an OOTS request must at least carry: low | substantial | high.
    assurance_level: Mapped[str] = mapped_column(String(20))
    # OOTS evidence type classifications (and DataServiceEvidenceType ids) that mean this type.
    oots_classifications: Mapped[list[str]] = mapped_column(default=list)
    preview_required: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where its documents state the subject (registry.schemas.SubjectPaths); NULL only for a type
    # stored before migration 0004, whose evidence is then never delivered.
    subject_paths: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Its data model in the OOTS Semantic Repository (a distributions URL) and a description (OOTS).
    data_model: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(String(1000))


class Purpose(Base):
    """Why a requester may ask (a registry vocabulary): requests, grants and log entries name its id."""

    __tablename__ = "purposes"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    # The administrative service's key in the Leistungskatalog (LeiKa).
    leika_key: Mapped[str | None] = mapped_column(String(14))


class LegalBasis(Base):
    """A provision explicit requests rest on (a registry vocabulary), and the evidence types it covers."""

    __tablename__ = "legal_bases"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    citation: Mapped[str] = mapped_column(String(300), unique=True)
    evidence_types: Mapped[list[str]] = mapped_column(JSON)
    # Days after an exchange before the citizen's cockpit may show it (a law's exemption from
    # disclosure, e.g. investigations); None shows it at once. The log entry exists either way.
    disclosure_delay_days: Mapped[int | None] = mapped_column(Integer)


class Authority(Base):
    __tablename__ = "authorities"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    # The Regionalschlüssel (or prefix of it) of the area the authority is responsible for.
    ars: Mapped[str] = mapped_column(String(12))
    register_kind: Mapped[str] = mapped_column(String(50))  # melderegister | standesamt | gewerberegister
    binding: Mapped[str] = mapped_column(String(20), default="in_process")  # in_process | http_push | pull
    endpoint_url: Mapped[str | None] = mapped_column(String(500))
    timeout_seconds: Mapped[float] = mapped_column(default=5.0)
    # PEM public key the authority signs its answers with (push and pull bindings).
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    # Its OOTS agent identifier and that identifier's EAS scheme code (e.g. a Leitweg-ID, 0204).
    oots_identifier: Mapped[str | None] = mapped_column(String(100))
    oots_identifier_scheme: Mapped[str | None] = mapped_column(String(4))


class Route(Base):
    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("evidence_type_id", "ars_prefix"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evidence_type_id: Mapped[str] = mapped_column(ForeignKey("evidence_types.id", ondelete="CASCADE"))
    ars_prefix: Mapped[str] = mapped_column(String(12))
    authority_id: Mapped[str] = mapped_column(ForeignKey("authorities.id", ondelete="CASCADE"), index=True)
    # active | pending (migration 0011): only active routes route; a pending one waits for its
    # authority to pass the conformance kit (`broker rollout onboard`). Routes stored before
    # 0011 routed, so they are active.
    state: Mapped[str] = mapped_column(String(10), default="active", server_default="active")


class Office(Base):
    """A municipal office the rollout covers (registry section ``offices``, migration 0011): an
    Amt, an amtsfreie Gemeinde or a kreisfreie Stadt, by its Regionalschlüssel."""

    __tablename__ = "offices"

    ars: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(30))  # amt | amtsfreie_gemeinde | kreisfreie_stadt
    # The name of its Kreis (a kreisfreie Stadt's own); the Kreis key is the ARS's first 5 digits.
    kreis: Mapped[str] = mapped_column(String(300))


class RegistryHistory(Base):
    """A whole registry document as it was before a replacement (migration 0010), so that
    ``broker registry rollback`` can restore it: the log keeps only the digests."""

    __tablename__ = "registry_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    replaced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Who replaced it (the admin's name, or "cli").
    actor: Mapped[str] = mapped_column(String(200))
    # The document's digest: its ETag when it was current.
    etag: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)


# --- clients --------------------------------------------------------------------------------


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # requester | adapter | auditor | admin | metrics
    # SHA-256 of the bearer token; "removed:<id>" once the client is removed (no token matches it).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # OOTS agent identifier "scheme:id" (requesters), or the authority an adapter client speaks for.
    agent_id: Mapped[str | None] = mapped_column(String(200))
    authority_id: Mapped[str | None] = mapped_column(ForeignKey("authorities.id", ondelete="SET NULL"))
    # A requester's callback origins ("https://portal.example"): the only places its callbacks and
    # the preview's link back may point to (broker.egress).
    callback_origins: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The token is refused from this moment on (None: it does not expire).
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A removed client's row stays: its exchanges refer to it and the log names it.
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ClientPermission(Base):
    __tablename__ = "client_permissions"
    __table_args__ = (UniqueConstraint("client_id", "evidence_type_id", "purpose"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    evidence_type_id: Mapped[str] = mapped_column(String(200))
    # A registered purpose's id; None: any registered purpose.
    purpose: Mapped[str | None] = mapped_column(String(300))


# --- exchanges ------------------------------------------------------------------------------


class Exchange(Base):
    __tablename__ = "exchanges"
    __table_args__ = (
        UniqueConstraint("requester_id", "idempotency_key"),
        # The rollout matrix's per authority × evidence type questions (migration 0011): the last
        # delivery, and the exchanges that ended in a window (ended exchanges change no more).
        Index("ix_exchanges_authority_outcomes", "authority_id", "evidence_type_id", "state", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10), default="v1")  # v1 | oots
    # The caller's own reference, e.g. the OOTS QueryRequest id.
    external_ref: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_digest: Mapped[str] = mapped_column(String(64))
    # Registry ids only, never what a caller typed: None where the request named nothing registered
    # (it was refused; the reason code says which field).
    evidence_type_id: Mapped[str | None] = mapped_column(String(200))
    jurisdiction: Mapped[str | None] = mapped_column(String(12))
    authority_id: Mapped[str | None] = mapped_column(String(100))
    purpose: Mapped[str | None] = mapped_column(String(300))
    legal_basis: Mapped[str | None] = mapped_column(String(300))
    consent_id: Mapped[str | None] = mapped_column(String(36))
    explicit_request: Mapped[bool] = mapped_column(Boolean, default=False)
    preview: Mapped[bool] = mapped_column(Boolean, default=False)
    subject_pseudonym: Mapped[str] = mapped_column(String(100), index=True)
    # The pseudonym of the IDNr the evidence states (set when it arrives): tells apart namesakes
    # whose exchanges were requested by name alone (``broker.citizen.identity``).
    subject_idnr_pseudonym: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), index=True)
    # Stable reason code and HTTP status of a rejected or failed exchange.
    reason: Mapped[str | None] = mapped_column(String(100))
    reason_detail: Mapped[str | None] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    callback_url: Mapped[str | None] = mapped_column(String(500))
    evidence: Mapped[bytes | None] = mapped_column(LargeBinary)
    evidence_digest: Mapped[str | None] = mapped_column(String(64))
    # Log sequence number of the entry that records delivery, for the receipt.
    delivery_log_seq: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AdapterTask(Base):
    """Work for a remote authority. The payload (with the subject) is erased once the task ends."""

    __tablename__ = "adapter_tasks"
    __table_args__ = (Index("ix_adapter_tasks_authority_state", "authority_id", "state"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    exchange_id: Mapped[str] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"), index=True)
    authority_id: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))  # pending | leased | done | failed
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result_digest: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CallbackDelivery(Base):
    """A signed callback owed to a requester: queued with the end of its exchange, sent by a sweep."""

    __tablename__ = "callback_deliveries"

    exchange_id: Mapped[str] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), index=True)  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the next attempt is due; a sender moves it forward when it takes the delivery.
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_pseudonym: Mapped[str] = mapped_column(String(100), index=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    evidence_types: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(String(300))  # a registered purpose's id
    legal_basis: Mapped[str | None] = mapped_column(String(100))  # a registered legal basis's id
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # requested (by the requester) → granted | declined (by the citizen); only granted authorises.
    state: Mapped[str] = mapped_column(String(20), default="requested")
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The signed grant (compact JWS) the requester receives and the citizen can download.
    artefact: Mapped[str | None] = mapped_column(Text)
    # The pseudonym of the IDNr the granting citizen's sign-in stated: evidence fetched on this
    # consent must state the same IDNr (a namesake's grant authorises nothing about others).
    citizen_idnr_pseudonym: Mapped[str | None] = mapped_column(String(100))


class Preview(Base):
    """A single-use, expiring page where the citizen approves or declines evidence before release."""

    __tablename__ = "previews"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    exchange_id: Mapped[str] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(20))  # pending | approved | declined | expired
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CitizenSignOut(Base):
    """A citizen's session ended by signing out, until it would have ended anyway: the session
    lives in a signed cookie, and a copy of the cookie must not outlive the sign-out."""

    __tablename__ = "citizen_sign_outs"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# --- rollout --------------------------------------------------------------------------------


class ConformanceRun(Base):
    """One run of the conformance kit against an authority by ``broker rollout onboard``
    (migration 0011): whether it passed, when, and each case's verdict. Runs are history: they
    stay when the authority leaves the registry."""

    __tablename__ = "conformance_runs"
    __table_args__ = (Index("ix_conformance_runs_authority_finished", "authority_id", "finished_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    authority_id: Mapped[str] = mapped_column(String(100))
    binding: Mapped[str] = mapped_column(String(20))  # the binding that was checked
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    passed: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(200))
    # The kit's lines: [{"case", "verdict" (PASS | FAIL | SKIP), "detail"}], in the kit's words.
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


# --- keys -----------------------------------------------------------------------------------


class KeyFingerprint(Base):
    """Which keys this database's log belongs to (broker/keys/fingerprints.py): a broker whose
    keys directory holds other keys refuses to start instead of forking the log.

    Never the key itself: the SHA-256 of a checkpoint key's public key, or of a tag derived from
    the pseudonym secret. Rows are only added: old checkpoints stay signed by old keys.
    """

    __tablename__ = "key_fingerprints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    purpose: Mapped[str] = mapped_column(String(20))  # checkpoint | pseudonym
    fingerprint: Mapped[str] = mapped_column(String(64))  # hex SHA-256
    # The checkpoint key's id (JWK thumbprint) for people reading the table; empty for the secret.
    key_id: Mapped[str | None] = mapped_column(String(100))
    how: Mapped[str] = mapped_column(String(20))  # first_start | rotated | adopted
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- provenance log -------------------------------------------------------------------------


class LogEntry(Base):
    """An entry is queued (log_index NULL) in the transaction of the step it records.

    The integrator later assigns dense indices in queue order; ``seq`` may have gaps, ``log_index`` never.
    """

    __tablename__ = "log_entries"
    # The integrator's queue (migration 0002): only not-yet-integrated entries, in seq order.
    __table_args__ = (
        Index(
            "ix_log_entries_queued",
            "seq",
            postgresql_where=text("log_index IS NULL"),
            sqlite_where=text("log_index IS NULL"),
        ),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    log_index: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)  # canonical JSON (RFC 8785)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    event: Mapped[str] = mapped_column(String(40))
    exchange_id: Mapped[str | None] = mapped_column(String(36), index=True)
    requester: Mapped[str | None] = mapped_column(String(200), index=True)
    authority: Mapped[str | None] = mapped_column(String(100), index=True)
    evidence_type: Mapped[str | None] = mapped_column(String(200))
    subject_pseudonym: Mapped[str | None] = mapped_column(String(100), index=True)


class MerkleNode(Base):
    """Hash of a perfect subtree: level 0 are leaf hashes; (level, index) covers 2**level leaves."""

    __tablename__ = "merkle_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class Checkpoint(Base):
    __tablename__ = "checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
