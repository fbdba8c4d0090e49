"""The EC's OOTS test cases (TC01–TC09) through POST /oots/edm, held to their expected answers.

A real broker process on loopback, on SQLite and PostgreSQL; the citizen decides in the preview
through the development sign-in (tests/citizen/client.py). Every answer passes the official EDM
schemas and business rules (tests/oots/support.py). Test cases that need parts this broker does
not have are left out: TC04 (an Access Point's error: requests arrive over HTTPS here), TC05 (a
further DSD conversation: tests/oots/test_dsd.py) and TC07 (two evidence providers).
"""

from __future__ import annotations

import email
import email.policy
import re
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lxml import etree
from sqlalchemy import create_engine, select

from broker.db.models import Exchange
from tests.citizen.client import CitizenClient
from tests.conftest import SHARED_DIR, LiveBroker, http_server, start_broker, stop_process
from tests.oots.support import (
    DK_AGENT,
    GEBURT,
    MEDIA_TYPE,
    MELDE,
    NS,
    PREVIEW_REQUIRED,
    XLINK,
    EdmRequest,
    Person,
    assert_edm_valid,
    failure_of,
    no_evidence_of,
    post_edm,
)
from tests.oots.test_gateway import add_push_authority

PDF = "application/pdf"
XML = "application/xml"
EVIDENCE = "rim:Slot[@name='EvidenceMetadata']/rim:SlotValue/sdg:Evidence"
# The impatient broker's timeouts: T2 (the preview's lifetime) and T3 (how long a request that
# came back before the citizen decided is held).
IMPATIENT_T2 = 6.0
IMPATIENT_T3 = 1.0


def post(broker: LiveBroker, token: str, request: EdmRequest) -> httpx.Response:
    with broker.client(token) as client:
        return post_edm(client, request.xml())


def decide(broker: LiveBroker, location: str, decision: str) -> None:
    """Erika signs in and decides on the preview page."""
    with CitizenClient(broker.base_url) as browser:
        browser.sign_in("erika")
        assert browser.decide_preview(location, decision).status_code == 200


def exchange_row(broker: LiveBroker, external_ref: str) -> Any:
    engine = create_engine(broker.database_url)
    with engine.connect() as connection:
        row = connection.execute(select(Exchange).where(Exchange.external_ref == external_ref)).one()
    engine.dispose()
    return row


@dataclass
class Document:
    """One registry object of a successful answer and the MIME part it references."""

    registry_object: etree._Element
    media_type: str
    title: str
    body: bytes

    @property
    def format(self) -> str:
        return self.registry_object.findtext(f"{EVIDENCE}/sdg:Distribution/sdg:Format", namespaces=NS) or ""

    @property
    def evidence_id(self) -> str:
        return self.registry_object.findtext(f"{EVIDENCE}/sdg:Identifier", namespaces=NS) or ""


def documents_of(answer: httpx.Response) -> tuple[etree._Element, list[Document]]:
    """A multipart/related success: the rule-conformant root, and each registry object with its part."""
    assert answer.status_code == 200, answer.text[:3000]
    content_type = answer.headers["content-type"]
    assert content_type.startswith("multipart/related"), content_type
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + answer.content, policy=email.policy.HTTP
    )
    assert isinstance(message, EmailMessage)
    parts = {str(part["Content-ID"]): part for part in message.iter_parts()}
    root_part = parts.pop(str(message.get_param("start")))
    assert root_part.get_content_type() == MEDIA_TYPE
    root = assert_edm_valid(root_part.get_content())
    documents = []
    for registry_object in root.findall("rim:RegistryObjectList/rim:RegistryObject", NS):
        reference = registry_object.find("rim:RepositoryItemRef", NS)
        assert reference is not None
        part = parts.pop(f"<{reference.get(f'{{{XLINK}}}href', '')[4:]}>")
        documents.append(
            Document(
                registry_object, part.get_content_type(), reference.get(f"{{{XLINK}}}title", ""), part.get_content()
            )
        )
    assert not parts, "a part no registry object references"
    return root, documents


