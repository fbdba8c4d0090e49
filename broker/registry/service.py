"""Routing and the in-memory registry snapshot the hot path reads.

Each broker process keeps an immutable snapshot, read once at start-up and then re-read by a
background job every few seconds (``broker.bootstrap``), or at once after a change made through
this process: a change made through any process reaches every process within that time. The
request path only ever reads memory, so it never opens a second database session inside its
own transaction (on SQLite, where every transaction takes the write lock, that would wait for
itself).

Changes (admin API, ``broker registry load``, ``broker adapters connect``, ``broker demo seed``)
go through the functions at the end: one writer at a time, replacing only with the ETag of what
is replaced (If-Match), and each change a ``registry_changed`` log entry naming who changed
what, with the digests of the whole registry before and after.

A whole replacement is never accidental: the document states every section (``[]`` for none),
one that leaves no evidence types, authorities or routes needs ``allow_empty``, and the document
it replaces is kept (``registry_history``), so ``rollback_registry`` can restore it.

Only active routes route: a pending route (``schemas.route_state``: a new route to a remote
authority, unless it states otherwise) is as if it were not there until ``set_route_states``
activates it (``broker rollout onboard``, once the authority passed the conformance kit).
"""

from __future__ import annotations

import hashlib
import threading
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import rfc8785
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from broker.audit.service import EntryFacts, record
from broker.egress import STRICT, EgressPolicy, EgressRefused
from broker.problems import Problem
from broker.registry import repository
from broker.registry.schemas import (
    AuthoritySpec,
    EvidenceTypeSpec,
    LegalBasisSpec,
    PurposeSpec,
    RegistryDocument,
    RouteSpec,
    RouteState,
    route_state,
    with_route_states,
)


@dataclass(frozen=True)
class RegistrySnapshot:
    evidence_types: dict[str, EvidenceTypeSpec]
    authorities: dict[str, AuthoritySpec]
    # evidence type → ARS prefix → authority id, of the active routes: the ones that route
    routes: dict[str, dict[str, str]]
    # Vocabularies, each under its id and under its exact name (purposes) or citation (legal bases).
    purposes: dict[str, PurposeSpec]
    legal_bases: dict[str, LegalBasisSpec]
    # evidence type → ARS prefix → authority id, of the pending routes (they route nothing)
    pending: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_document(cls, document: RegistryDocument) -> RegistrySnapshot:
        routes: dict[str, dict[str, str]] = {t.id: {} for t in document.evidence_types}
        pending: dict[str, dict[str, str]] = {}
        # A document that never was stored (a fixed registry) gets the states a write would give.
        for route in with_route_states(document, {}).routes:
            into = routes if route.state == "active" else pending
            into.setdefault(route.evidence_type, {})[route.ars_prefix] = route.authority
        return cls(
            evidence_types={t.id: t for t in document.evidence_types},
            authorities={a.id: a for a in document.authorities},
            routes=routes,
            purposes={key: p for p in document.purposes for key in (p.name, p.id)},
            legal_bases={key: b for b in document.legal_bases for key in (b.citation, b.id)},
            pending=pending,
        )

    def activating(self, authority_id: str) -> RegistrySnapshot:
        """The registry as it will be once the authority's pending routes are active (what the
        conformance kit routes by before an onboarding)."""
        routes = {t: dict(prefixes) for t, prefixes in self.routes.items()}
        pending: dict[str, dict[str, str]] = {}
        for evidence_type, prefixes in self.pending.items():
            for prefix, authority in prefixes.items():
                into = routes if authority == authority_id else pending
                into.setdefault(evidence_type, {})[prefix] = authority
        return replace(self, routes=routes, pending=pending)

    def purpose(self, reference: str) -> PurposeSpec | None:
        """The purpose a request or grant names, by id or by its exact name; None if unregistered."""
        return self.purposes.get(reference)

    def legal_basis(self, reference: str) -> LegalBasisSpec | None:
        """The legal basis a request names, by id or by its exact citation; None if unregistered."""
        return self.legal_bases.get(reference)

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
        self._snapshot = RegistrySnapshot.from_document(load())

    def get(self) -> RegistrySnapshot:
        return self._snapshot

    def refresh(self) -> None:
        """Read the registry again (the background job, and after a change through this process)."""
        with self._lock:
            self._snapshot = RegistrySnapshot.from_document(self._load())


