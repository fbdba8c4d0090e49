"""The conformance run: every EDM and DSD message the broker answers with, for a scripted set of
scenarios, held to the official EDM schemas and business rules (``broker oots conformance``).

A scratch broker runs in this process, in a temporary directory: its own SQLite database with
the demo data, its own keys, the development sign-in, and the caller's schema path (which must
hold the OOTS EDM schemas). It is driven over HTTP through Starlette's TestClient, as an
Evidence Requester, a citizen and a DSD client would: the EC test cases (TC01 evidence, TC02
nothing about the subject, the preview approved, declined, closed and expired), the refusals the
gateway can give, the Data Service Directory's answer and each of its errors, and, with a
samples directory, the official sample requests (as published, and with their ids in the
rules' form: see :func:`sample_requests`).

Each answer's EDM message (the root part of a ``multipart/related`` success, else the body) is
validated with the broker's own schema catalogue and checked with the rules of its kind
(:func:`broker.xml.schematron.check_message`); warnings and infos do not fail. A scenario also
fails when the answer is not the one it expects (evidence where evidence is due, the right
error code): a conformant answer to the wrong question proves nothing.

The scratch broker checks no inbound rules (``BROKER_OOTS_RULES_PATH`` unset for it): this run
judges the broker's answers, and the official samples break the request rules in places
(lower-case languages, bare scheme codes, procedures outside the code list): refused for that,
they would test nothing but the refusal. The requests the scenarios write themselves
(:mod:`broker.oots.edm.request_writer`) pass the request rules, the deliberately broken ones
aside.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import tempfile
import threading
import urllib.parse
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from lxml import etree
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from broker.clients.service import CLI_ACTOR, add_client
from broker.clock import Clock
from broker.db.migrate import upgrade
from broker.db.session import make_engine, make_session_factory, unit_of_work
from broker.demo.seed import seed
from broker.oots import dsd
from broker.oots.edm import (
    DEFAULT_SPECIFICATION,
    MEDIA_TYPE,
    QUERY_REQUEST,
    RIM_NS,
    RS_NS,
    SDG_NS,
    Agent,
    Distribution,
    EdmError,
    EvidenceRequest,
    NaturalPerson,
    RequestedEvidenceType,
    Requirement,
    Text,
    read_request,
)
from broker.oots.edm.request_writer import write_request
from broker.oots.edm.vocabulary import QUERY_NS, XLINK_NS
from broker.settings import Settings
from broker.xml.catalogue import CatalogueError, SchemaCatalogue
from broker.xml.hardened import XmlIntakeError, parse_xml
from broker.xml.schematron import MessageKind, SchematronError, UnknownMessageKind, check_message, rule_sets_for

if TYPE_CHECKING:
    from starlette.testclient import TestClient

# What builds the scratch broker's app from its settings and clock; the command passes the
# composition root's (``bootstrap.build`` + ``create_app``), which only commands may import.
AppFactory = Callable[[Settings, Clock], FastAPI]

# The links the scratch broker hands out. R-EDM-ERR-C019 wants an https PreviewLocation; the
# links are never fetched (the citizen's decision goes through the TestClient by path).
PUBLIC_URL = "https://broker.conformance.example"
# The scratch broker's timeouts: T1 bounds a wait for an authority (the demo's answer in
# process, so it is never reached); T2, the preview's lifetime, is run out by skipping the
# clock; T3 is how long the "preview closed" scenario waits for a decision that never comes.
T1_SECONDS = 10.0
T2_SECONDS = 600.0
T3_SECONDS = 0.5

# The demo data (broker/demo/registry-mv.toml, broker/demo/seed.py) the scenarios rely on.
REQUESTER = Agent("DK22233223", "0096", (Text("Denmark University Portal", "EN"),), "ER", "DK")
GRANTS = ("urn:de:nachweis:geburtsurkunde", "urn:de:nachweis:meldebescheinigung", "urn:de:nachweis:gewerbeanmeldung")
SCHWERIN = Agent("13004-STA-20", "0204", (Text("Standesamt Schwerin", "DE"),))
BIRTH_CERTIFICATE = RequestedEvidenceType(
    identifier="2af27699-f131-4411-8fdb-9e8cd4e8bded",
    classification="https://sr.oots.tech.europa.eu/evidencetypeclassifications/DE/f86d3ac1-3076-5813-beba-0f8917c45da3",
    titles=(Text("Certificate of Birth", "EN"),),
    distributions=(Distribution("application/xml"),),
)
ERIKA = NaturalPerson(
    family_name="Mustermann",
    given_name="Erika",
    date_of_birth=date(1964, 8, 12),
    level_of_assurance="High",
    identifier="DK/DE/123456789",
    identifier_scheme="eidas",
    place_of_birth="Schwerin",
)
# The demo citizen who signs in to decide in the preview (the development sign-in's "erika").
CITIZEN = "erika"
# R1 is the Procedures code list's "Requesting a birth certificate" (the demo's purpose).
PROCEDURE = (Text("R1", "EN"),)
REQUIREMENT = Requirement("315cfd75-6605-49c4-b0fe-799833b41099", (Text("Proof of Birth", "EN"),))

PDF = "application/pdf"
XML = "application/xml"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_NS = {"query": QUERY_NS, "rim": RIM_NS, "rs": RS_NS, "sdg": SDG_NS}
# What the table shows when a check could not run.
NOT_RUN = "-"


class ConformanceError(Exception):
    """The run cannot start (no EDM schemas, no rules, a broken samples directory): one line
    for the operator, no traceback."""


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One message checked: which scenario, what the message is, and how it fared."""

    scenario: str
    message: str
    xsd: str  # "pass", "fail" or NOT_RUN
    rules: str
    failed_rules: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # why the row fails, besides rule ids: XSD reason, wrong answer

    @property
    def passed(self) -> bool:
        return self.xsd == "pass" and self.rules == "pass" and not self.problems


