"""log queue index

The integrator repeatedly asks for the queued entries (log_index IS NULL) in seq order. Without
a partial index that query walks every integrated entry first, so integration would slow down
as the log grows; with it the cost is proportional to the queue alone.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_QUEUED = sa.text("log_index IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_log_entries_queued",
        "log_entries",
        ["seq"],
        unique=False,
        postgresql_where=_QUEUED,
        sqlite_where=_QUEUED,
    )


def downgrade() -> None:
    op.drop_index("ix_log_entries_queued", table_name="log_entries")