class FixedRegistry:
    """A registry that never changes: for in-process tests."""

    def __init__(self, document: RegistryDocument) -> None:
        self._snapshot = RegistrySnapshot.from_document(document)

    def get(self) -> RegistrySnapshot:
        return self._snapshot


def read_toml(path: Path) -> RegistryDocument:
    with path.open("rb") as handle:
        return RegistryDocument.model_validate(tomllib.load(handle))


# --- changes ------------------------------------------------------------------------------------


def digest(entry: BaseModel) -> str:
    """SHA-256 (hex) of a registry document's or entry's canonical JSON (RFC 8785): its ETag, and
    what the log records of the registry before and after a change."""
    return hashlib.sha256(rfc8785.dumps(entry.model_dump(mode="json"))).hexdigest()


def etag_matches(if_match: str, etag: str) -> bool:
    """RFC 9110 If-Match against an existing entry: ``*``, or one of the listed strong ETags."""
    tags = [tag.strip() for tag in if_match.split(",")]
    return "*" in tags or f'"{etag}"' in tags


def check_endpoints(authorities: Sequence[AuthoritySpec], egress: EgressPolicy, field: str) -> None:
    """Refuse an authority endpoint the egress policy refuses (422 naming the field); ``field``
    is the path of the authorities in the body with ``{}`` for the index, or one authority's."""
    for index, authority in enumerate(authorities):
        if authority.endpoint_url is None:
            continue
        try:
            egress.check_url(authority.endpoint_url)
        except EgressRefused as refusal:
            raise Problem(
                422,
                "endpoint_url.not_allowed",
                f"Authority {authority.id}: {refusal.detail}",
                errors=[{"field": field.format(index), "message": refusal.detail, "reason": refusal.reason}],
            ) from None


# Every section a whole document must state: a key left out would otherwise read as "none".
SECTIONS: tuple[str, ...] = tuple(RegistryDocument.model_fields)
# Without these the broker routes nothing: leaving one empty needs ``allow_empty``.
ROUTING_SECTIONS = ("evidence_types", "authorities", "routes")


def check_sections(document: RegistryDocument) -> None:
    """Refuse a document that leaves out a section (422 naming them): ``{}`` must not read as
    "empty the registry". Only keys given to validation count (``model_fields_set``)."""
    missing = [section for section in SECTIONS if section not in document.model_fields_set]
    if missing:
        raise Problem(
            422,
            "registry.sections_missing",
            f"A registry document states every section; missing: {', '.join(missing)} (give [] for none).",
            errors=[{"field": section, "message": "missing: state the section, [] for none"} for section in missing],
        )


def check_not_empty(document: RegistryDocument, *, allow_empty: bool) -> None:
    """Refuse a document that leaves nothing to route by, unless that is asked for explicitly."""
    empty = [section for section in ROUTING_SECTIONS if not getattr(document, section)]
    if empty and not allow_empty:
        raise Problem(
            422,
            "registry.empty_refused",
            f"The document has no {', no '.join(empty)}: the broker could route no request. "
            "To mean that, replace with allow_empty (?allow_empty=true, or --allow-empty on the command line).",
            empty_sections=empty,
        )


def replace_registry(
    session: Session,
    document: RegistryDocument,
    *,
    actor: str,
    now: datetime,
    if_match: str | None,
    egress: EgressPolicy = STRICT,
    allow_empty: bool = False,
) -> str:
    """Replace the whole registry; returns its new digest (ETag). ``if_match`` ``*`` replaces
    whatever is there (the command line). The replaced document is kept for a rollback."""
    check_sections(document)
    check_endpoints(document.authorities, egress, "authorities.{}.endpoint_url")
    check_not_empty(document, allow_empty=allow_empty)
    before = _locked_document(session)
    _precondition("The registry", digest(before), if_match)
    repository.replace_document(session, document)
    return _record_replacement(session, "registry", before, actor=actor, now=now)


