"""Routing and the in-memory registry snapshot the hot path reads.

Each broker process keeps an immutable snapshot, read once at start-up and then re-read by a
background job every few seconds (``broker.bootstrap``), or at once after a change made through
this process: a change made through any process reaches every process within that time. The
request path only ever reads memory, so it never opens a second database session inside its
own transaction (on SQLite, where every transaction takes the write lock, that would wait for
itself).
"""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from broker.problems import Problem
from broker.registry.schemas import AuthoritySpec, EvidenceTypeSpec, RegistryDocument


@dataclass(frozen=True)
class RegistrySnapshot:
    evidence_types: dict[str, EvidenceTypeSpec]
    authorities: dict[str, AuthoritySpec]
    # evidence type → ARS prefix → authority id
    routes: dict[str, dict[str, str]]

    @classmethod
    def from_document(cls, document: RegistryDocument) -> RegistrySnapshot:
        routes: dict[str, dict[str, str]] = {t.id: {} for t in document.evidence_types}
        for route in document.routes:
            routes.setdefault(route.evidence_type, {})[route.ars_prefix] = route.authority
        return cls(
            evidence_types={t.id: t for t in document.evidence_types},
            authorities={a.id: a for a in document.authorities},
            routes=routes,
        )

    def evidence_type(self, evidence_type_id: str) -> EvidenceTypeSpec:
        spec = self.evidence_types.get(evidence_type_id)
        if spec is None:
            raise Problem(
                422,
                "evidence_type.unknown",
                f"Unknown evidence type {evidence_type_id!r}.",
                evidence_type=evidence_type_id,
            )
        return spec

    def evidence_type_for_oots(self, classification: str) -> EvidenceTypeSpec | None:
        for spec in self.evidence_types.values():
            if classification in spec.oots_classifications:
                return spec
        return None

    def route(self, evidence_type_id: str, jurisdiction: str | None) -> AuthoritySpec:
        """The authority for the most specific (longest) route prefix of the jurisdiction."""
        self.evidence_type(evidence_type_id)
        prefixes = self.routes.get(evidence_type_id, {})
        if jurisdiction is None:
            serving = set(prefixes.values())
            if len(serving) == 1:
                return self.authorities[serving.pop()]
            if not serving:
                raise _no_route(evidence_type_id, None)
            raise Problem(
                422,
                "jurisdiction.required",
                f"{len(serving)} authorities hold {evidence_type_id}; give the jurisdiction (an ARS prefix).",
                evidence_type=evidence_type_id,
            )
        for length in range(len(jurisdiction), -1, -1):
            authority_id = prefixes.get(jurisdiction[:length])
            if authority_id is not None:
                return self.authorities[authority_id]
        finer = sorted(p for p in prefixes if p.startswith(jurisdiction))
        if finer:
            raise Problem(
                422,
                "jurisdiction.too_coarse",
                f"Jurisdiction {jurisdiction!r} is served by {len(finer)} authorities for {evidence_type_id}; "
                f"give a finer ARS prefix of at least {min(len(p) for p in finer)} digits.",
                evidence_type=evidence_type_id,
                jurisdiction=jurisdiction,
                candidate_prefixes=finer[:20],
            )
        raise _no_route(evidence_type_id, jurisdiction)


def _no_route(evidence_type_id: str, jurisdiction: str | None) -> Problem:
    where = f"jurisdiction {jurisdiction!r}" if jurisdiction is not None else "any jurisdiction"
    return Problem(
        404,
        "route.not_found",
        f"No authority holds {evidence_type_id} for {where}.",
        evidence_type=evidence_type_id,
        jurisdiction=jurisdiction,
    )


class RegistryCache:
    def __init__(self, load: Callable[[], RegistryDocument]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._state = self._read()

    def get(self) -> RegistrySnapshot:
        return self._state[1]

    def get_document(self) -> RegistryDocument:
        return self._state[0]

    def refresh(self) -> None:
        """Read the registry again (the background job, and after a change through this process)."""
        with self._lock:
            self._state = self._read()

    def _read(self) -> tuple[RegistryDocument, RegistrySnapshot]:
        document = self._load()
        return document, RegistrySnapshot.from_document(document)


class FixedRegistry:
    """A registry that never changes: for in-process tests."""

    def __init__(self, document: RegistryDocument) -> None:
        self._snapshot = RegistrySnapshot.from_document(document)

    def get(self) -> RegistrySnapshot:
        return self._snapshot


def read_toml(path: Path) -> RegistryDocument:
    with path.open("rb") as handle:
        return RegistryDocument.model_validate(tomllib.load(handle))