def pdf_text(pdf: bytes) -> bytes:
    """The text drawing operators of a PDF (its content streams, inflated)."""
    assert pdf.startswith(b"%PDF-")
    # Each stream is cut by its declared /Length: compressed bytes may themselves end in "\r"
    # or contain "endstream", so a pattern up to the keyword can cut a stream short.
    streams = [
        pdf[match.end() : match.end() + int(match[1])]
        for match in re.finditer(rb"/Length (\d+)[^>]*>>\s*stream\r?\n", pdf)
    ]
    return b"".join(zlib.decompress(s) for s in streams if s[:1] == b"x")


def first_request(broker: LiveBroker, token: str, **fields: Any) -> tuple[EdmRequest, str]:
    """The first request of a preview flow: EDM:ERR:0002 PreviewRequired and where to go."""
    request = EdmRequest(possibility_for_preview=True, **fields)
    redirect = failure_of(post(broker, token, request))
    assert (redirect.code, redirect.reason, redirect.severity) == ("EDM:ERR:0002", "preview.required", PREVIEW_REQUIRED)
    return request, str(redirect.slots["PreviewLocation"])


def after_preview(location: str, **fields: Any) -> EdmRequest:
    """The second request: a new id, the PreviewLocation of the first answer."""
    return EdmRequest(possibility_for_preview=True, preview_location=location, **fields)


def assert_preview_slots(failure: Any, location: str) -> None:
    assert failure.slots["PreviewLocation"] == location
    assert failure.slots["PreviewMethod"] == "GET"
    assert {lang.lower() for lang in failure.slots["PreviewDescription"]} == {"en", "de"}
    # A PreviewLocation goes with the severity PreviewRequired (R-EDM-ERR-C022).
    assert failure.severity == PREVIEW_REQUIRED


# --- without preview ----------------------------------------------------------------------------


def test_tc01_evidence_without_preview_with_its_human_readable_version(live_broker: LiveBroker, requester: str) -> None:
    request = EdmRequest()
    root, documents = documents_of(post(live_broker, requester, request))
    assert root.get("requestId") == request.id
    xml, pdf = documents
    assert (xml.format, xml.media_type) == (XML, XML) and b"Mustermann" in xml.body and b"Signature" in xml.body
    # The sealed XML conforms to no OOTS data model, so its PDF comes along (TC10's human-readable
    # version): a registry object of its own, marked by its title.
    assert (pdf.format, pdf.media_type, pdf.title) == (PDF, PDF, "HumanReadableVersion")
    text = pdf_text(pdf.body)
    assert b"Mustermann" in text and b"1964-08-12" in text and b"Standesamt Schwerin" in text
    assert b"SignatureValue" not in text  # the seal is for machines
    assert xml.evidence_id != pdf.evidence_id
    assert pdf.registry_object.find(f"{EVIDENCE}/sdg:Distribution/sdg:ConformsTo", NS) is None


def test_tc02_a_subject_without_evidence_gets_a_success_without_evidence(
    live_broker: LiveBroker, requester: str
) -> None:
    request = EdmRequest(person=Person(family_name="Niemand", given_name="Nobody"))
    root = no_evidence_of(post(live_broker, requester, request))
    assert root.get("requestId") == request.id
    provider = root.findtext("rim:Slot[@name='EvidenceProvider']/rim:SlotValue//sdg:Agent/sdg:Name", namespaces=NS)
    assert provider == "Standesamt Schwerin"  # the authority that looked
    row = exchange_row(live_broker, request.id)
    assert (row.state, row.reason) == ("failed", "subject.not_found")  # the exchange's record is unchanged


class _Failing(BaseHTTPRequestHandler):
    """A base registry's endpoint: 500 for /error, an answer too late for /slow."""

    delay: ClassVar[float] = 3.0

    def do_POST(self) -> None:  # noqa: N802 - the http.server interface
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/slow":
            time.sleep(self.delay)
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def failing_registry() -> Iterator[str]:
    with http_server(_Failing) as url:
        yield url


