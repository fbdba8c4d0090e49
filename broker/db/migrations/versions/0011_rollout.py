"""rollout: offices, route states, conformance runs

The registry gains the universe of municipal offices the rollout covers (``offices``) and a
state per route: only ``active`` routes route, a ``pending`` one waits for its authority to pass
the conformance kit (``broker rollout onboard``), whose runs are kept (``conformance_runs``).
Every route stored before this routed, so existing routes are active. An index serves the
rollout matrix's questions about the exchanges of an authority and evidence type.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offices",
        sa.Column("ars", sa.String(12), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("kreis", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("ars", name=op.f("pk_offices")),
    )
    # A plain column addition: no table rebuild on SQLite.
    op.add_column("routes", sa.Column("state", sa.String(10), server_default="active", nullable=False))
    op.create_table(
        "conformance_runs",
        # INTEGER on SQLite so that it stays the rowid alias (autoincrement), as models.BigId.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("authority_id", sa.String(100), nullable=False),
        sa.Column("binding", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conformance_runs")),
    )
    op.create_index("ix_conformance_runs_authority_finished", "conformance_runs", ["authority_id", "finished_at"])
    op.create_index(
        "ix_exchanges_authority_outcomes", "exchanges", ["authority_id", "evidence_type_id", "state", "updated_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_exchanges_authority_outcomes", table_name="exchanges")
    op.drop_index("ix_conformance_runs_authority_finished", table_name="conformance_runs")
    op.drop_table("conformance_runs")
    # Batch mode on SQLite rebuilds the routes table: nothing refers to its rows.
    with op.batch_alter_table("routes") as batch:
        batch.drop_column("state")
    op.drop_table("offices")
