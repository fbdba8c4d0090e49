"""client lifecycle and callback origins

Clients get registered callback origins (the only places the broker calls them back) and a
lifecycle (token expiry, disable that takes effect at once, removal).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 13:00:00
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- callback origins (egress policy) ---
    # --- client lifecycle ---
    pass


def downgrade() -> None:
    # --- client lifecycle ---
    # --- callback origins (egress policy) ---
    pass
