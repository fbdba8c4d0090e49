"""the citizen's side: consent requests the citizen decides, disclosure delays of legal bases

Consents become requests a requester makes and the citizen grants or declines (``state``,
``decided_at``, the signed ``artefact``, the ``legal_basis`` asked for). Consents recorded
before this revision were recorded by requesters as granted, so they stay ``granted``.
Legal bases may delay what the citizen's cockpit shows (``disclosure_delay_days``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain column additions (no table rebuild on SQLite, whose foreign keys would cascade).
    op.add_column("consents", sa.Column("legal_basis", sa.String(100), nullable=True))
    op.add_column("consents", sa.Column("state", sa.String(20), server_default="granted", nullable=False))
    op.add_column("consents", sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("consents", sa.Column("artefact", sa.Text(), nullable=True))
    op.add_column("legal_bases", sa.Column("disclosure_delay_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("legal_bases", "disclosure_delay_days")
    op.drop_column("consents", "artefact")
    op.drop_column("consents", "decided_at")
    op.drop_column("consents", "state")
    op.drop_column("consents", "legal_basis")
