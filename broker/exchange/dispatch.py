"""Which adapter asks an authority: by its binding, built once per process (and a fake for tests).

Pull authorities have no synchronous adapter: they are asked through their task queue
(``broker.tasks``).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from adapters.http_push import Breakers, HttpPushAdapter, PushTransport
from adapters.protocol import AdapterOutcome, EvidenceAdapter, EvidenceQuery
from adapters.registers.reference import reference_adapter
from broker.keys.store import KeyStore
from broker.registry.schemas import AuthoritySpec
from broker.xml.hardened import check_well_formed


class Adapters:
    def __init__(self, keys: KeyStore, transport: PushTransport, breakers: Breakers) -> None:
        self._keys = keys
        self._transport = transport
        self.breakers = breakers

    def for_authority(self, authority: AuthoritySpec, session: Session) -> EvidenceAdapter:
        if authority.binding == "in_process":
            return reference_adapter(session, authority.id, authority.name, authority.ars, authority.register_kind)
        if authority.binding == "http_push":
            return self.push(authority)
        raise ValueError(f"binding {authority.binding} has no synchronous adapter")

    def push(self, authority: AuthoritySpec) -> HttpPushAdapter:
        if authority.endpoint_url is None:  # the registry refuses http_push without one
            raise ValueError(f"authority {authority.id} has no endpoint")
        return HttpPushAdapter(
            authority.id,
            authority.endpoint_url,
            authority.timeout_seconds,
            authority.public_key_pem,
            self._keys.request_signing_key(),
            self._transport,
            self.breakers.for_authority(authority.id),
            check_xml=check_well_formed,
        )

    def close(self) -> None:
        self._transport.close()


class InMemoryAdapters:
    """Answers every authority from a script: ``answer(query)`` gives the outcome; calls are kept."""

    def __init__(self, answer: Callable[[EvidenceQuery], AdapterOutcome]) -> None:
        self._answer = answer
        self.queries: list[EvidenceQuery] = []

    def for_authority(self, authority: AuthoritySpec, session: Session) -> EvidenceAdapter:
        return self

    def fetch(self, query: EvidenceQuery) -> AdapterOutcome:
        self.queries.append(query)
        return self._answer(query)
