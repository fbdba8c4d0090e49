"""Routing rules of the registry snapshot (pure, no database)."""

from __future__ import annotations

import pytest

from broker.problems import Problem
from broker.registry.schemas import RegistryDocument
from broker.registry.service import RegistrySnapshot, read_toml

TYPE = "urn:test:nachweis"
TYPE_SPEC = {
    "id": TYPE,
    "title": "T",
    "namespace": "urn:t",
    "root_element": "T",
    "subject": {"family_name": "/T/Name", "given_names": "/T/Vorname", "birth_date": "/T/Geboren"},
}


def snapshot(*routes: tuple[str, str]) -> RegistrySnapshot:
    authorities = sorted({a for _, a in routes})
    return RegistrySnapshot.from_document(
        RegistryDocument.model_validate(
            {
                "evidence_types": [TYPE_SPEC],
                "authorities": [
                    {"id": a, "name": a, "ars": "13", "register_kind": "melderegister"} for a in authorities
                ],
                "routes": [{"evidence_type": TYPE, "ars_prefix": p, "authority": a} for p, a in routes],
            }
        )
    )


def reason_of(registry: RegistrySnapshot, jurisdiction: str | None) -> tuple[int, str]:
    with pytest.raises(Problem) as refused:
        registry.route(TYPE, jurisdiction)
    return refused.value.status, refused.value.reason


@pytest.mark.parametrize(
    ("jurisdiction", "expected"),
    [
        ("130715001001", "amt"),
        ("130715001", "amt"),
        ("130715002001", "kreis"),
        ("13071", "kreis"),
        ("130729999999", "land"),
        ("13", "land"),
    ],
)
def test_longest_matching_prefix_wins(jurisdiction: str, expected: str) -> None:
    registry = snapshot(("13", "land"), ("13071", "kreis"), ("130715001", "amt"))
    assert registry.route(TYPE, jurisdiction).id == expected


def test_too_coarse_lists_the_finer_prefixes() -> None:
    registry = snapshot(("130715001", "a"), ("130715002", "b"))
    with pytest.raises(Problem) as refused:
        registry.route(TYPE, "13071")
    assert refused.value.status == 422
    assert refused.value.reason == "jurisdiction.too_coarse"
    assert refused.value.extensions["candidate_prefixes"] == ["130715001", "130715002"]


def test_no_route_names_type_and_jurisdiction() -> None:
    registry = snapshot(("13071", "a"))
    status, reason = reason_of(registry, "09")
    assert (status, reason) == (404, "route.not_found")


def test_jurisdiction_optional_only_where_one_authority_serves() -> None:
    assert snapshot(("13071", "a"), ("13072", "a")).route(TYPE, None).id == "a"
    assert reason_of(snapshot(("13071", "a"), ("13072", "b")), None) == (422, "jurisdiction.required")


def test_unknown_evidence_type() -> None:
    with pytest.raises(Problem) as refused:
        snapshot(("13", "a")).route("urn:other", "13")
    assert refused.value.reason == "evidence_type.unknown"


def test_demo_registry_covers_mecklenburg_vorpommern() -> None:
    from broker.demo.seed import DEMO_REGISTRY

    document = read_toml(DEMO_REGISTRY)
    kreise = {"13003", "13004", "13071", "13072", "13073", "13074", "13075", "13076"}
    by_kind: dict[str, list[str]] = {}
    for authority in document.authorities:
        by_kind.setdefault(authority.register_kind, []).append(authority.ars)
    assert {ars[:5] for ars in by_kind["standesamt"]} == kreise
    assert {ars[:5] for ars in by_kind["gewerberegister"]} == kreise
    aemter = [ars for ars in by_kind["melderegister"] if ars[5:9] != "0000"]
    assert len(aemter) == 114
    assert all(len(ars) == 9 and ars[:5] in kreise for ars in aemter)
    registry = RegistrySnapshot.from_document(document)
    assert registry.route("urn:de:nachweis:meldebescheinigung", "130040000000").id == "melderegister-13004"
    assert registry.evidence_type_for_oots("CertificateOfBirth").id == "urn:de:nachweis:geburtsurkunde"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["routes"].append({**d["routes"][0]}), "duplicate route"),
        (lambda d: d["routes"].append({**d["routes"][0], "authority": "nobody"}), "unknown authority"),
        (lambda d: d["authorities"][0].update(binding="http_push"), "needs endpoint_url"),
        (lambda d: d["routes"][0].update(ars_prefix="13x"), "ars_prefix"),
    ],
)
def test_invalid_registry_documents_are_refused(change, message: str) -> None:  # type: ignore[no-untyped-def]
    document = {
        "evidence_types": [TYPE_SPEC],
        "authorities": [{"id": "a", "name": "A", "ars": "13", "register_kind": "melderegister"}],
        "routes": [{"evidence_type": TYPE, "ars_prefix": "13", "authority": "a"}],
    }
    change(document)
    with pytest.raises(ValueError, match=message):
        RegistryDocument.model_validate(document)