@dataclass(frozen=True)
class Rollback:
    """What a rollback restored: the ETags before and after, and when and by whom the restored
    document had been replaced."""

    etag_before: str
    etag_after: str
    replaced_at: datetime
    replaced_by: str
    document: RegistryDocument


def rollback_registry(
    session: Session,
    *,
    actor: str,
    now: datetime,
    if_match: str | None,
    egress: EgressPolicy = STRICT,
    allow_empty: bool = False,
) -> Rollback:
    """Restore the newest kept document that differs from the current one: undo the last whole
    replacement. The rollback is a replacement too (it keeps the document it replaces, and is
    logged), so a second rollback undoes the first."""
    before = _locked_document(session)
    etag_before = digest(before)
    _precondition("The registry", etag_before, if_match)
    kept = repository.newest_kept_other_than(session, etag_before)
    if kept is None:
        raise Problem(409, "registry.nothing_to_restore", "No earlier registry document is kept.")
    try:
        # Validated like any write: a rule added since it was kept applies to it as well.
        document = RegistryDocument.model_validate(kept.document)
    except ValidationError as invalid:
        raise Problem(
            422,
            "registry.kept_document_invalid",
            f"The document replaced at {kept.replaced_at.isoformat()} no longer validates "
            f"({invalid.error_count()} errors); replace the registry instead.",
        ) from None
    check_endpoints(document.authorities, egress, "authorities.{}.endpoint_url")
    check_not_empty(document, allow_empty=allow_empty)
    repository.replace_document(session, document)
    etag_after = _record_replacement(session, "registry/rollback", before, actor=actor, now=now)
    return Rollback(etag_before, etag_after, kept.replaced_at, kept.actor, document)


def put_authority(
    session: Session,
    spec: AuthoritySpec,
    *,
    actor: str,
    now: datetime,
    if_match: str | None,
    egress: EgressPolicy = STRICT,
) -> str:
    """Add an authority, or replace it (then ``if_match`` must hold its ETag); returns its new ETag."""
    check_endpoints([spec], egress, "endpoint_url")
    before = _locked_document(session)
    current = next((a for a in before.authorities if a.id == spec.id), None)
    _precondition(f"Authority {spec.id}", digest(current) if current is not None else None, if_match)
    repository.upsert_authority(session, spec)
    _record_change(session, f"authorities/{spec.id}", before, actor=actor, now=now)
    return digest(spec)


def put_route(session: Session, spec: RouteSpec, *, actor: str, now: datetime, if_match: str | None) -> RouteSpec:
    """Add a route, or replace the one of its type and prefix (then ``if_match`` must hold its
    ETag); returns the route as stored (its state decided where it states none: ``route_state``)."""
    before = _locked_document(session)
    if not any(t.id == spec.evidence_type for t in before.evidence_types):
        raise Problem(422, "evidence_type.unknown", f"Unknown evidence type {spec.evidence_type!r}.")
    authority = next((a for a in before.authorities if a.id == spec.authority), None)
    if authority is None:
        raise Problem(422, "authority.unknown", f"Unknown authority {spec.authority!r}.")
    current = _route(before, spec.evidence_type, spec.ars_prefix)
    what = f"The route of {spec.evidence_type} at {spec.ars_prefix!r}"
    _precondition(what, digest(current) if current is not None else None, if_match)
    stored = (current.authority, current.state or "active") if current is not None else None
    spec = spec.model_copy(update={"state": route_state(spec, authority.binding, stored)})
    repository.add_route(session, spec)
    _record_change(session, f"routes/{spec.evidence_type}/{spec.ars_prefix}", before, actor=actor, now=now)
    return spec


