"""The one protocol every authority adapter speaks, whatever its binding.

The broker hands an adapter an :class:`EvidenceQuery` and gets an :class:`AdapterOutcome`
back. In-process adapters implement :class:`EvidenceAdapter` directly; the HTTP push and pull
bindings carry the same two shapes as JSON (``to_json``/``from_json``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Protocol

# An authority's detail is kept with the exchange and shown to the requester: text without control
# characters (tab and line breaks aside) or lone surrogates, which databases refuse (NUL) or cannot encode.
_NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class Subject:
    """Who the evidence is about. Either ``idnr`` or the name + birth date triple identifies them."""

    idnr: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    birth_date: date | None = None
    birth_place: str | None = None
    birth_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["birth_date"] = self.birth_date.isoformat() if self.birth_date else None
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Subject:
        birth_date = data.get("birth_date")
        return cls(
            idnr=data.get("idnr"),
            family_name=data.get("family_name"),
            given_name=data.get("given_name"),
            birth_date=date.fromisoformat(birth_date) if birth_date else None,
            birth_place=data.get("birth_place"),
            birth_name=data.get("birth_name"),
        )


@dataclass(frozen=True)
class EvidenceQuery:
    request_id: str  # the broker's exchange id
    evidence_type: str
    authority_id: str
    jurisdiction: str | None
    subject: Subject

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "evidence_type": self.evidence_type,
            "authority_id": self.authority_id,
            "jurisdiction": self.jurisdiction,
            "subject": self.subject.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvidenceQuery:
        return cls(
            request_id=str(data["request_id"]),
            evidence_type=str(data["evidence_type"]),
            authority_id=str(data["authority_id"]),
            jurisdiction=data.get("jurisdiction"),
            subject=Subject.from_json(dict(data["subject"])),
        )


class OutcomeKind(StrEnum):
    EVIDENCE = "evidence"
    NOT_FOUND = "not_found"  # no register entry matches the subject
    AMBIGUOUS = "ambiguous"  # several entries match: the requester must give more attributes
    FAILED = "failed"  # the authority could not answer


@dataclass(frozen=True)
class AdapterOutcome:
    kind: OutcomeKind
    evidence: bytes | None = None
    detail: str = ""
    # For FAILED outcomes of the remote bindings: a stable reason code for the log (e.g.
    # ``authority.timeout``), and whether the authority ran out of time (504 rather than 502).
    reason: str | None = None
    timed_out: bool = False

    @classmethod
    def found(cls, evidence: bytes) -> AdapterOutcome:
        return cls(OutcomeKind.EVIDENCE, evidence)

    @classmethod
    def failure(cls, reason: str, detail: str, timed_out: bool = False) -> AdapterOutcome:
        return cls(OutcomeKind.FAILED, detail=detail, reason=reason, timed_out=timed_out)

    def to_json(self) -> dict[str, Any]:
        """The non-evidence outcomes as the wire carries them (evidence travels as XML itself)."""
        data: dict[str, Any] = {"kind": self.kind.value, "detail": self.detail}
        if self.evidence is not None:
            data["evidence"] = self.evidence.decode("utf-8")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AdapterOutcome:
        kind = OutcomeKind(str(data["kind"]))
        evidence = data.get("evidence")
        detail = data.get("detail") or ""
        if not isinstance(detail, str) or (evidence is not None and not isinstance(evidence, str)):
            raise ValueError("detail and evidence must be strings")
        if _NOT_TEXT.search(detail):
            raise ValueError("detail must not contain control characters")
        if (kind is OutcomeKind.EVIDENCE) != (evidence is not None):
            raise ValueError("evidence is present exactly when kind is 'evidence'")
        return cls(kind, evidence.encode("utf-8") if evidence is not None else None, detail[:500])


class EvidenceAdapter(Protocol):
    def fetch(self, query: EvidenceQuery) -> AdapterOutcome: ...