def test_tc03_base_registry_errors_and_timeouts_keep_their_codes(
    live_broker: LiveBroker, requester: str, admin: str, failing_registry: str
) -> None:
    key = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    broken = add_push_authority(live_broker, admin, "broken", f"{failing_registry}/error", key)
    error = failure_of(post(live_broker, requester, EdmRequest(provider=broken)))
    assert (error.code, error.reason, error.exception_type) == (
        "EDM:ERR:0008",
        "authority.server_error",
        "query:QueryExceptionType",
    )
    slow = add_push_authority(live_broker, admin, "slow", f"{failing_registry}/slow", key)  # 1 s timeout
    timeout = failure_of(post(live_broker, requester, EdmRequest(provider=slow)))
    assert (timeout.code, timeout.reason, timeout.exception_type) == (
        "EDM:ERR:0005",
        "authority.timeout",
        "rs:TimeoutExceptionType",
    )


# --- with preview ---------------------------------------------------------------------------------


def test_tc06_preview_approved_then_the_evidence(live_broker: LiveBroker, requester: str) -> None:
    _, location = first_request(live_broker, requester)
    decide(live_broker, location, "approve")
    second = after_preview(location)
    root, documents = documents_of(post(live_broker, requester, second))
    assert root.get("requestId") == second.id
    assert [d.format for d in documents] == [XML, PDF] and b"Mustermann" in documents[0].body


def test_tc06_a_request_back_before_the_decision_waits_for_it(live_broker: LiveBroker, requester: str) -> None:
    """Not a second PreviewRequired: the request is answered once the citizen decides (within T3)."""
    _, location = first_request(live_broker, requester)
    second = after_preview(location)
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        waiting = pool.submit(post, live_broker, requester, second)
        time.sleep(1.0)
        assert not waiting.done(), waiting.result().text[:2000]  # held, not answered
        decide(live_broker, location, "approve")
        answer = waiting.result(timeout=30)
    assert time.monotonic() - started < 30  # the decision ended the wait, not T3 (60 s)
    root, documents = documents_of(answer)
    assert root.get("requestId") == second.id and documents[0].format == XML


def test_tc08_preview_declined_gets_a_success_without_evidence(live_broker: LiveBroker, requester: str) -> None:
    request, location = first_request(live_broker, requester)
    decide(live_broker, location, "decline")
    second = after_preview(location)
    assert no_evidence_of(post(live_broker, requester, second)).get("requestId") == second.id
    row = exchange_row(live_broker, request.id)
    assert (row.state, row.reason, row.evidence) == ("rejected", "preview.declined", None)


@pytest.fixture(scope="module")
def impatient_broker(seeded_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBroker]:
    """A broker with short OOTS timeouts: previews open for T2, requests held for T3."""
    env = {
        "BROKER_SCHEMA_PATH": str(SHARED_DIR / "oots" / "xsd"),
        "BROKER_OOTS_T2_SECONDS": str(IMPATIENT_T2),
        "BROKER_OOTS_T3_SECONDS": str(IMPATIENT_T3),
    }
    process, broker = start_broker(seeded_database_url, tmp_path_factory.mktemp("impatient"), env)
    try:
        yield broker
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def impatient_requester(impatient_broker: LiveBroker) -> str:
    return impatient_broker.add_client("requester", GEBURT, MELDE, agent=DK_AGENT)


def test_tc09_preview_closed_answers_0005_with_the_preview_slots(
    impatient_broker: LiveBroker, impatient_requester: str
) -> None:
    """The citizen left the preview undecided: after T3 the held request gets EDM:ERR:0005 with
    the preview slots; the preview stays open until T2, so the flow can still end well."""
    _, location = first_request(impatient_broker, impatient_requester)
    started = time.monotonic()
    closed = failure_of(post(impatient_broker, impatient_requester, after_preview(location)))
    assert time.monotonic() - started >= IMPATIENT_T3
    assert (closed.code, closed.reason, closed.exception_type) == (
        "EDM:ERR:0005",
        "preview.pending",
        "rs:TimeoutExceptionType",
    )
    assert_preview_slots(closed, location)
    decide(impatient_broker, location, "approve")
    _, documents = documents_of(post(impatient_broker, impatient_requester, after_preview(location)))
    assert documents[0].format == XML


