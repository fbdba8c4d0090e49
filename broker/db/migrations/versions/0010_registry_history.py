"""registry history: the documents replacements replaced

Before this, ``PUT /v1/admin/registry`` with ``{}`` emptied the registry and nothing could bring
it back: the log keeps only the digests of a change. Every whole replacement now keeps the
document it replaced, and ``broker registry rollback`` restores the newest one.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_history",
        # INTEGER on SQLite so that it stays the rowid alias (autoincrement), as models.BigId.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_history")),
    )


def downgrade() -> None:
    op.drop_table("registry_history")
