"""What the citizen's pages show and check: the cockpit, the citizen's copy of their log
entries with proofs, and the rule of who may see evidence held for a preview.

The cockpit finds a citizen's exchanges through their subject pseudonyms (never by storing an
identity), shows each with the log entry that records where it ended, and gives the browser
what it needs to check that entry's inclusion in the signed log itself. Exchanges on a legal
basis whose law exempts them from disclosure for a time appear only once that time is over;
their log entries exist at once either way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from broker.audit import proofs
from broker.audit import repository as log
from broker.citizen.identity import Citizen, refusal
from broker.clients import repository as clients
from broker.clock import as_utc
from broker.db.models import Consent, Exchange
from broker.exchange import lifecycle
from broker.exchange import repository as exchanges
from broker.exchange.lifecycle import State
from broker.keys.jwk import public_jwk
from broker.keys.store import CheckpointPublicKey
from broker.registry.schemas import ASSURANCE_LEVELS, AssuranceLevel
from broker.registry.service import RegistrySnapshot

# More than any one person's exchanges for years; the page and the download stay bounded.
MAX_EXCHANGES = 500
MAX_ENTRIES = 5000


@dataclass(frozen=True)
class ExchangeRow:
    """One exchange about the citizen, in the registry's words (no names of people)."""

    exchange_id: str
    at: datetime
    requester: str
    evidence_type: str
    purpose: str
    basis: str
    state: str
    reason: str | None
    # The log entry that records the exchange's latest step, once integrated (None before).
    log_index: int | None
    preview_path: str | None = None


@dataclass(frozen=True)
class Cockpit:
    exchanges: list[ExchangeRow]
    consents: Sequence[Consent]
    # The data the browser's proof check reads (see broker/citizen/static/proof.js).
    proofs: dict[str, Any] = field(default_factory=dict)

    @property
    def pending_previews(self) -> list[ExchangeRow]:
        return [row for row in self.exchanges if row.preview_path is not None]


def _disclosed(exchange: Exchange, registry: RegistrySnapshot, now: datetime) -> bool:
    """Whether the law lets the cockpit show this exchange now (the legal basis's delay)."""
    basis = registry.legal_basis(exchange.legal_basis) if exchange.legal_basis else None
    delay = basis.disclosure_delay_days if basis is not None else None
    return delay is None or now >= as_utc(exchange.created_at) + timedelta(days=delay)


def _basis_text(exchange: Exchange, registry: RegistrySnapshot) -> str:
    if exchange.consent_id is not None:
        return "Ihre Einwilligung"
    basis = registry.legal_basis(exchange.legal_basis) if exchange.legal_basis else None
    return basis.citation if basis is not None else "–"


def _row(
    session: Session,
    exchange: Exchange,
    registry: RegistrySnapshot,
    names: dict[int, str],
    log_index: int | None,
    preview_path: str | None,
) -> ExchangeRow:
    if exchange.requester_id not in names:
        names[exchange.requester_id] = clients.name_of(session, exchange.requester_id)
    evidence_type = registry.evidence_types.get(exchange.evidence_type_id or "")
    purpose = registry.purpose(exchange.purpose) if exchange.purpose else None
    return ExchangeRow(
        exchange_id=exchange.id,
        at=as_utc(exchange.created_at),
        requester=names[exchange.requester_id],
        evidence_type=evidence_type.title if evidence_type else (exchange.evidence_type_id or "–"),
        purpose=purpose.name if purpose else "–",
        basis=_basis_text(exchange, registry),
        state=exchange.state,
        reason=exchange.reason,
        log_index=log_index,
        preview_path=preview_path,
    )


def _checkpoint_keys(keys: Sequence[CheckpointPublicKey]) -> list[dict[str, Any]]:
    return [{**public_jwk(key.public_key), "kid": key.kid, "name": key.name} for key in keys]


def _proof_data(
    session: Session, entries: Sequence[tuple[int, bytes]], keys: Sequence[CheckpointPublicKey]
) -> dict[str, Any]:
    """The latest signed checkpoint, the checkpoint keys, and for each (log index, entry) the
    entry's exact bytes with its inclusion proof against that checkpoint."""
    checkpoint = log.latest_checkpoint(session)
    if checkpoint is None:
        return {"checkpoint": None, "keys": _checkpoint_keys(keys), "entries": []}
    proven = []
    for index, body in entries:
        if index >= checkpoint.tree_size:
            continue
        proof = proofs.inclusion_proof(session, index, checkpoint.tree_size)
        proven.append(
            {
                "mark": f"proof-{index}",
                "index": index,
                "tree_size": checkpoint.tree_size,
                "entry": base64.b64encode(body).decode("ascii"),
                "hashes": [proofs.b64(h) for h in proof.hashes],
            }
        )
    return {"checkpoint": checkpoint.note, "keys": _checkpoint_keys(keys), "entries": proven}