def test_tc09_preview_timed_out_answers_0005_with_the_preview_slots(
    impatient_broker: LiveBroker, impatient_requester: str
) -> None:
    request, location = first_request(impatient_broker, impatient_requester)
    time.sleep(IMPATIENT_T2 + 0.5)
    expired = failure_of(post(impatient_broker, impatient_requester, after_preview(location)))
    assert (expired.code, expired.reason, expired.exception_type) == (
        "EDM:ERR:0005",
        "preview.expired",
        "rs:TimeoutExceptionType",
    )
    assert_preview_slots(expired, location)
    row = exchange_row(impatient_broker, request.id)
    assert (row.state, row.evidence) == ("expired", None)


# --- requests, requesters, forms ------------------------------------------------------------------


def test_a_resent_request_gets_the_same_answer_a_changed_one_the_error(live_broker: LiveBroker, requester: str) -> None:
    request, location = first_request(live_broker, requester)
    again = failure_of(post(live_broker, requester, request))  # the same message again
    assert (again.code, again.reason, again.slots["PreviewLocation"]) == ("EDM:ERR:0002", "preview.required", location)
    # The same id for another message, even one that differs only in what the exchange does not
    # keep (the forms asked for), is another request: EDM:ERR:0003.
    changed = failure_of(post(live_broker, requester, replace(request, formats=(PDF,))))
    assert (changed.code, changed.reason) == ("EDM:ERR:0003", "oots.request_id_reused")


def test_several_evidence_requesters_match_any_of_the_clients_agent(live_broker: LiveBroker, requester: str) -> None:
    """An intermediary platform names itself beside the requester: the client may be either."""
    platform = "0096:DK11111111"
    root, _ = documents_of(post(live_broker, requester, EdmRequest(intermediaries=(platform,))))
    echoed = root.find("rim:Slot[@name='EvidenceRequester']/rim:SlotValue/sdg:Agent/sdg:Identifier", NS)
    assert echoed is not None and echoed.text == "DK22233223"  # the one the client is registered as
    platform_client = live_broker.add_client("requester", GEBURT, agent=platform)
    documents_of(post(live_broker, platform_client, EdmRequest(intermediaries=(platform,))))
    stranger = failure_of(
        post(live_broker, requester, EdmRequest(requester="0096:DK99999999", intermediaries=(platform,)))
    )
    assert (stranger.code, stranger.reason) == ("EDM:ERR:0001", "oots.requester_mismatch")


def test_distributed_as_is_honoured(live_broker: LiveBroker, requester: str) -> None:
    _, only_pdf = documents_of(post(live_broker, requester, EdmRequest(formats=(PDF,))))
    assert [(d.format, d.title) for d in only_pdf] == [(PDF, "Geburtsurkunde")]
    assert b"Mustermann" in pdf_text(only_pdf[0].body)
    _, both = documents_of(post(live_broker, requester, EdmRequest(formats=(PDF, XML))))
    assert [d.format for d in both] == [PDF, XML]  # the requester's order
    unavailable = EdmRequest(formats=("application/json", "image/png"))
    refused = failure_of(post(live_broker, requester, unavailable))
    assert (refused.code, refused.reason, refused.exception_type) == (
        "EDM:ERR:0007",
        "oots.unsupported_distribution",
        "rs:UnsupportedCapabilityExceptionType",
    )
    row = exchange_row(live_broker, unavailable.id)
    assert (row.state, row.reason, row.authority_id) == ("rejected", "oots.unsupported_distribution", None)
