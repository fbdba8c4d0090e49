"""The exchange as the JSON API shows it: answers, GETs and callbacks give the same document."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy.orm import Session

from broker.audit.proofs import receipt as delivery_receipt
from broker.clock import as_utc
from broker.db.models import Exchange
from broker.exchange.lifecycle import State, problem_of
from broker.exchange.schemas import EvidenceLink, ExchangeOut, ProblemOut, ReceiptOut

PATH = "/v1/evidence-requests"


def href(exchange_id: str) -> str:
    return f"{PATH}/{exchange_id}"


def exchange_out(exchange: Exchange, receipt: ReceiptOut | None = None, preview: str | None = None) -> ExchangeOut:
    link = href(exchange.id)
    problem = problem_of(exchange)
    return ExchangeOut(
        id=exchange.id,
        state=exchange.state,
        evidence_type=exchange.evidence_type_id,
        jurisdiction=exchange.jurisdiction,
        authority=exchange.authority_id,
        purpose=exchange.purpose,
        legal_basis=exchange.legal_basis,
        consent_id=exchange.consent_id,
        created_at=as_utc(exchange.created_at),
        updated_at=as_utc(exchange.updated_at),
        evidence=EvidenceLink(href=f"{link}/evidence", digest=f"sha256:{exchange.evidence_digest}")
        if exchange.state == State.DELIVERED
        else None,
        problem=ProblemOut(status=problem.status, reason=problem.reason, detail=problem.detail) if problem else None,
        receipt=receipt,
        # While the citizen's approval is pending, the requester sends them to the preview link.
        links={"self": link, **({"preview": preview} if preview else {})},
    )


def receipt_out(session: Session, exchange: Exchange) -> ReceiptOut | None:
    """The delivery's receipt: its leaf hash at once, its log index and proof once integrated."""
    found = delivery_receipt(session, exchange.delivery_log_seq)
    return ReceiptOut(**asdict(found)) if found is not None else None
