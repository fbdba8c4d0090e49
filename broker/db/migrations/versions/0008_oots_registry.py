"""OOTS registry data: authorities' agent identifiers, evidence types' data model and description

The official OOTS rules want an authority named by an identifier in an EAS scheme (e.g. its
Leitweg-ID, EAS 0204) rather than the broker's own id, and an evidence type's distribution to
name its data model in the Semantic Repository, with a description of the type. All optional:
a registry without them still works, its OOTS messages name authorities by id under the
unregistered scheme.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain column additions (no table rebuild on SQLite, whose foreign keys would cascade).
    op.add_column("authorities", sa.Column("oots_identifier", sa.String(100), nullable=True))
    op.add_column("authorities", sa.Column("oots_identifier_scheme", sa.String(4), nullable=True))
    op.add_column("evidence_types", sa.Column("data_model", sa.String(300), nullable=True))
    op.add_column("evidence_types", sa.Column("description", sa.String(1000), nullable=True))


def downgrade() -> None:
    op.drop_column("evidence_types", "description")
    op.drop_column("evidence_types", "data_model")
    op.drop_column("authorities", "oots_identifier_scheme")
    op.drop_column("authorities", "oots_identifier")
