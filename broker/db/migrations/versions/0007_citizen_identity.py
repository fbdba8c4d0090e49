"""namesakes and sign-outs: the IDNr behind a name-matched exchange or consent; ended sessions

Exchanges keep the pseudonym of the IDNr their evidence states, consents the pseudonym of the
IDNr the granting citizen's sign-in stated, so that a namesake (same names and birth date)
neither sees nor decides another person's evidence. Sign-outs are kept until the session would
have ended anyway, so that a copied session cookie dies with the sign-out.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 16:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exchanges", sa.Column("subject_idnr_pseudonym", sa.String(100), nullable=True))
    op.add_column("consents", sa.Column("citizen_idnr_pseudonym", sa.String(100), nullable=True))
    op.create_table(
        "citizen_sign_outs",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_citizen_sign_outs_until", "citizen_sign_outs", ["until"])


def downgrade() -> None:
    op.drop_index("ix_citizen_sign_outs_until", table_name="citizen_sign_outs")
    op.drop_table("citizen_sign_outs")
    op.drop_column("consents", "citizen_idnr_pseudonym")
    op.drop_column("exchanges", "subject_idnr_pseudonym")
