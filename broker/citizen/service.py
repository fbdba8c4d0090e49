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
from starlette.requests import Request

from broker.audit import proofs
from broker.audit import repository as log
from broker.citizen import repository
from broker.citizen import session as cookie
from broker.citizen.identity import CLOCK_SKEW, Citizen, refusal
from broker.clients import repository as clients
from broker.clock import as_utc
from broker.db.models import Consent, Exchange
from broker.db.session import Database
from broker.exchange import lifecycle
from broker.exchange import repository as exchanges
from broker.exchange.lifecycle import State
from broker.keys.jwk import public_jwk
from broker.keys.store import CheckpointPublicKey
from broker.logging import get_logger
from broker.registry.schemas import ASSURANCE_LEVELS, AssuranceLevel
from broker.registry.service import RegistrySnapshot

log_app = get_logger(__name__)

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


def _withheld_since(registry: RegistrySnapshot, now: datetime) -> dict[str, datetime]:
    """Legal basis id → the moment after which its exchanges are still withheld from the subject."""
    return {
        basis.id: now - timedelta(days=basis.disclosure_delay_days)
        for basis in registry.legal_bases.values()
        if basis.disclosure_delay_days is not None
    }


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
    # (log index, exchange id, body) of the entries the citizen may see, newest first.
    entries: list[tuple[int, str | None, bytes]]


def _find(session: Session, citizen: Citizen, registry: RegistrySnapshot, now: datetime) -> _Found:
    """The citizen's exchanges and log entries, without what they may not see: exchanges the law
    still withholds, and a namesake's (:meth:`Citizen.is_subject`). What to hide is decided over
    all their exchanges, not only those the page lists."""
    namesake = (
        (citizen.name_pseudonym, citizen.idnr_pseudonym)
        if citizen.name_pseudonym is not None and citizen.idnr_pseudonym is not None
        else None
    )
    hidden = exchanges.hidden_from_subject(
        session, citizen.pseudonyms, withheld_since=_withheld_since(registry, now), namesake=namesake
    )
    shown = [e for e in exchanges.of_subjects(session, citizen.pseudonyms, MAX_EXCHANGES) if e.id not in hidden]
    latest = log.latest_checkpoint(session)
    upto = latest.tree_size if latest is not None else 0
    entries = [
        entry
        for entry in log.subjects_entries(session, citizen.pseudonyms, upto=upto, limit=MAX_ENTRIES)
        if entry[1] not in hidden
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


def current_citizen(request: Request, database: Database, now: datetime, lifetime: timedelta) -> Citizen | None:
    """The signed-in citizen of this request: the session cookie's, unless the session is older
    than ``lifetime`` (counted from the sign-in, however often the cookie was re-signed since),
    claims to start in the future, or was signed out (which ends every copy of the cookie)."""
    citizen = cookie.current(request)
    if citizen is None or citizen.signed_in_at is None:
        return None
    age = now - citizen.signed_in_at
    if age > lifetime or age < -CLOCK_SKEW:
        return None
    with database.read() as session:
        if repository.is_signed_out(session, citizen.session_id):
            return None
    return citizen


def sign_out(session: Session, citizen: Citizen, now: datetime, lifetime: timedelta) -> None:
    """End the citizen's session everywhere: its id stays signed out until it would have ended."""
    repository.purge_sign_outs(session, now)
    started = citizen.signed_in_at or now
    repository.record_sign_out(session, citizen.session_id, started + lifetime)


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
    None: they must be its subject (by the IDNr the evidence states, where their sign-in states
    one), at or above its evidence type's level of assurance, and authenticated recently enough.

    A refusal other than "sign in again" is recorded in the log, once per exchange and reason
    (however often it is tried, so that nobody can flood the subject's log), with no more than
    its reason: a stranger's pseudonym is nobody's business in this exchange's log. The
    application log notes every attempt. The caller commits.
    """
    required = required_level(registry, [exchange.evidence_type_id or ""])
    reason = refusal(citizen, exchange.subject_pseudonym, exchange.subject_idnr_pseudonym, required, now, max_age)
    if reason is None or reason == "citizen.reauthenticate":
        return reason
    log_app.info("preview_refused", exchange=exchange.id, reason=reason)
    if reason not in log.step_reasons(session, exchange.id, "preview_refused"):
        lifecycle.step(
            session,
            exchange,
            "preview_refused",
            at=now,
            requester=clients.name_of(session, exchange.requester_id),
            reason=reason,
        )
    return reason