@dataclass(frozen=True)
class _Found:
    exchanges: list[Exchange]
    # (log index, exchange id, body) of the disclosed entries, newest first.
    entries: list[tuple[int, str | None, bytes]]


def _find(session: Session, citizen: Citizen, registry: RegistrySnapshot, now: datetime) -> _Found:
    shown: list[Exchange] = []
    withheld_ids: set[str] = set()
    for exchange in exchanges.of_subjects(session, citizen.pseudonyms, MAX_EXCHANGES):
        if _disclosed(exchange, registry, now):
            shown.append(exchange)
        else:
            withheld_ids.add(exchange.id)
    latest = log.latest_checkpoint(session)
    upto = latest.tree_size if latest is not None else 0
    entries = [
        entry
        for entry in log.subjects_entries(session, citizen.pseudonyms, upto=upto, limit=MAX_ENTRIES)
        if entry[1] not in withheld_ids
    ]
    return _Found(shown, entries)


def cockpit(
    session: Session,
    citizen: Citizen,
    registry: RegistrySnapshot,
    now: datetime,
    *,
    consents: Sequence[Consent],
    keys: Sequence[CheckpointPublicKey],
    preview_path: Any,
) -> Cockpit:
    """Everything the cockpit page shows; ``preview_path(exchange_id)`` makes a preview's path."""
    found = _find(session, citizen, registry, now)
    newest_entry: dict[str, tuple[int, bytes]] = {}
    for index, exchange_id, body in found.entries:  # newest first: the first seen is the latest
        if exchange_id is not None and exchange_id not in newest_entry:
            newest_entry[exchange_id] = (index, body)
    names: dict[int, str] = {}
    rows = []
    for exchange in found.exchanges:
        entry = newest_entry.get(exchange.id)
        waiting = exchange.state == State.AWAITING_PREVIEW and exchange.evidence is not None
        rows.append(
            _row(
                session,
                exchange,
                registry,
                names,
                entry[0] if entry else None,
                preview_path(exchange.id) if waiting else None,
            )
        )
    proven = sorted(newest_entry.values(), reverse=True)
    return Cockpit(rows, consents, _proof_data(session, proven, keys))


def export(
    session: Session,
    citizen: Citizen,
    registry: RegistrySnapshot,
    now: datetime,
    *,
    keys: Sequence[CheckpointPublicKey],
) -> dict[str, Any]:
    """The citizen's copy of the log entries about them, with proofs (Art. 15 GDPR): every
    disclosed entry, its exact bytes and its parsed content, the signed checkpoint and its keys,
    so that anyone can check them without the broker."""
    found = _find(session, citizen, registry, now)
    data = _proof_data(session, [(index, body) for index, _, body in found.entries], keys)
    for item in data["entries"]:
        item.pop("mark")
        item["content"] = json.loads(base64.b64decode(item["entry"]))
    return {
        "format": "once-only-broker/citizen-log-copy/v1",
        "generated_at": now.isoformat(),
        "subject_pseudonyms": sorted(citizen.pseudonyms),
        "leaf_hash": "SHA-256(0x00 || entry bytes) (RFC 9162); the checkpoint is a C2SP signed note",
        **data,
    }


def required_level(registry: RegistrySnapshot, evidence_types: Sequence[str]) -> AssuranceLevel:
    """The level of assurance a decision about these evidence types needs: the highest of theirs
    (a type the registry no longer knows needs the highest)."""
    levels = [
        registry.evidence_types[t].assurance_level if t in registry.evidence_types else "high" for t in evidence_types
    ]
    return max(levels, key=ASSURANCE_LEVELS.index, default="high")


def access_refusal(
    session: Session,
    citizen: Citizen,
    exchange: Exchange,
    registry: RegistrySnapshot,
    now: datetime,
    max_age: timedelta,
) -> str | None:
    """Why ``citizen`` may not see or decide about this exchange's evidence (a reason code), or
    None: they must be its subject, at or above its evidence type's level of assurance, and
    authenticated recently enough. A refusal other than "sign in again" is recorded in the log,
    with no more than its reason (a stranger's pseudonym is nobody's business in this exchange's
    log); the caller commits it."""
    required = required_level(registry, [exchange.evidence_type_id or ""])
    reason = refusal(citizen, exchange.subject_pseudonym, required, now, max_age)
    if reason is not None and reason != "citizen.reauthenticate":
        lifecycle.step(
            session,
            exchange,
            "preview_refused",
            at=now,
            requester=clients.name_of(session, exchange.requester_id),
            reason=reason,
        )
    return reason
