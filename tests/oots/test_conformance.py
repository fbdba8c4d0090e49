"""`broker oots conformance`: every scenario's answers pass the EDM schemas and the OOTS rules,
and a message that breaks a rule is reported with its rule id and fails the run.

The command runs as operators and CI run it (a subprocess, its scratch broker in process);
the check and the table are also driven directly with messages made here and spoiled on purpose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from broker.oots import edm
from broker.oots.commands import oots, report
from broker.oots.conformance import (
    BIRTH_CERTIFICATE,
    ERIKA,
    PUBLIC_URL,
    REQUESTER,
    SCHWERIN,
    Answer,
    Checker,
    ConformanceError,
    Row,
    evidence_request,
    read_answer,
    render,
    sample_requests,
)
from broker.oots.edm.request_writer import write_request
from broker.settings import REPO_DIR
from broker.xml.hardened import parse_xml
from broker.xml.schematron import MessageKind, check_message
from tests.conftest import SHARED_DIR

OOTS_XSD = SHARED_DIR / "oots" / "xsd"
OOTS_RULES = SHARED_DIR / "oots" / "sch"
OOTS_SAMPLES = SHARED_DIR / "oots" / "samples"
# Every scenario the run must show passing; one that goes missing fails this test too.
SCENARIOS = (
    "dsd-data-service",
    "dsd-data-service-by-type-id",
    "dsd-err-0001-other-country",
    "dsd-err-0001-no-authority-there",
    "dsd-err-0002-unknown-type",
    "dsd-err-0003-missing-parameter",
    "dsd-err-0004-unknown-query",
    "dsd-err-0005-jurisdiction-needed",
    "dsd-err-0006-invalid-jurisdiction",
    "tc01-evidence",
    "resent-request",
    "request-id-reused",
    "tc01-distributed-as-pdf",
    "tc01-distributed-as-pdf-xml",
    "tc02-no-evidence",
    "several-requesters",
    "unknown-evidence-type",
    "no-competent-authority",
    "unsupported-edm-version",
    "unsupported-distribution",
    "assurance-too-low",
    "requester-not-named",
    "requester-unregistered",
    "unauthenticated",
    "unknown-token",
    "invalid-request-procedure",
    "invalid-request-no-person",
    "invalid-request-no-version",
    "invalid-request-schema",
    "invalid-request-not-well-formed",
    "invalid-request-media-type",
    "preview-required",
    "preview-approved",
    "preview-declined",
    "preview-closed",
    "preview-location-unknown",
    "preview-expired",
    "sample:exchange/birth-certificate/oots_request.xml",
    "sample:exchange/secondary-education/oots_request1_preview.xml",
    "sample:exchange/secondary-education/oots_request2_after_preview.xml",
)
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def columns(line: str) -> list[str]:
    """A table line's cells (columns are two or more spaces apart; no cell holds two in a row)."""
    return re.split(r" {2,}", line.strip())


