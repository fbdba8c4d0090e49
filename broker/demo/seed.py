"""Deterministic demo data: the MV registry, and the demo registers of its authorities.

Running it again gives exactly the same data (the registry is replaced, the register rows are
regenerated from a fixed random seed by adapters/registers/seed.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from adapters.registers import seed as registers
from broker.clients.service import CLI_ACTOR
from broker.registry.schemas import RegistryDocument
from broker.registry.service import read_toml, replace_registry

DEMO_REGISTRY = Path(__file__).with_name("registry-mv.toml")


@dataclass(frozen=True)
class SeedSummary:
    authorities: int
    residents: int
    births: int
    businesses: int


def seed(session: Session, registry: RegistryDocument | None = None) -> SeedSummary:
    document = registry or read_toml(DEMO_REGISTRY)
    # A registry change like any other: logged unless the registry is the demo's already.
    replace_registry(session, document, actor=CLI_ACTOR, now=datetime.now(UTC), if_match="*")
    return seed_registers(session, document)


def seed_registers(session: Session, document: RegistryDocument) -> SeedSummary:
    """The register tables alone (the reference authority server keeps them in its own database)."""
    authorities = [registers.RegisterAuthority(a.id, a.register_kind, a.ars, a.name) for a in document.authorities]
    counts = registers.seed_registers(session, authorities)
    return SeedSummary(len(document.authorities), counts.residents, counts.births, counts.businesses)