HEADER = ("SCENARIO", "MESSAGE", "XSD", "RULES", "FAILED RULES", "RESULT", "DETAIL")


def render(rows: Sequence[Row]) -> list[str]:
    """The table, one line per row, columns padded to their widest cell (the detail last, unpadded)."""
    cells = [HEADER] + [
        (
            row.scenario,
            row.message,
            row.xsd,
            row.rules,
            " ".join(row.failed_rules) or NOT_RUN,
            "pass" if row.passed else "FAIL",
            "; ".join(row.problems),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[-1]]).rstrip() for line in cells]


def summary(rows: Sequence[Row], seconds: float | None = None) -> str:
    failed = sum(not row.passed for row in rows)
    scenarios = len({row.scenario for row in rows})
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    verdict = "all pass" if not failed else f"{failed} FAILED"
    checked = f"{len(rows)} messages of {scenarios} scenarios checked against the EDM schemas and the OOTS rules"
    return f"{checked}{took}: {verdict}"


# --- one message against the schemas and the rules -----------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as the checks need it."""

    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Message:
    """The EDM message of an answer and what it says."""

    body: bytes
    root: etree._Element | None
    outcome: str  # "evidence", "no evidence", "CODE reason", "data services", or "unreadable"
    label: str  # the table's MESSAGE
    problems: tuple[str, ...] = ()  # the answer's packaging, wrong beside the message itself


