"""No personal data in the application log, at any level: a broker at debug level, real exchanges."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import SHARED_DIR, LiveBroker, fresh_broker
from tests.specimen import ERIKA, ERIKA_IDNR, GEBURT, MELDE, request_body


@pytest.fixture(scope="module")
def debug_broker(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveBroker]:
    """On a database of its own: its integrator (whose debug line the test looks for) is the
    only one that integrates its entries."""
    env = {"BROKER_LOG_LEVEL": "debug", "BROKER_SCHEMA_PATH": str(SHARED_DIR / "oots" / "xsd")}
    yield from fresh_broker(backend, request, tmp_path_factory.mktemp(f"debug-{backend}"), env)


def _texts(document: bytes) -> set[str]:
    """Every text of a document (names, address, dates): none of it may reach the log."""
    root = etree.fromstring(document)
    return {text.strip() for text in root.itertext() if len(text.strip()) >= 4}


def test_nothing_of_the_subject_or_the_evidence_reaches_a_debug_log(debug_broker: LiveBroker, tmp_path: Path) -> None:
    token = debug_broker.add_client("requester", MELDE, GEBURT)
    seen: set[str] = set()
    with debug_broker.client(token) as client:
        for body in (
            request_body(),  # delivered and sealed (signxml canonicalises the document)
            request_body(subject={"idnr": ERIKA_IDNR}),
            request_body(GEBURT),
            request_body(preview=True),  # held for the citizen
            request_body(subject={**ERIKA, "given_name": "Erik"}),  # not found
        ):
            answer = client.post("/v1/evidence-requests", json=body)
            assert answer.status_code in (200, 202, 404), answer.text
            if answer.status_code == 200:
                evidence = client.get(answer.json()["evidence"]["href"])
                seen |= _texts(evidence.content)
    logs = debug_broker.logs()
    assert '"level": "debug"' in logs or '"level":"debug"' in logs  # the broker's own debug lines are on
    personal = {"Mustermann", "Erika", "Erik", "1964-08-12", "12.08.1964", ERIKA_IDNR, "Gabler"}
    # The documents' other contents (street, town, parents' names) must not appear either. Left out:
    # the issuing authority's name and ids (not personal) and bare numbers (a postal code could
    # collide with a port or a duration in an unrelated line).
    authority = ("urn:", "melderegister", "standesamt", "Stadt", "Standesamt", "Amt", "Landkreis")
    personal |= {t for t in seen if not t.startswith(authority) and not t.replace("-", "").isdigit()}
    leaked = sorted(p for p in personal if p in logs)
    assert leaked == [], f"personal data in the debug log: {leaked}"
