"""The reference authority: a synthetic register in its own SQLite, answering signed queries.

Shared by both modes of ``broker-authority``: ``serve`` (push: the broker calls it) and ``pull``
(it polls the broker). The register tables are the demo register tables (adapters/registers),
created in the authority's own database; the answers come from the reference adapters.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapters.protocol import AdapterOutcome, EvidenceQuery
from adapters.registers.models import RegisterBase
from adapters.registers.reference import reference_adapter
from broker.db.session import make_engine, make_session_factory
from broker.registry.schemas import AuthoritySpec

# Faults the authority can be told to commit (only when started with fault injection allowed):
# the conformance kit and the fault tests use them against a real process.
FAULTS = ("none", "slow", "server_error", "garbage", "schema_invalid", "unsigned", "wrong_signature", "hang")


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def register_engine(database_url: str) -> Engine:
    engine = make_engine(database_url)
    RegisterBase.metadata.create_all(engine)
    return engine


@dataclass
class FaultSwitch:
    fault: str = "none"
    delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def set(self, fault: str, delay_seconds: float) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        with self._lock:
            self.fault, self.delay_seconds = fault, delay_seconds


class ReferenceAuthority:
    def __init__(self, spec: AuthoritySpec, database_url: str, key: Ed25519PrivateKey) -> None:
        self.spec = spec
        self.key = key
        self.engine = register_engine(database_url)
        self._sessions: sessionmaker[Session] = make_session_factory(self.engine)
        self.faults = FaultSwitch()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    def answer(self, query: EvidenceQuery) -> AdapterOutcome:
        if query.authority_id != self.spec.id:
            return AdapterOutcome.failure("authority.wrong_authority", f"this is {self.spec.id}")
        with self._session() as session:
            adapter = reference_adapter(session, self.spec.id, self.spec.name, self.spec.ars, self.spec.register_kind)
            return adapter.fetch(query)


def parse_query(body: bytes) -> EvidenceQuery:
    """A query from the wire; ValueError if it is not one."""
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return EvidenceQuery.from_json(data)
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"not a query: {type(error).__name__}") from None