def test_every_scenario_passes_the_schemas_and_the_rules() -> None:
    env = {**os.environ, "BROKER_SCHEMA_PATH": str(OOTS_XSD), "BROKER_OOTS_RULES_PATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "broker.cli", "oots", "conformance"]
        + ["--rules", str(OOTS_RULES), "--samples", str(OOTS_SAMPLES)],
        env=env,
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert columns(lines[0]) == ["SCENARIO", "MESSAGE", "XSD", "RULES", "FAILED RULES", "RESULT", "DETAIL"]
    rows = {cells[0]: cells for cells in map(columns, lines[1:-1])}
    for scenario in SCENARIOS:
        assert scenario in rows, f"{scenario} is not in the table:\n{done.stdout}"
        _, _, xsd, rules, failed, result = rows[scenario]
        assert (xsd, rules, failed, result) == ("pass", "pass", "-", "pass"), rows[scenario]
    assert lines[-1].endswith(": all pass"), lines[-1]
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker.load([REPO_DIR / "xsd", OOTS_XSD], OOTS_RULES)


def evidence_answer() -> tuple[str, bytes, bytes]:
    """A successful evidence answer as the gateway packs it: (Content-Type, body, root part)."""
    content_id = f"evidence{uuid.uuid4().hex}@oots.broker"
    metadata = edm.EvidenceMetadata(
        identifier=str(uuid.uuid4()),
        person=ERIKA,
        issuing_authority=SCHWERIN,
        classification=BIRTH_CERTIFICATE.classification or "",
        titles=(edm.Text("Geburtsurkunde", "de"),),
        issuing_date=date(2026, 11, 26),
        media_type="application/xml",
        conforms_to="https://sr.oots.tech.europa.eu/distributions/de-geburtsurkunde-1.0",
        content_id=content_id,
    )
    root = edm.evidence_response(
        request_id=f"urn:uuid:{uuid.uuid4()}",
        now=NOW,
        provider=replace(SCHWERIN, classification="EP", country="DE"),  # the rules want its role
        requester=REQUESTER,
        evidence=[metadata],
    )
    content_type, body = edm.multipart_related(
        edm.Part("response@oots.broker", f"{edm.MEDIA_TYPE}; charset=UTF-8", root),
        [edm.Part(content_id, "application/xml", b"<Geburtsurkunde/>")],
    )
    return content_type, body, root


def test_a_message_that_breaks_a_rule_is_reported_with_its_id_and_fails_the_run(
    checker: Checker, capsys: pytest.CaptureFixture[str]
) -> None:
    content_type, body, root = evidence_answer()
    good = checker.check("good", read_answer(Answer(200, content_type, body)), "evidence")
    assert good.passed, good
    # The evidence type's title in lower case: the rules want the code list's upper-case codes.
    spoiled = body.replace(b'<sdg:Title lang="DE">', b'<sdg:Title lang="de">')
    assert spoiled != body
    broken = checker.check("broken", read_answer(Answer(200, content_type, spoiled)), "evidence")
    assert (broken.xsd, broken.rules, broken.passed) == ("pass", "fail", False)
    assert broken.failed_rules == ("R-EDM-RESP-C018",)

    assert report([good, broken]) == 1
    table = capsys.readouterr().out.splitlines()
    assert columns(table[2])[:6] == ["broken", "evidence response (xml)", "pass", "fail", "R-EDM-RESP-C018", "FAIL"]
    assert table[-1].endswith("1 FAILED")
    assert report([good]) == 0


def test_wrong_answers_and_broken_packaging_fail_even_when_the_message_conforms(checker: Checker) -> None:
    content_type, body, root = evidence_answer()
    wrong = checker.check("wrong", read_answer(Answer(200, content_type, body)), "EDM:ERR:0002")
    assert wrong.problems == ("expected EDM:ERR:0002, got evidence",) and not wrong.passed
    # The root part alone: the evidence it references is missing.
    alone = checker.check("alone", read_answer(Answer(200, edm.MEDIA_TYPE, root)), "evidence")
    assert not alone.passed and (alone.xsd, alone.rules) == ("pass", "pass")
    assert any("no part for cid:evidence" in problem for problem in alone.problems), alone.problems
    unreadable = checker.check("junk", read_answer(Answer(500, "text/html", b"<html")), "evidence")
    assert not unreadable.passed and unreadable.message == "unreadable [HTTP 500]"


def test_the_table_has_fixed_width_columns() -> None:
    rows = [
        Row("a", "error EDM:ERR:0004 route.not_found", "pass", "pass"),
        Row("a-longer-name", "evidence response (xml, pdf)", "pass", "fail", ("R-1", "R-2"), ("why",)),
    ]
    lines = render(rows)
    assert len({line.index("XSD") for line in lines[:1]} | {line.index("pass") for line in lines[1:]}) == 1
    expected = ["a-longer-name", "evidence response (xml, pdf)", "pass", "fail", "R-1 R-2", "FAIL", "why"]
    assert columns(lines[2]) == expected


def test_the_request_writer_writes_what_the_reader_reads_and_the_rules_accept(checker: Checker) -> None:
    request = evidence_request(
        possibility_for_preview=True,
        preview_location=f"{PUBLIC_URL}/preview/abc",
        person=replace(ERIKA, current_address=edm.Address(post_city_name="Schwerin", admin_unit_level1="DE")),
    )
    body = write_request(request, issued=NOW)
    root = parse_xml(body)
    checker._catalogue.validate(root)  # schema-valid, or XmlIntakeError
    verdict = check_message(body, OOTS_RULES)
    assert verdict.kind == MessageKind.EVIDENCE_REQUEST
    assert verdict.passed, [(f.rule_id, f.message) for f in verdict.failures if f.blocking]
    read = edm.read_request(root)
    assert read.id == request.id and read.preview_location == request.preview_location
    assert read.person == request.person  # the eIDAS identifier and the current address included
    assert [r.agent_id for r in read.requesters] == ["0096:DK22233223"]
    assert read.provider is not None and read.provider.agent_id == "0204:13004-STA-20"
    assert read.evidence_type is not None
    assert (read.evidence_type.identifier, read.evidence_type.classification) == (
        BIRTH_CERTIFICATE.identifier,
        BIRTH_CERTIFICATE.classification,
    )
    assert read.evidence_type.distributions == BIRTH_CERTIFICATE.distributions
    assert read.procedure_text == "R1" and read.possibility_for_preview and read.explicit_request_given


def test_the_samples_are_the_query_requests_with_their_ids_as_urn_uuid() -> None:
    samples = {sample.name: sample for sample in sample_requests(OOTS_SAMPLES)}
    assert set(samples) == {s.removeprefix("sample:") for s in SCENARIOS if s.startswith("sample:")}
    birth = samples["exchange/birth-certificate/oots_request.xml"]
    assert etree.fromstring(birth.body).get("id") == "urn:uuid:4ffb5281-179d-4578-adf2-39fd13ccc797"
    assert birth.agent == "0096:DK22233223"
    assert samples["exchange/secondary-education/oots_request1_preview.xml"].agent == "0190:NL22233223"


def test_expected_refusals_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    no_rules = runner.invoke(oots, ["conformance"], env={"BROKER_OOTS_RULES_PATH": ""})
    assert (no_rules.exit_code, no_rules.output.splitlines()) == (
        1,
        ["Error: no rules directory: set BROKER_OOTS_RULES_PATH or pass --rules DIR"],
    )
    no_edm = runner.invoke(oots, ["conformance", "--rules", str(OOTS_RULES)], env={"BROKER_SCHEMA_PATH": ""})
    assert no_edm.exit_code == 1 and len(no_edm.output.splitlines()) == 1, no_edm.output
    assert "no OOTS EDM schemas" in no_edm.output and "BROKER_SCHEMA_PATH" in no_edm.output
    with pytest.raises(ConformanceError, match="does not exist"):
        Checker.load([REPO_DIR / "xsd", OOTS_XSD], tmp_path / "nowhere")
    with pytest.raises(ConformanceError, match="rule file not found"):
        Checker.load([REPO_DIR / "xsd", OOTS_XSD], tmp_path)
