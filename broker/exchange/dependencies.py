"""What an exchange needs from the rest of the broker, as typed interfaces built once at start-up.

Each collaborator has its real implementation and a fake beside it (or is pure and cheap enough
to use as it is in tests):

============================  ==========================================  ===========================================
interface                     real                                        fake / test use
============================  ==========================================  ===========================================
:class:`RegistrySource`       ``broker.registry.service.RegistryCache``    ``broker.registry.service.FixedRegistry``
:class:`AdapterDirectory`     ``broker.exchange.dispatch.Adapters``        ``broker.exchange.dispatch.InMemoryAdapters``
:class:`EvidenceCheck`        ``broker.xml.evidence.EvidenceSchemas``      the real one over the project's ``xsd/``
:class:`Sealer`               ``broker.seal.sealer.ProcessSealer``         ``broker.seal.sealer.FakeSealer``
:class:`Pseudonyms`           ``broker.keys.pseudonym.Pseudonymiser``      the real one with a fixed secret
:class:`~broker.clock.Clock`  ``broker.clock.SystemClock``                 ``broker.clock.FixedClock``
:class:`PreviewOpener`        ``broker.preview.service.Previews``          the real one with a fixed key
============================  ==========================================  ===========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from lxml import etree
from sqlalchemy.orm import Session

from adapters.protocol import EvidenceAdapter, Subject
from broker.clock import Clock
from broker.db.models import Exchange
from broker.registry.schemas import AuthoritySpec
from broker.registry.service import RegistrySnapshot


class RegistrySource(Protocol):
    def get(self) -> RegistrySnapshot: ...


class AdapterDirectory(Protocol):
    def for_authority(self, authority: AuthoritySpec, session: Session) -> EvidenceAdapter:
        """The adapter that asks ``authority`` synchronously (in-process and push bindings)."""
        ...


class EvidenceCheck(Protocol):
    def check(self, evidence: bytes, namespace: str, root_element: str) -> etree._Element:
        """The evidence's root element; raises ``XmlIntakeError`` unless it is safe XML, of that
        root, valid by its schema (the subject check reads the checked document)."""
        ...


class Sealer(Protocol):
    def seal(self, evidence: bytes | etree._Element) -> bytes:
        """The sealed document, from its bytes or from the root the check parsed (sealing works on
        a copy and leaves that tree as it is, so the document is not parsed a second time)."""
        ...

    def readiness(self) -> str:
        """``ok`` when it can seal now, else what stands in the way (``/readyz``'s ``seal`` check)."""
        ...


class Pseudonyms(Protocol):
    def of(self, subject: Subject) -> str: ...

    def request_digest(self, canonical_request: bytes) -> str: ...


class PreviewOpener(Protocol):
    def open(self, session: Session, exchange: Exchange) -> datetime:
        """Open the citizen's preview of held evidence; returns when the hold ends."""
        ...


@dataclass(frozen=True)
class ExchangeDependencies:
    registry: RegistrySource
    adapters: AdapterDirectory
    evidence: EvidenceCheck
    sealer: Sealer
    pseudonyms: Pseudonyms
    clock: Clock
    # How long delivered evidence stays retrievable.
    retention: timedelta
    # None: this broker cannot hold evidence for a preview (such requests are refused).
    previews: PreviewOpener | None = None