class Checker:
    """Checks messages with the broker's schema catalogue and the rules in ``rules_dir``."""

    def __init__(self, catalogue: SchemaCatalogue, rules_dir: Path) -> None:
        self._catalogue = catalogue
        self._rules = rules_dir

    @classmethod
    def load(cls, schema_dirs: Sequence[Path], rules_dir: Path) -> Checker:
        """The checker, or ConformanceError when the schemas or rules cannot check EDM messages."""
        try:
            catalogue = SchemaCatalogue(schema_dirs)
        except CatalogueError as error:
            raise ConformanceError(f"schema catalogue: {error}") from None
        if any(catalogue.validator_for(ns) is None for ns in (QUERY_NS, SDG_NS)):
            raise ConformanceError(
                "the schema catalogue has no OOTS EDM schemas (query:4.0 and sdg namespaces): "
                "point BROKER_SCHEMA_PATH at them, e.g. ../shared/oots/xsd"
            )
        if not rules_dir.is_dir():
            raise ConformanceError(f"rules directory {rules_dir} does not exist")
        # Compiled now, so that a missing or broken rule file stops the run before it starts.
        kinds = (
            MessageKind.EVIDENCE_RESPONSE,
            MessageKind.EVIDENCE_ERROR,
            MessageKind.DSD_RESPONSE,
            MessageKind.DSD_ERROR,
        )
        try:
            for kind in kinds:
                rule_sets_for(kind, rules_dir)
        except SchematronError as error:
            raise ConformanceError(f"rules: {error}") from None
        return cls(catalogue, rules_dir)

    def check(self, scenario: str, message: Message, expect: str | None = None, problems: Sequence[str] = ()) -> Row:
        """The row of ``message``: XSD, rules, and whether it is the answer ``expect``-ed (an
        outcome, or its start up to a space: "EDM:ERR:0001" takes any reason of that code)."""
        found = [*message.problems, *problems]
        if expect is not None and message.outcome != expect and not message.outcome.startswith(expect + " "):
            found.append(f"expected {expect}, got {message.outcome}")
        if message.root is None:
            return Row(scenario, message.label, "fail", NOT_RUN, (), (*found, "not a readable XML message"))
        xsd = "pass"
        try:
            self._catalogue.validate(message.root)
        except XmlIntakeError as error:
            xsd = "fail"
            line = f" (line {error.line})" if error.line else ""
            found.append(f"XSD {error.reason}: {error.detail}{line}")
        try:
            verdict = check_message(message.body, self._rules)
        except (UnknownMessageKind, XmlIntakeError, SchematronError) as error:
            return Row(scenario, message.label, xsd, "fail", (), (*found, f"rules not run: {error}"))
        failed = tuple(sorted({f.rule_id for f in verdict.failures if f.blocking}))
        return Row(scenario, message.label, xsd, "pass" if verdict.passed else "fail", failed, tuple(found))


def read_answer(answer: Answer) -> Message:
    """The EDM message of an answer: the root part of a multipart/related success (whose
    references must resolve to parts of the formats they state), else the body."""
    suffix = f" [HTTP {answer.status}]" if answer.status != 200 else ""
    problems: list[str] = []
    body = answer.body
    attachments: dict[str, str] = {}
    if answer.content_type.startswith("multipart/related"):
        try:
            body, attachments = _unpack(answer.content_type, answer.body)
        except ValueError as error:
            return Message(answer.body, None, "unreadable", f"multipart/related{suffix}", (str(error),))
    elif not answer.content_type.startswith(MEDIA_TYPE):
        problems.append(f"Content-Type {answer.content_type!r}, not {MEDIA_TYPE}")
    try:
        root = parse_xml(body)
    except XmlIntakeError as error:
        return Message(body, None, "unreadable", f"unreadable{suffix}", (*problems, f"{error.reason}: {error.detail}"))
    outcome, label = _describe(root)
    if outcome == "evidence" and not attachments:
        problems.append("evidence without its documents (not multipart/related)")
    for reference, media_type in _references(root):
        part = attachments.pop(reference, None)
        if part is None:
            problems.append(f"no part for cid:{reference}")
        elif part.split(";")[0].strip() != media_type:
            problems.append(f"part cid:{reference} is {part}, the response says {media_type}")
    problems += [f"part {cid} is referenced by no registry object" for cid in attachments]
    return Message(body, root, outcome, label + suffix, tuple(problems))


def _unpack(content_type: str, body: bytes) -> tuple[bytes, dict[str, str]]:
    """(root part, {content id: media type} of the other parts) of a multipart/related body."""
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    start = str(parsed.get_param("start", "", header="content-type") or "").strip("<>")
    parts = {str(p.get("Content-ID", "")).strip().strip("<>"): p for p in parsed.iter_parts()}
    root = parts.pop(start, None)
    if not start or root is None:
        raise ValueError(f"multipart/related without its start part {start!r}")
    if root.get_content_type() != MEDIA_TYPE:
        raise ValueError(f"the start part is {root.get_content_type()}, not {MEDIA_TYPE}")
    payload = root.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise ValueError("the start part has no body")
    return payload, {cid: part.get_content_type() for cid, part in parts.items()}


