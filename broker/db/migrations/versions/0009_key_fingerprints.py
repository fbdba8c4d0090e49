"""key fingerprints: which checkpoint keys and pseudonym secret the log belongs to

A broker started with a keys directory that does not hold these keys (an empty or wrong
BROKER_KEYS_DIR) refuses to start instead of signing the log with new keys and giving citizens
new pseudonyms. Databases from before this revision get their fingerprints at the next start.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_fingerprints",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(100), nullable=True),
        sa.Column("how", sa.String(20), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("key_fingerprints")
