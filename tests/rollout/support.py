"""What the rollout tests share: a database with the demo registry, exchanges of one authority,
and the matrix at a fixed moment."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from broker.clients.service import add_client
from broker.db.models import Client, Exchange
from broker.db.session import Database
from broker.rollout import service
from broker.rollout.schemas import RolloutOut
from tests.registry.support import NOW
from tests.specimen import MELDE


def matrix_of(database: Database, now: datetime = NOW) -> RolloutOut:
    with database.read() as session:
        return service.matrix(session, now)


def add_exchanges(database: Database, rows: Sequence[tuple[str, str | None, float, timedelta, bool]]) -> None:
    """Exchanges of melderegister-130715001 for Meldebescheinigungen: (state, reason, seconds it
    took, how long before NOW it ended, with a preview)."""
    with database.unit_of_work() as session:
        name = f"portal-{uuid.uuid4().hex[:8]}"
        add_client(session, name, "requester", [(MELDE, None)], actor="test", now=NOW)
        requester = session.scalars(select(Client.id).where(Client.name == name)).one()
        for state, reason, seconds, ago, preview in rows:
            ended = NOW - ago
            session.add(
                Exchange(
                    id=str(uuid.uuid4()),
                    requester_id=requester,
                    request_digest="0" * 64,
                    evidence_type_id=MELDE,
                    jurisdiction="130715001",
                    authority_id="melderegister-130715001",
                    subject_pseudonym="p",
                    preview=preview,
                    state=state,
                    reason=reason,
                    created_at=ended - timedelta(seconds=seconds),
                    updated_at=ended,
                )
            )