def _references(root: etree._Element) -> Iterator[tuple[str, str]]:
    """(content id, format) of each registry object's document (the DSD's objects have none)."""
    for item in root.iterfind("rim:RegistryObjectList/rim:RegistryObject", _NS):
        reference = item.find("rim:RepositoryItemRef", _NS)
        if reference is None:
            continue
        href = reference.get(f"{{{XLINK_NS}}}href", "")
        media_type = item.findtext(".//sdg:Evidence/sdg:Distribution/sdg:Format", "", _NS)
        yield href.removeprefix("cid:"), media_type


def _describe(root: etree._Element) -> tuple[str, str]:
    """(outcome, label) of a QueryResponse: evidence or none, an error's code and reason, the DSD's."""
    if root.tag != f"{{{QUERY_NS}}}QueryResponse":
        return "unexpected", f"{etree.QName(root).localname}"
    exception = root.find("rs:Exception", _NS)
    if exception is not None:
        code = exception.get("code", "")
        reason = exception.get("detail", "").partition(": ")[0]
        family = "DSD error" if code.startswith("DSD:") else "error"
        return f"{code} {reason}".strip(), f"{family} {code} {reason}".strip()
    objects = root.findall("rim:RegistryObjectList/rim:RegistryObject", _NS)
    if any(o.find("rim:Slot[@name='DataServiceEvidenceType']", _NS) is not None for o in objects):
        return "data services", f"DSD response ({len(objects)} data service type{'s' * (len(objects) != 1)})"
    if not objects:
        return "no evidence", "response without evidence"
    formats = [o.findtext(".//sdg:Evidence/sdg:Distribution/sdg:Format", "?", _NS) for o in objects]
    return "evidence", f"evidence response ({', '.join(f.removeprefix('application/') for f in formats)})"


# --- the scratch broker ----------------------------------------------------------------------------


class SkippingClock:
    """System time plus what the run skipped: time flows as usual (sign-ins, the log), and a
    preview's lifetime (T2) can be run out without waiting for it."""

    def __init__(self) -> None:
        self._skipped = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._skipped

    def skip(self, delta: timedelta) -> None:
        with self._lock:
            self._skipped += delta


class ScratchSettings(Settings):
    """Settings from the constructor alone: no ``BROKER_*`` variable of the caller's environment
    (a sign-in provider, rules, a database) reaches the scratch broker."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


@dataclass(frozen=True)
class Tokens:
    requester: str  # the OOTS requester (agent REQUESTER, grants GRANTS)
    unregistered: str  # a requester with the same grants but no OOTS agent
    # One requester per sample, registered as the sample's own EvidenceRequester (and so the
    # samples' shared ids do not meet as one requester's resends).
    samples: tuple[str, ...]


def prepare_database(url: str, sample_agents: Sequence[str]) -> Tokens:
    """Migrate and seed the scratch database and register its clients."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        now = datetime.now(UTC)
        grants: list[tuple[str, str | None]] = [(g, None) for g in GRANTS]
        agent = f"{REQUESTER.scheme}:{REQUESTER.identifier}"
        with unit_of_work(make_session_factory(engine)) as session:
            seed(session)

            def requester(name: str, agent_id: str | None) -> str:
                return add_client(session, name, "requester", grants, agent_id=agent_id, actor=CLI_ACTOR, now=now)

            return Tokens(
                requester("dk-portal", agent),
                requester("no-agent", None),
                tuple(requester(f"sample-{index}", a) for index, a in enumerate(sample_agents)),
            )
    finally:
        engine.dispose()