def delete_route(session: Session, evidence_type: str, ars_prefix: str, *, actor: str, now: datetime) -> None:
    before = _locked_document(session)
    if not repository.delete_route(session, evidence_type, ars_prefix):
        raise Problem(404, "route.not_found", f"No route for {evidence_type} at {ars_prefix!r}.")
    _record_change(session, f"routes/{evidence_type}/{ars_prefix}", before, actor=actor, now=now)


# The log event of putting an authority's routes in a state.
ROUTE_STATE_EVENTS: dict[RouteState, str] = {"active": "routes_activated", "pending": "routes_deactivated"}


def set_route_states(session: Session, authority_id: str, state: RouteState, *, actor: str, now: datetime) -> int:
    """Put every route of the authority in ``state``; returns how many changed. A change is a
    ``routes_activated`` or ``routes_deactivated`` log entry naming the authority, who, and the
    registry's digests before and after; no change, no entry."""
    before = _locked_document(session)
    authority_of(before, authority_id)
    changed = repository.set_route_states(session, authority_id, state)
    if changed:
        _record_change(
            session,
            f"authorities/{authority_id}/routes",
            before,
            actor=actor,
            now=now,
            event=ROUTE_STATE_EVENTS[state],
            authority=authority_id,
        )
    return changed


def route_of(document: RegistryDocument, evidence_type: str, ars_prefix: str) -> RouteSpec:
    """The route of a type at a prefix; raises its 404 problem if there is none."""
    found = _route(document, evidence_type, ars_prefix)
    if found is None:
        raise Problem(404, "route.not_found", f"No route for {evidence_type} at {ars_prefix!r}.")
    return found


def authority_of(document: RegistryDocument, authority_id: str) -> AuthoritySpec:
    """An authority of the document; raises its 404 problem if there is none."""
    found = next((a for a in document.authorities if a.id == authority_id), None)
    if found is None:
        raise Problem(404, "authority.not_found", f"No authority {authority_id!r}.")
    return found


def _route(document: RegistryDocument, evidence_type: str, ars_prefix: str) -> RouteSpec | None:
    return next((r for r in document.routes if (r.evidence_type, r.ars_prefix) == (evidence_type, ars_prefix)), None)


def _locked_document(session: Session) -> RegistryDocument:
    # One registry writer at a time, so that the ETag compared is the one replaced.
    repository.lock_registry(session)
    return repository.read_document(session)


def _precondition(what: str, current: str | None, if_match: str | None) -> None:
    """Replacing is explicit: it needs the ETag of what it replaces (RFC 9110 If-Match)."""
    if current is None:
        if if_match is not None:
            raise Problem(412, "registry.etag_mismatch", f"{what} does not exist, so If-Match cannot hold.")
        return
    if if_match is None:
        raise Problem(
            428,
            "registry.if_match_required",
            f"{what} exists: to replace it, send If-Match with the ETag its GET answered.",
        )
    if not etag_matches(if_match, current):
        raise Problem(412, "registry.etag_mismatch", f"{what} has changed since that ETag was read; GET it again.")


def _record_replacement(session: Session, change: str, before: RegistryDocument, *, actor: str, now: datetime) -> str:
    """Log a whole replacement and keep the document it replaced (none for a no-op); returns the
    digest after."""
    digest_before = digest(before)
    digest_after = _record_change(session, change, before, actor=actor, now=now)
    if digest_after != digest_before:
        repository.keep_document(session, before, etag=digest_before, actor=actor, replaced_at=now)
    return digest_after


def _record_change(
    session: Session,
    change: str,
    before: RegistryDocument,
    *,
    actor: str,
    now: datetime,
    event: str = "registry_changed",
    authority: str | None = None,
) -> str:
    """Log who changed what, with the digests of the registry before and after (none for a no-op);
    returns the digest after."""
    session.flush()
    digest_before, digest_after = digest(before), digest(repository.read_document(session))
    if digest_after != digest_before:
        record(
            session,
            EntryFacts(
                event=event,
                time=now,
                authority=authority,
                actor=actor,
                change=change,
                registry_before=digest_before,
                registry_after=digest_after,
            ),
        )
    return digest_after
