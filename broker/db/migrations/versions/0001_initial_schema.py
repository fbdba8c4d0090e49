"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 00:34:11.783342
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authorities",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("ars", sa.String(length=12), nullable=False),
        sa.Column("register_kind", sa.String(length=50), nullable=False),
        sa.Column("binding", sa.String(length=20), nullable=False),
        sa.Column("endpoint_url", sa.String(length=500), nullable=True),
        sa.Column("timeout_seconds", sa.Double(), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authorities")),
    )
    op.create_table(
        "birth_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("register_id", sa.String(length=100), nullable=False),
        sa.Column("entry_number", sa.String(length=50), nullable=False),
        sa.Column("idnr", sa.String(length=11), nullable=True),
        sa.Column("family_name", sa.String(length=200), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=False),
        sa.Column("family_name_key", sa.String(length=200), nullable=False),
        sa.Column("given_name_key", sa.String(length=200), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("birth_place", sa.String(length=200), nullable=False),
        sa.Column("mother_name", sa.String(length=300), nullable=False),
        sa.Column("father_name", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_birth_records")),
    )
    with op.batch_alter_table("birth_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_birth_records_idnr"), ["idnr"], unique=False)
        batch_op.create_index("ix_birth_records_match", ["register_id", "family_name_key", "birth_date"], unique=False)

    op.create_table(
        "business_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("register_id", sa.String(length=100), nullable=False),
        sa.Column("registration_number", sa.String(length=50), nullable=False),
        sa.Column("idnr", sa.String(length=11), nullable=True),
        sa.Column("family_name", sa.String(length=200), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=False),
        sa.Column("family_name_key", sa.String(length=200), nullable=False),
        sa.Column("given_name_key", sa.String(length=200), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("birth_place", sa.String(length=200), nullable=False),
        sa.Column("trade_name", sa.String(length=300), nullable=False),
        sa.Column("activity", sa.String(length=500), nullable=False),
        sa.Column("business_address", sa.String(length=300), nullable=False),
        sa.Column("municipality_ars", sa.String(length=12), nullable=False),
        sa.Column("registered_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_registrations")),
    )
    with op.batch_alter_table("business_registrations", schema=None) as batch_op:
        batch_op.create_index("ix_business_match", ["register_id", "family_name_key", "birth_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_business_registrations_idnr"), ["idnr"], unique=False)

    op.create_table(
        "checkpoints",
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "evidence_types",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("namespace", sa.String(length=300), nullable=False),
        sa.Column("root_element", sa.String(length=100), nullable=False),
        sa.Column("assurance_level", sa.String(length=20), nullable=False),
        sa.Column("oots_classifications", sa.JSON(), nullable=False),
        sa.Column("preview_required", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_types")),
    )
    op.create_table(
        "log_entries",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("exchange_id", sa.String(length=36), nullable=True),
        sa.Column("requester", sa.String(length=200), nullable=True),
        sa.Column("authority", sa.String(length=100), nullable=True),
        sa.Column("evidence_type", sa.String(length=200), nullable=True),
        sa.Column("subject_pseudonym", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_log_entries")),
        sa.UniqueConstraint("log_index", name=op.f("uq_log_entries_log_index")),
    )
    with op.batch_alter_table("log_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_entries_authority"), ["authority"], unique=False)
        batch_op.create_index(batch_op.f("ix_log_entries_exchange_id"), ["exchange_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_log_entries_recorded_at"), ["recorded_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_log_entries_requester"), ["requester"], unique=False)
        batch_op.create_index(batch_op.f("ix_log_entries_subject_pseudonym"), ["subject_pseudonym"], unique=False)

    op.create_table(
        "merkle_nodes",
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("index", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "index", name=op.f("pk_merkle_nodes")),
    )
    op.create_table(
        "residents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("register_id", sa.String(length=100), nullable=False),
        sa.Column("idnr", sa.String(length=11), nullable=True),
        sa.Column("family_name", sa.String(length=200), nullable=False),
        sa.Column("given_name", sa.String(length=200), nullable=False),
        sa.Column("family_name_key", sa.String(length=200), nullable=False),
        sa.Column("given_name_key", sa.String(length=200), nullable=False),
        sa.Column("birth_name", sa.String(length=200), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("birth_place", sa.String(length=200), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("house_number", sa.String(length=20), nullable=False),
        sa.Column("postal_code", sa.String(length=5), nullable=False),
        sa.Column("municipality", sa.String(length=200), nullable=False),
        sa.Column("municipality_ars", sa.String(length=12), nullable=False),
        sa.Column("moved_in", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_residents")),
    )
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.create_index("ix_residents_idnr", ["register_id", "idnr"], unique=False)
        batch_op.create_index("ix_residents_match", ["register_id", "family_name_key", "birth_date"], unique=False)

    op.create_table(
        "clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=200), nullable=True),
        sa.Column("authority_id", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["authority_id"],
            ["authorities.id"],
            name=op.f("fk_clients_authority_id_authorities"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
        sa.UniqueConstraint("name", name=op.f("uq_clients_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_clients_token_hash")),
    )
    op.create_table(
        "routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("evidence_type_id", sa.String(length=200), nullable=False),
        sa.Column("ars_prefix", sa.String(length=12), nullable=False),
        sa.Column("authority_id", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["authority_id"],
            ["authorities.id"],
            name=op.f("fk_routes_authority_id_authorities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["evidence_type_id"],
            ["evidence_types.id"],
            name=op.f("fk_routes_evidence_type_id_evidence_types"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
        sa.UniqueConstraint("evidence_type_id", "ars_prefix", name=op.f("uq_routes_evidence_type_id")),
    )
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_routes_authority_id"), ["authority_id"], unique=False)

    op.create_table(
        "client_permissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("evidence_type_id", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_permissions_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_permissions")),
        sa.UniqueConstraint("client_id", "evidence_type_id", "purpose", name=op.f("uq_client_permissions_client_id")),
    )
    with op.batch_alter_table("client_permissions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_client_permissions_client_id"), ["client_id"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject_pseudonym", sa.String(length=100), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("evidence_types", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.String(length=300), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["clients.id"],
            name=op.f("fk_consents_requester_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_subject_pseudonym"), ["subject_pseudonym"], unique=False)

    op.create_table(
        "exchanges",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("external_ref", sa.String(length=200), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("evidence_type_id", sa.String(length=200), nullable=False),
        sa.Column("jurisdiction", sa.String(length=12), nullable=True),
        sa.Column("authority_id", sa.String(length=100), nullable=True),
        sa.Column("purpose", sa.String(length=300), nullable=False),
        sa.Column("legal_basis", sa.String(length=300), nullable=True),
        sa.Column("consent_id", sa.String(length=36), nullable=True),
        sa.Column("explicit_request", sa.Boolean(), nullable=False),
        sa.Column("preview", sa.Boolean(), nullable=False),
        sa.Column("subject_pseudonym", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=True),
        sa.Column("reason_detail", sa.Text(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("callback_url", sa.String(length=500), nullable=True),
        sa.Column("evidence", sa.LargeBinary(), nullable=True),
        sa.Column("evidence_digest", sa.String(length=64), nullable=True),
        sa.Column("delivery_log_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["requester_id"], ["clients.id"], name=op.f("fk_exchanges_requester_id_clients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchanges")),
        sa.UniqueConstraint("requester_id", "idempotency_key", name=op.f("uq_exchanges_requester_id")),
    )
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exchanges_requester_id"), ["requester_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_exchanges_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_exchanges_subject_pseudonym"), ["subject_pseudonym"], unique=False)

    op.create_table(
        "adapter_tasks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("exchange_id", sa.String(length=36), nullable=False),
        sa.Column("authority_id", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result_digest", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["exchanges.id"],
            name=op.f("fk_adapter_tasks_exchange_id_exchanges"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adapter_tasks")),
    )
    with op.batch_alter_table("adapter_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_adapter_tasks_authority_state", ["authority_id", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_adapter_tasks_exchange_id"), ["exchange_id"], unique=False)

    op.create_table(
        "previews",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("exchange_id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["exchanges.id"],
            name=op.f("fk_previews_exchange_id_exchanges"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_previews")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_previews_token_hash")),
    )
    with op.batch_alter_table("previews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_previews_exchange_id"), ["exchange_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("previews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_previews_exchange_id"))

    op.drop_table("previews")
    with op.batch_alter_table("adapter_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_adapter_tasks_exchange_id"))
        batch_op.drop_index("ix_adapter_tasks_authority_state")

    op.drop_table("adapter_tasks")
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchanges_subject_pseudonym"))
        batch_op.drop_index(batch_op.f("ix_exchanges_state"))
        batch_op.drop_index(batch_op.f("ix_exchanges_requester_id"))

    op.drop_table("exchanges")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_subject_pseudonym"))

    op.drop_table("consents")
    with op.batch_alter_table("client_permissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_permissions_client_id"))

    op.drop_table("client_permissions")
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routes_authority_id"))

    op.drop_table("routes")
    op.drop_table("clients")
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.drop_index("ix_residents_match")
        batch_op.drop_index("ix_residents_idnr")

    op.drop_table("residents")
    op.drop_table("merkle_nodes")
    with op.batch_alter_table("log_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_entries_subject_pseudonym"))
        batch_op.drop_index(batch_op.f("ix_log_entries_requester"))
        batch_op.drop_index(batch_op.f("ix_log_entries_recorded_at"))
        batch_op.drop_index(batch_op.f("ix_log_entries_exchange_id"))
        batch_op.drop_index(batch_op.f("ix_log_entries_authority"))

    op.drop_table("log_entries")
    op.drop_table("evidence_types")
    op.drop_table("checkpoints")
    with op.batch_alter_table("business_registrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_business_registrations_idnr"))
        batch_op.drop_index("ix_business_match")

    op.drop_table("business_registrations")
    with op.batch_alter_table("birth_records", schema=None) as batch_op:
        batch_op.drop_index("ix_birth_records_match")
        batch_op.drop_index(batch_op.f("ix_birth_records_idnr"))

    op.drop_table("birth_records")
    op.drop_table("authorities")