class ScratchBroker:
    """The broker under test, in process, driven over HTTP through Starlette's TestClient."""

    def __init__(self, client: TestClient, clock: SkippingClock, tokens: Tokens) -> None:
        self.client = client
        self.clock = clock
        self.tokens = tokens

    def post_edm(self, body: bytes, token: str | None, media_type: str = MEDIA_TYPE) -> Answer:
        headers = {"Content-Type": media_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return _answer(self.client.post("/oots/edm", content=body, headers=headers))

    def search(self, params: Mapping[str, str]) -> Answer:
        return _answer(self.client.get("/oots/rest/search", params=dict(params)))

    def decide(self, location: str, decision: str) -> str | None:
        """The citizen signs in (development sign-in) and decides in the preview; None if that
        worked, else what went wrong."""
        path = urllib.parse.urlsplit(location).path
        form = self.client.get("/citizen/dev-login")
        csrf = _CSRF.search(form.text)
        if form.status_code != 200 or csrf is None:
            return f"development sign-in page: HTTP {form.status_code}"
        data = {"citizen": CITIZEN, "assurance": "high", "csrf": csrf.group(1), "next": "/citizen"}
        signed_in = self.client.post("/citizen/dev-login", data=data, follow_redirects=False)
        if signed_in.status_code != 303:
            return f"development sign-in: HTTP {signed_in.status_code}"
        page = self.client.get(path)
        csrf = _CSRF.search(page.text)
        if page.status_code != 200 or csrf is None:
            return f"preview page: HTTP {page.status_code}"
        decided = self.client.post(path, data={"decision": decision, "csrf": csrf.group(1)})
        return None if decided.status_code == 200 else f"preview decision: HTTP {decided.status_code}"


def _answer(response: httpx.Response) -> Answer:
    return Answer(response.status_code, response.headers.get("content-type", ""), response.content)


@contextmanager
def scratch_broker(
    schema_path: str, app_factory: AppFactory, sample_agents: Sequence[str] = ()
) -> Iterator[ScratchBroker]:
    """A broker of its own in a temporary directory, serving (background jobs running) while in use."""
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="broker-conformance-")))
        database_url = f"sqlite:///{directory / 'broker.db'}"
        tokens = prepare_database(database_url, sample_agents)
        settings = ScratchSettings(
            env="development",
            database_url=database_url,
            keys_dir=directory / "keys",
            schema_path=schema_path,
            oots_rules_path="",
            public_url=PUBLIC_URL,
            citizen_signin="development",
            log_level="warning",
            oots_t1_seconds=T1_SECONDS,
            oots_t2_seconds=T2_SECONDS,
            oots_t3_seconds=T3_SECONDS,
        )
        clock = SkippingClock()
        app = app_factory(settings, clock)
        # Released after the app stopped (the TestClient, entered below, leaves first) and before
        # the directory goes (entered above, removed last).
        stack.callback(app.state.services.database.dispose)
        with warnings.catch_warnings():
            # Starlette announces a move of its TestClient to "httpx2"; nothing for an operator to act on.
            warnings.filterwarnings("ignore", r"Using .httpx. with .starlette\.testclient.", UserWarning)
            from starlette.testclient import TestClient
        # https, so that the citizen's session cookie (Secure) comes back; the `with` runs the
        # lifespan, which starts and stops the background jobs.
        client = stack.enter_context(TestClient(app, base_url="https://testserver"))
        yield ScratchBroker(client, clock, tokens)


# --- the scenarios ---------------------------------------------------------------------------------


def new_request_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def evidence_request(**changes: Any) -> EvidenceRequest:
    """TC01's request: Erika's birth certificate from the Standesamt Schwerin, as XML; ``changes``
    are the scenario's variations (a new id unless given)."""
    base = EvidenceRequest(
        id=new_request_id(),
        specification=DEFAULT_SPECIFICATION,
        procedure=PROCEDURE,
        possibility_for_preview=False,
        explicit_request_given=True,
        preview_location=None,
        requirements=(REQUIREMENT,),
        requesters=(REQUESTER,),
        provider=SCHWERIN,
        person=ERIKA,
        legal_person=False,
        evidence_type=BIRTH_CERTIFICATE,
    )
    return replace(base, **changes)


def with_formats(*media_types: str) -> RequestedEvidenceType:
    return replace(BIRTH_CERTIFICATE, distributions=tuple(Distribution(m) for m in media_types))


def preview_location(message: Message) -> str | None:
    if message.root is None:
        return None
    return message.root.findtext("rs:Exception/rim:Slot[@name='PreviewLocation']/rim:SlotValue/rim:Value", None, _NS)


def evidence_ids(message: Message) -> list[str]:
    if message.root is None:
        return []
    return [e.text or "" for e in message.root.iterfind(".//sdg:Evidence/sdg:Identifier", _NS)]


def formats_of(message: Message) -> list[str]:
    return [media_type for _, media_type in _references(message.root)] if message.root is not None else []


