"""client lifecycle and callback origins

Clients get registered callback origins (the only places the broker calls them back) and a
lifecycle (token expiry, disable that takes effect at once, removal).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- callback origins (egress policy) ---
    op.add_column("clients", sa.Column("callback_origins", sa.JSON(), server_default="[]", nullable=False))
    # --- client lifecycle ---
    # Plain column additions: no table rebuild on SQLite (which, with foreign keys on, would
    # cascade through the clients' consents and permissions).
    op.add_column("clients", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("clients", sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # --- client lifecycle ---
    op.drop_column("clients", "removed_at")
    op.drop_column("clients", "expires_at")
    # --- callback origins (egress policy) ---
    op.drop_column("clients", "callback_origins")
