"""The registry's OOTS data (pure, no database): authorities' agent identifiers in EAS schemes,
evidence types' Semantic Repository data model and description, and the demo registry's values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from broker.demo.seed import DEMO_REGISTRY
from broker.oots import mapping
from broker.registry.schemas import AuthoritySpec, EvidenceTypeSpec, RegistryDocument, leitweg_check_digits
from broker.registry.service import read_toml

AUTHORITY = {"id": "standesamt-13004", "name": "Standesamt Schwerin", "ars": "13004", "register_kind": "standesamt"}
TYPE = {
    "id": "urn:test:nachweis",
    "title": "T",
    "namespace": "urn:t",
    "root_element": "T",
    "subject": {"family_name": "/T/Name", "given_names": "/T/Vorname", "birth_date": "/T/Geboren"},
}


def authority(**fields: Any) -> AuthoritySpec:
    return AuthoritySpec.model_validate({**AUTHORITY, **fields})


def refusal(**fields: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        authority(**fields)
    return str(refused.value)


def test_leitweg_check_digits_follow_iso_7064_mod_97_10() -> None:
    assert leitweg_check_digits("991", "33333TEST") == "33"  # the XRechnung test Leitweg-ID 991-33333TEST-33
    assert leitweg_check_digits("13004", "STA") == "20"


def test_an_authoritys_oots_identifier_is_checked_against_its_scheme() -> None:
    assert authority(oots_identifier="13004-STA-20", oots_identifier_scheme="0204").oots_identifier == "13004-STA-20"
    assert authority(oots_identifier="991-33333test-33", oots_identifier_scheme="0204")  # case does not matter
    assert authority(oots_identifier="DE123456789", oots_identifier_scheme="9930")
    assert "wrong check digits" in refusal(oots_identifier="13004-STA-21", oots_identifier_scheme="0204")
    assert "Leitweg-ID" in refusal(oots_identifier="STA-13004-20", oots_identifier_scheme="0204")
    assert "EAS codes" in refusal(oots_identifier="X1", oots_identifier_scheme="0096")  # EAS, but no German body's
    assert "go together" in refusal(oots_identifier="13004-STA-20")
    assert "go together" in refusal(oots_identifier_scheme="0204")
    refusal(oots_identifier="13004 STA", oots_identifier_scheme="9930")  # no blanks in an identifier


def test_two_authorities_may_not_share_an_oots_identity() -> None:
    other = {**AUTHORITY, "id": "standesamt-other", "oots_identifier": "13004-sta-20", "oots_identifier_scheme": "0204"}
    with pytest.raises(ValidationError, match="duplicate OOTS agent identifier"):
        RegistryDocument.model_validate(
            {"authorities": [{**AUTHORITY, "oots_identifier": "13004-STA-20", "oots_identifier_scheme": "0204"}, other]}
        )


def test_an_evidence_types_data_model_is_in_the_semantic_repository() -> None:
    spec = EvidenceTypeSpec.model_validate(
        {**TYPE, "data_model": "https://sr.oots.tech.europa.eu/distributions/t-1.0", "description": "D"}
    )
    assert (spec.data_model, spec.description) == ("https://sr.oots.tech.europa.eu/distributions/t-1.0", "D")
    for wrong in ("https://example.org/distributions/t", "urn:t", "https://sr.oots.tech.europa.eu/distributions/"):
        with pytest.raises(ValidationError):
            EvidenceTypeSpec.model_validate({**TYPE, "data_model": wrong})


def test_an_authority_without_oots_identifier_is_named_by_its_id_unregistered() -> None:
    assert mapping.oots_identity(authority()) == (
        "standesamt-13004",
        "urn:oasis:names:tc:ebcore:partyid-type:unregistered",
    )
    assert mapping.oots_identity(authority(oots_identifier="13004-STA-20", oots_identifier_scheme="0204")) == (
        "13004-STA-20",
        "urn:cef.eu:names:identifier:EAS:0204",
    )


def test_the_demo_registry_has_the_oots_data_the_rules_need() -> None:
    document = read_toml(DEMO_REGISTRY)
    assert len(document.authorities) == 132
    assert all(a.oots_identifier_scheme == "0204" and a.oots_identifier for a in document.authorities)
    for spec in document.evidence_types:
        assert spec.data_model and spec.description
        classification = mapping.classification_of(spec)
        assert classification.startswith("https://sr.oots.tech.europa.eu/evidencetypeclassifications/DE/")
        assert mapping.data_service_identifier(spec) in spec.oots_classifications
