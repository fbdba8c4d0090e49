"""Recording exchange steps in the provenance log.

An entry is queued in the same transaction as the step it records, so a committed step always
has its entry; the integrator later gives queued entries their dense log indices.

Entry layout (canonical JSON per RFC 8785, all keys always present, absent values null):
``v`` (layout version, 2), ``event``, ``time`` (RFC 3339 UTC, microseconds), ``exchange``,
``requester``, ``authority``, ``evidence_type``, ``purpose``, ``legal_basis``, ``consent``,
``outcome``, ``reason``, ``request_digest``, ``evidence_digest`` (hex SHA-256), ``subject``
(the keyed pseudonym), ``actor`` (who made an administrative change: an admin client's name,
or "cli"; who requested, decided or revoked a consent: the requester's name or "citizen"),
``change`` (what a ``registry_changed`` entry changed: ``registry``, ``authorities/ID``,
``routes/EVIDENCE_TYPE/ARS_PREFIX``; ``authorities/ID/routes`` for a ``routes_activated`` or
``routes_deactivated`` entry) and ``registry_before`` /
``registry_after`` (hex SHA-256 of the whole registry's canonical JSON, its ETag, before and
after); version 2 added the last four. No raw personal data ever enters an entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import rfc8785
from sqlalchemy.orm import Session

from broker.audit import repository
from broker.audit.merkle import leaf_hash
from broker.audit.repository import EntryRow, QueuedEntry

ENTRY_VERSION = 2
EVENTS = (
    "received",
    "refused",
    "routed",
    "delivered",
    "failed",
    "expired",
    "preview_requested",
    "preview_decided",
    # a citizen who is not the subject, or below the evidence type's level, tried to see a preview
    "preview_refused",
    # consents: ``requester`` names the client that asked, ``actor`` who acted ("citizen" for
    # the citizen's decisions and revocations, else the requester's name)
    "consent_requested",
    "consent_granted",
    "consent_declined",
    "consent_revoked",
    # client lifecycle: ``requester`` names the client
    "client_added",
    "client_disabled",
    "client_enabled",
    "client_token_rotated",
    "client_removed",
    # registry changes: ``actor``, ``change``, ``registry_before`` and ``registry_after``
    "registry_changed",
    # rollout (`broker rollout onboard` once the conformance kit passed, `broker rollout
    # deactivate`): an authority's routes made active or pending again; ``authority``, and the
    # fields of a registry change
    "routes_activated",
    "routes_deactivated",
    # `broker keys adopt`: the operator made the keys directory's keys the log's keys; ``actor``,
    # ``change`` ("keys/" and the active checkpoint key's id). From here on new checkpoints are
    # signed by that key and (if the secret changed) citizens have new pseudonyms.
    "keys_adopted",
    # `broker keys rotate`: new checkpoint and sealing keys sign from now on; ``actor``, ``change``
    # ("keys/" and the new checkpoint key's id, "," and the new sealing key's id). The retired
    # keys stay in the JWKS: what they signed stays verifiable.
    "keys_rotated",
    # `broker backup restore`: the log was restored from a backup; ``actor``, ``change`` ("backup/"
    # and the backup's moment, RFC 3339). What was recorded after that moment is not in this log,
    # and the indices it held are used again from here: a checkpoint signed for them before the
    # restore (one an auditor saved) no longer matches, and the verifier says so. This entry
    # records where and why.
    "restored",
)


@dataclass(frozen=True)
class EntryFacts:
    event: str
    time: datetime
    exchange: str | None = None
    requester: str | None = None
    authority: str | None = None
    evidence_type: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    consent: str | None = None
    outcome: str | None = None
    reason: str | None = None
    request_digest: str | None = None
    evidence_digest: str | None = None
    subject: str | None = None
    actor: str | None = None
    change: str | None = None
    registry_before: str | None = None
    registry_after: str | None = None

    def canonical(self) -> bytes:
        if self.event not in EVENTS:
            raise ValueError(f"unknown log event {self.event!r}")
        return rfc8785.dumps(
            {
                "v": ENTRY_VERSION,
                "event": self.event,
                "time": self.time.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "exchange": self.exchange,
                "requester": self.requester,
                "authority": self.authority,
                "evidence_type": self.evidence_type,
                "purpose": self.purpose,
                "legal_basis": self.legal_basis,
                "consent": self.consent,
                "outcome": self.outcome,
                "reason": self.reason,
                "request_digest": self.request_digest,
                "evidence_digest": self.evidence_digest,
                "subject": self.subject,
                "actor": self.actor,
                "change": self.change,
                "registry_before": self.registry_before,
                "registry_after": self.registry_after,
            }
        )


def record(session: Session, facts: EntryFacts) -> QueuedEntry:
    """Queue the entry of ``facts`` in the session's transaction; it is in the log once that commits."""
    body = facts.canonical()
    return repository.queue(
        session,
        EntryRow(
            body=body,
            leaf_hash=leaf_hash(body),
            recorded_at=facts.time,
            event=facts.event,
            exchange_id=facts.exchange,
            requester=facts.requester,
            authority=facts.authority,
            evidence_type=facts.evidence_type,
            subject_pseudonym=facts.subject,
        ),
    )