def _documents(message: Message, expected: list[str]) -> list[str]:
    """What is wrong with the forms of an evidence answer's documents (the request's DistributedAs order)."""
    found = formats_of(message)
    return [] if found == expected or message.outcome != "evidence" else [f"documents {found}, not {expected}"]


class Scenarios:
    """The scripted scenarios, each recording a row per message it checks."""

    def __init__(self, broker: ScratchBroker, checker: Checker) -> None:
        self.broker = broker
        self.checker = checker
        self.rows: list[Row] = []

    def record(self, scenario: str, answer: Answer, expect: str | None = None, problems: Sequence[str] = ()) -> Message:
        return self.add(scenario, read_answer(answer), expect, problems)

    def add(self, scenario: str, message: Message, expect: str | None, problems: Sequence[str] = ()) -> Message:
        self.rows.append(self.checker.check(scenario, message, expect, problems))
        return message

    def send(self, request: EvidenceRequest, token: str | None = None) -> Answer:
        body = write_request(request, issued=self.broker.clock.now())
        return self.broker.post_edm(body, token if token is not None else self.broker.tokens.requester)

    def edm(self, scenario: str, request: EvidenceRequest, expect: str) -> Message:
        return self.record(scenario, self.send(request), expect)

    # The Data Service Directory: its answer and each error it can give.
    def directory(self) -> None:
        birth = {"queryId": dsd.QUERY_ID, "evidence-type-classification": "CertificateOfBirth", "country-code": "DE"}
        cases: list[tuple[str, dict[str, str], str]] = [
            ("dsd-data-service", {**birth, "jurisdiction-admin-l3": "13004"}, "data services"),
            (
                "dsd-data-service-by-type-id",
                {
                    **birth,
                    "evidence-type-classification": "urn:de:nachweis:meldebescheinigung",
                    "jurisdiction-admin-l3": "130040000000",
                },
                "data services",
            ),
            ("dsd-err-0001-other-country", {**birth, "country-code": "FR"}, "DSD:ERR:0001 dsd.no_data_service"),
            ("dsd-err-0001-no-authority-there", {**birth, "jurisdiction-admin-l3": "09162"}, "DSD:ERR:0001"),
            (
                "dsd-err-0002-unknown-type",
                {**birth, "evidence-type-classification": "MarriageCertificate"},
                "DSD:ERR:0002 dsd.evidence_type_unknown",
            ),
            (
                "dsd-err-0003-missing-parameter",
                {"queryId": dsd.QUERY_ID, "country-code": "DE"},
                "DSD:ERR:0003 dsd.parameter_missing",
            ),
            ("dsd-err-0004-unknown-query", {**birth, "queryId": "urn:example:other"}, "DSD:ERR:0004 dsd.query_unknown"),
            ("dsd-err-0005-jurisdiction-needed", {**birth, "jurisdiction-admin-l2": "DE8"}, "DSD:ERR:0005"),
            (
                "dsd-err-0006-invalid-jurisdiction",
                {**birth, "jurisdiction-admin-l2": "FR10"},
                "DSD:ERR:0006 dsd.jurisdiction_invalid",
            ),
        ]
        for scenario, params, expect in cases:
            self.record(scenario, self.broker.search(params), expect)

    # Without preview: the EC test cases TC01 and TC02, the forms asked for, resends.
    def without_preview(self) -> None:
        first = evidence_request()
        body = write_request(first, issued=self.broker.clock.now())
        tc01 = read_answer(self.broker.post_edm(body, self.broker.tokens.requester))
        self.add("tc01-evidence", tc01, "evidence", _documents(tc01, [XML, PDF]))
        again = read_answer(self.broker.post_edm(body, self.broker.tokens.requester))
        same = [] if evidence_ids(again) == evidence_ids(tc01) else ["not the same evidence as the first answer"]
        self.add("resent-request", again, "evidence", same)
        changed = replace(first, evidence_type=with_formats(PDF))
        self.edm("request-id-reused", changed, "EDM:ERR:0003 oots.request_id_reused")

        pdf = read_answer(self.send(evidence_request(evidence_type=with_formats(PDF))))
        self.add("tc01-distributed-as-pdf", pdf, "evidence", _documents(pdf, [PDF]))
        both = read_answer(self.send(evidence_request(evidence_type=with_formats(PDF, XML))))
        self.add("tc01-distributed-as-pdf-xml", both, "evidence", _documents(both, [PDF, XML]))
        nobody = replace(ERIKA, family_name="Niemand", given_name="Nobody", identifier="DK/DE/987654321")
        self.edm("tc02-no-evidence", evidence_request(person=nobody), "no evidence")
        platform = Agent("DK11111111", "0096", (Text("Intermediary platform", "EN"),), "IP", "DK")
        self.edm("several-requesters", evidence_request(requesters=(platform, REQUESTER)), "evidence")

    # Refusals: each EDM error the gateway gives before or instead of evidence.
    def refusals(self) -> None:
        unknown = replace(
            BIRTH_CERTIFICATE,
            identifier=str(uuid.uuid4()),
            classification=f"https://sr.oots.tech.europa.eu/evidencetypeclassifications/DE/{uuid.uuid4()}",
        )
        self.edm("unknown-evidence-type", evidence_request(evidence_type=unknown), "EDM:ERR:0004")
        hamburg = replace(ERIKA, place_of_birth="Hamburg")
        self.edm("no-competent-authority", evidence_request(provider=None, person=hamburg), "EDM:ERR:0004")
        self.edm("unsupported-edm-version", evidence_request(specification="oots-edm:v2.0"), "EDM:ERR:0007")
        self.edm("unsupported-distribution", evidence_request(evidence_type=with_formats("image/png")), "EDM:ERR:0007")
        low = replace(ERIKA, level_of_assurance="Low")
        self.edm("assurance-too-low", evidence_request(person=low), "EDM:ERR:0001")
        stranger = Agent("DK99999999", "0096", (Text("Another portal", "EN"),), "ER", "DK")
        self.edm("requester-not-named", evidence_request(requesters=(stranger,)), "EDM:ERR:0001")
        unregistered = self.send(evidence_request(), self.broker.tokens.unregistered)
        self.record("requester-unregistered", unregistered, "EDM:ERR:0001 oots.requester_unregistered")
        body = write_request(evidence_request(), issued=self.broker.clock.now())
        self.record("unauthenticated", self.broker.post_edm(body, None), "EDM:ERR:0001")
        self.record("unknown-token", self.broker.post_edm(body, "not-a-token"), "EDM:ERR:0001")

        cat = (Text("Adopting a cat", "EN"),)
        self.edm("invalid-request-procedure", evidence_request(procedure=cat), "EDM:ERR:0003 purpose.unknown")
        self.edm("invalid-request-no-person", evidence_request(person=None), "EDM:ERR:0003 oots.person_missing")
        self.edm("invalid-request-no-version", evidence_request(specification=None), "EDM:ERR:0003")
        token = self.broker.tokens.requester
        self.record("invalid-request-schema", self.broker.post_edm(schema_invalid(body), token), "EDM:ERR:0003")
        broken = body[: len(body) // 2]
        self.record("invalid-request-not-well-formed", self.broker.post_edm(broken, token), "EDM:ERR:0003")
        self.record("invalid-request-media-type", self.broker.post_edm(body, token, "text/plain"), "EDM:ERR:0003")

    # With preview: required, approved, declined, closed (T3), unknown, expired (T2).
    def preview(self) -> None:
        location = self.first_request("preview-required")
        if location is not None and self.decided("preview-approved", location, "approve"):
            self.edm("preview-approved", self.after_preview(location), "evidence")
        location = self.first_request("preview-declined", record=False)
        if location is not None and self.decided("preview-declined", location, "decline"):
            self.edm("preview-declined", self.after_preview(location), "no evidence")
        location = self.first_request("preview-closed", record=False)
        if location is not None:
            self.edm("preview-closed", self.after_preview(location), "EDM:ERR:0005 preview.pending")
        unknown = f"{PUBLIC_URL}/preview/{uuid.uuid4().hex}"
        self.edm("preview-location-unknown", self.after_preview(unknown), "EDM:ERR:0003")
        # Last: the clock stays skipped past T2 for whatever follows.
        location = self.first_request("preview-expired", record=False)
        if location is not None:
            self.broker.clock.skip(timedelta(seconds=T2_SECONDS + 60))
            self.edm("preview-expired", self.after_preview(location), "EDM:ERR:0005 preview.expired")

    def first_request(self, scenario: str, record: bool = True) -> str | None:
        """The first request of a preview flow: its PreviewLocation, or None if the answer is not
        EDM:ERR:0002 with one. Its row is shown where ``record`` says, or where it fails."""
        message = read_answer(self.send(evidence_request(possibility_for_preview=True)))
        location = preview_location(message)
        row = self.checker.check(
            scenario, message, "EDM:ERR:0002 preview.required", () if location else ("no PreviewLocation",)
        )
        if record or not row.passed:
            self.rows.append(row)
        return location if row.passed else None

    def decided(self, scenario: str, location: str, decision: str) -> bool:
        problem = self.broker.decide(location, decision)
        if problem is not None:
            self.rows.append(Row(scenario, f"citizen's decision ({decision})", NOT_RUN, NOT_RUN, (), (problem,)))
        return problem is None

    def after_preview(self, location: str) -> EvidenceRequest:
        """The second request of a preview flow: a new id, the PreviewLocation of the first answer."""
        return evidence_request(possibility_for_preview=True, preview_location=location)

    # The official samples, each by a requester of its own.
    def samples(self, samples: Sequence[Sample]) -> None:
        for sample, token in zip(samples, self.broker.tokens.samples, strict=True):
            self.record(f"sample:{sample.name}", self.broker.post_edm(sample.published, token))
            if sample.body != sample.published:
                self.record(f"sample:{sample.name} (urn:uuid id)", self.broker.post_edm(sample.body, token))


def schema_invalid(body: bytes) -> bytes:
    """``body`` with an element the EDM schema does not allow in a Person."""
    root = etree.fromstring(body)
    person = root.find(".//sdg:Person", _NS)
    assert person is not None  # the requests written here always name one
    etree.SubElement(person, f"{{{SDG_NS}}}Nickname").text = "Eri"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


_BARE_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    name: str  # its path below the samples directory
    published: bytes  # as published
    body: bytes  # with a bare-UUID id in the urn:uuid form the rules want
    agent: str  # its first EvidenceRequester, SCHEME:ID, as its requester is registered


def sample_requests(directory: Path) -> list[Sample]:
    """Every ``*request*.xml`` under ``directory`` that is a ``query:QueryRequest`` (the ebMS
    headers are left out), as published and with one change: an id that is a bare UUID gets its
    ``urn:uuid:`` prefix.

    Why both: the official samples' ids are bare UUIDs (an EDM pre-release's form), which the
    rules refuse (R-EDM-REQ-S004) and no conformant answer can name (R-EDM-RESP-S004): as
    published, a sample is refused (EDM:ERR:0003, ``oots.request_id_invalid``); with the prefix,
    the answer is about everything else in it.
    """
    if not directory.is_dir():
        raise ConformanceError(f"samples directory {directory} does not exist")
    found = []
    for path in sorted(directory.rglob("*request*.xml")):
        try:
            root = parse_xml(path.read_bytes())
        except (OSError, XmlIntakeError):
            continue  # not a message this run can send
        if root.tag != QUERY_REQUEST:
            continue
        published = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        if _BARE_UUID.match(root.get("id", "").strip()):
            root.set("id", f"urn:uuid:{root.get('id', '').strip().lower()}")
        try:
            requesters = read_request(root).requesters
        except EdmError:
            requesters = ()
        agent = requesters[0].agent_id if requesters else f"{REQUESTER.scheme}:{REQUESTER.identifier}"
        body = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        found.append(Sample(path.relative_to(directory).as_posix(), published, body, agent))
    return found


def run(settings: Settings, rules_dir: Path, samples_dir: Path | None, app_factory: AppFactory) -> list[Row]:
    """Every scenario against a scratch broker with ``settings``' schema path; one row per message."""
    checker = Checker.load(settings.schema_dirs, rules_dir)
    samples = sample_requests(samples_dir) if samples_dir is not None else []
    with scratch_broker(settings.schema_path, app_factory, [sample.agent for sample in samples]) as broker:
        scenarios = Scenarios(broker, checker)
        scenarios.directory()
        scenarios.without_preview()
        scenarios.refusals()
        scenarios.samples(samples)
        scenarios.preview()
    return scenarios.rows
