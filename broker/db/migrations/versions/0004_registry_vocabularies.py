"""registry vocabularies

Legal bases and purposes become registry entries that requests name by id (or exact citation /
name), so no free text a caller chose reaches the log; evidence types say where their document
states the subject.

An exchange keeps registry ids only: its evidence type and purpose are NULL where the request
named nothing registered (it was refused), so both columns lose NOT NULL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 13:00:00
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Exchange columns that a request naming nothing registered leaves empty.
EXCHANGE_REFERENCES = {"evidence_type_id": 200, "purpose": 300}


def upgrade() -> None:
    op.create_table(
        "purposes",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("leika_key", sa.String(length=14), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purposes")),
        sa.UniqueConstraint("name", name=op.f("uq_purposes_name")),
    )
    op.create_table(
        "legal_bases",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("citation", sa.String(length=300), nullable=False),
        sa.Column("evidence_types", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_bases")),
        sa.UniqueConstraint("citation", name=op.f("uq_legal_bases_citation")),
    )
    # A plain column addition: no table rebuild on SQLite.
    op.add_column("evidence_types", sa.Column("subject_paths", sa.JSON(), nullable=True))
    _exchange_references_nullable(True)


def downgrade() -> None:
    # Refused exchanges that named nothing registered get an empty string back, as before 0004
    # they would have kept the caller's text.
    for column in EXCHANGE_REFERENCES:
        op.execute(sa.text(f"UPDATE exchanges SET {column} = '' WHERE {column} IS NULL"))
    _exchange_references_nullable(False)
    op.drop_column("evidence_types", "subject_paths")
    op.drop_table("legal_bases")
    op.drop_table("purposes")


def _exchange_references_nullable(nullable: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        for column, length in EXCHANGE_REFERENCES.items():
            op.alter_column("exchanges", column, existing_type=sa.String(length=length), nullable=nullable)
        return
    # SQLite cannot alter a column, and batch mode's rebuild drops the old table, which (foreign
    # keys on) deletes the exchanges' tasks, previews and callbacks by cascade. SQLite
    # documents this edit of the stored schema for adding or removing NOT NULL
    # (https://www.sqlite.org/lang_altertable.html, "Making Other Kinds Of Table Schema Changes").
    sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'exchanges'").scalar_one()
    for column in EXCHANGE_REFERENCES:
        declared = re.compile(rf"(\b{column}\s+VARCHAR\(\d+\))(\s+NOT NULL)?", re.IGNORECASE)
        sql, found = declared.subn(lambda m: m.group(1) + ("" if nullable else " NOT NULL"), sql)
        if found != 1:
            raise RuntimeError(f"exchanges.{column}: unexpected declaration in the stored schema")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'exchanges'", (sql,))
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
