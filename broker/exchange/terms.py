"""What a request names — evidence type, purpose, legal basis — resolved against the registry.

The provenance log is append-only and auditors read it, so nothing a caller typed freely may
reach it: an exchange keeps registry ids only. A purpose is named by its id or its exact name, a
legal basis by its id or its exact citation, an evidence type by its id. A request naming
something the registry does not hold is refused (422, each such field named), and the exchange
keeps None in its place: the refusal's reason code says which field it was.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.problems import Problem
from broker.registry.schemas import EvidenceTypeSpec, LegalBasisSpec, PurposeSpec
from broker.registry.service import RegistrySnapshot

# field → (reason code, what the caller should have named)
_UNKNOWN = {
    "evidence_type": ("evidence_type.unknown", "not an evidence type of the registry (give its id)"),
    "purpose": ("purpose.unknown", "not a purpose of the registry (give its id or exact name)"),
    "legal_basis": ("legal_basis.unknown", "not a legal basis of the registry (give its id or exact citation)"),
}


@dataclass(frozen=True)
class Terms:
    evidence_type: EvidenceTypeSpec | None
    purpose: PurposeSpec | None
    legal_basis: LegalBasisSpec | None
    # The fields that named nothing registered, in the order of _UNKNOWN.
    unknown: tuple[str, ...]

    def registered(self) -> tuple[EvidenceTypeSpec, PurposeSpec]:
        """The evidence type and purpose; raises the refusal if anything named is unregistered or
        the legal basis does not cover the evidence type."""
        if self.unknown or self.evidence_type is None or self.purpose is None:
            raise Problem(
                422,
                _UNKNOWN[self.unknown[0]][0],
                f"The registry holds no such {', '.join(self.unknown)}; name registered entries.",
                errors=[{"field": f, "reason": _UNKNOWN[f][0], "message": _UNKNOWN[f][1]} for f in self.unknown],
            )
        if self.legal_basis is not None and self.evidence_type.id not in self.legal_basis.evidence_types:
            raise Problem(
                422,
                "legal_basis.not_applicable",
                f"The legal basis {self.legal_basis.id} does not cover {self.evidence_type.id}.",
                errors=[{"field": "legal_basis", "message": f"does not cover {self.evidence_type.id}"}],
            )
        return self.evidence_type, self.purpose


def resolve(registry: RegistrySnapshot, evidence_type: str, purpose: str, legal_basis: str | None) -> Terms:
    type_spec = registry.evidence_types.get(evidence_type)
    purpose_spec = registry.purpose(purpose)
    basis = registry.legal_basis(legal_basis) if legal_basis is not None else None
    missing = {
        "evidence_type": type_spec is None,
        "purpose": purpose_spec is None,
        "legal_basis": legal_basis is not None and basis is None,
    }
    return Terms(type_spec, purpose_spec, basis, tuple(field for field, absent in missing.items() if absent))
