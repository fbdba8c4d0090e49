"""Inbound EDM requests checked against the official business rules (EDM-REQ-S and -C), on a
broker whose BROKER_OOTS_RULES_PATH names them: a request that breaks a rule gets EDM:ERR:0003
naming the rule ids; one that keeps them all is answered as usual."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lxml import etree

from tests.conftest import SHARED_DIR, LiveBroker, start_broker, stop_process
from tests.oots.support import DK_AGENT, GEBURT, NS, SAMPLES, EdmRequest, evidence_of, failure_of, post_edm

RULES = SHARED_DIR / "oots" / "sch"
GEBURTSURKUNDE = "https://sr.oots.tech.europa.eu/evidencetypeclassifications/DE/f86d3ac1-3076-5813-beba-0f8917c45da3"


@pytest.fixture(scope="module")
def strict_broker(seeded_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    env = {"BROKER_SCHEMA_PATH": str(SHARED_DIR / "oots" / "xsd"), "BROKER_OOTS_RULES_PATH": str(RULES)}
    process, broker = start_broker(seeded_database_url, tmp_path_factory.mktemp("strict"), env)
    try:
        yield broker
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def requester(strict_broker: LiveBroker) -> str:
    return strict_broker.add_client("requester", GEBURT, agent=DK_AGENT)


def conformant(**overrides: object) -> EdmRequest:
    """A request that keeps every EDM-REQ rule: a procedure code, upper-case languages, the
    requester in an EAS scheme, an EvidenceProvider, the Semantic Repository classification."""
    fields: dict[str, object] = {
        "lang": "EN",
        "procedure": "R1",  # "Requesting a birth certificate" (code list Procedures)
        "requester": f"urn:cef.eu:names:identifier:EAS:{DK_AGENT}",
        "provider": "standesamt-13004",
        "classification": GEBURTSURKUNDE,
    }
    return EdmRequest(**{**fields, **overrides})  # type: ignore[arg-type]


def named_rules(root: etree._Element) -> set[str]:
    exception = root.find("rs:Exception", NS)
    assert exception is not None
    message = exception.get("message", "")
    return set(message.removeprefix("The request breaks the OOTS business rules ").rstrip(".").split(", "))


def test_a_request_that_keeps_the_rules_is_answered(strict_broker: LiveBroker, requester: str) -> None:
    with strict_broker.client(requester) as client:
        answer = post_edm(client, conformant().xml())
    assert b"Mustermann" in evidence_of(answer).evidence


@pytest.mark.parametrize(
    ("request_", "broken"),
    [
        (conformant(procedure="Requesting a birth certificate"), {"R-EDM-REQ-C003"}),
        (conformant(lang="en"), {"R-EDM-REQ-C004", "R-EDM-REQ-C028"}),
        (conformant(provider=None), {"R-EDM-REQ-S013"}),
        (conformant(classification="CertificateOfBirth"), {"R-EDM-REQ-C027"}),
    ],
)
def test_a_request_that_breaks_a_rule_is_refused_naming_it(
    strict_broker: LiveBroker, requester: str, request_: EdmRequest, broken: set[str]
) -> None:
    with strict_broker.client(requester) as client:
        failure = failure_of(post_edm(client, request_.xml()))
    assert (failure.code, failure.reason) == ("EDM:ERR:0003", "oots.rules_failed")
    assert named_rules(failure.root) == broken


def test_the_shared_sample_is_refused_for_the_rules_it_breaks(strict_broker: LiveBroker, requester: str) -> None:
    sample = (SAMPLES / "birth-certificate" / "oots_request.xml").read_bytes()
    with strict_broker.client(requester) as client:
        failure = failure_of(post_edm(client, sample))
    assert failure.reason == "oots.rules_failed"
    assert {"R-EDM-REQ-S004", "R-EDM-REQ-C003"} <= named_rules(failure.root)
