"""``broker schemas rules FILE…``: OOTS messages against the business rules of their kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.xml.commands import schemas

SCH = "http://purl.oclc.org/dsdl/schematron"
FAILURE_LINE = re.compile(r"^(?P<file>.+?): (?P<rule>\S+) \((?P<flag>[a-z]+)\) at (?P<location>/\S*): (?P<message>.+)$")


@pytest.fixture
def rules_env(shared_dir: Path) -> dict[str, str]:
    return {"BROKER_OOTS_RULES_PATH": str(shared_dir / "oots" / "sch")}


@pytest.fixture
def samples(shared_dir: Path) -> Path:
    return shared_dir / "oots" / "samples"


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    result = CliRunner().invoke(schemas, ["rules", *args], env=env or {"BROKER_OOTS_RULES_PATH": ""})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output.splitlines()


def test_a_passing_file(rules_env: dict[str, str], samples: Path) -> None:
    file = str(samples / "DSD" / "DSDQueryErrorResponse.xml")
    code, lines = run([file], rules_env)
    assert (code, lines) == (0, [f"{file}: passes DSD-ERR-S, DSD-ERR-C"])


def test_a_failing_file_gets_one_line_per_failure(rules_env: dict[str, str], samples: Path) -> None:
    file = str(samples / "exchange" / "birth-certificate" / "oots_response.xml")
    code, lines = run([file], rules_env)
    assert code == 1
    parsed = [FAILURE_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert lines[0] == (
        f"{file}: R-EDM-RESP-S004 (error) at /query:QueryResponse[1]/@requestId: The 'requestId' attribute of a "
        "'QueryResponse' MUST be unique UUID (RFC 4122) and match the corresponding request."
    )
    rules = [m["rule"] for m in parsed if m]
    assert rules[:2] == ["R-EDM-RESP-S004", "R-EDM-RESP-S037"]  # structure first, then content
    assert "R-EDM-RESP-C028" in rules


def test_passing_failing_and_refused_files_together(rules_env: dict[str, str], samples: Path, tmp_path: Path) -> None:
    good = str(samples / "EB" / "Query_Error_Response.xml")
    bad = str(samples / "LCM" / "LCM-Bulk-RegistryResponse.xml")
    hostile = tmp_path / "xxe.xml"
    hostile.write_text('<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>')
    stranger = tmp_path / "stranger.xml"
    stranger.write_text('<x:Doc xmlns:x="urn:nobody"/>')
    missing = tmp_path / "missing.xml"
    code, lines = run([good, bad, str(hostile), str(stranger), str(missing)], rules_env)
    assert code == 1
    assert lines[0] == f"{good}: passes EB-ERR"
    assert lines[1].startswith(f"{bad}: R-LCM-SUC-004 (error) at /rs:RegistryResponse[1]/@requestId: ")
    assert lines[2] == f"{hostile}: xml.doctype_forbidden: documents with a DOCTYPE are not accepted"
    assert lines[3] == (
        f"{stranger}: rules.unknown_kind: root element {{urn:nobody}}Doc is not an OOTS message the rules cover"
    )
    assert lines[4] == f"{missing}: file.unreadable: No such file or directory"
    assert len(lines) == 5


def _rules(directory: Path, stem: str, asserts: str) -> None:
    (directory / f"{stem}.sch").write_text(
        f'<sch:schema xmlns:sch="{SCH}" queryBinding="xslt2">'
        '<sch:ns prefix="rs" uri="urn:oasis:names:tc:ebxml-regrep:xsd:rs:4.0"/>'
        f'<sch:pattern><sch:rule context="rs:RegistryResponse">{asserts}</sch:rule></sch:pattern>'
        "</sch:schema>"
    )


def test_warnings_show_but_do_not_fail(samples: Path, tmp_path: Path) -> None:
    _rules(tmp_path, "LCM-SUC", '<sch:assert id="W1" role="warning" test="false()">only\n   a warning</sch:assert>')
    file = str(samples / "LCM" / "LCM-Bulk-RegistryResponse.xml")
    code, lines = run(["--rules", str(tmp_path), file])
    assert (code, lines) == (0, [f"{file}: W1 (warning) at /rs:RegistryResponse[1]: only a warning"])

    _rules(tmp_path, "LCM-SUC", '<sch:assert id="E1" test="false()">unflagged</sch:assert>')
    code, lines = run(["--rules", str(tmp_path), file])
    assert (code, lines) == (1, [f"{file}: E1 (error) at /rs:RegistryResponse[1]: unflagged"])


def test_the_option_overrides_the_setting(rules_env: dict[str, str], samples: Path, tmp_path: Path) -> None:
    _rules(tmp_path, "LCM-SUC", '<sch:assert id="OK" test="true()">fine</sch:assert>')
    file = str(samples / "LCM" / "LCM-Bulk-RegistryResponse.xml")
    assert run(["--rules", str(tmp_path), file], rules_env) == (0, [f"{file}: passes LCM-SUC"])


def test_a_missing_rule_file_is_reported_per_file(samples: Path, tmp_path: Path) -> None:
    file = str(samples / "LCM" / "LCM-Bulk-RegistryResponse.xml")
    code, lines = run(["--rules", str(tmp_path), file])
    assert (code, lines) == (
        1,
        [f"{file}: rules.error: {tmp_path / 'LCM-SUC.sch'}: rule file not found (the lcm-success rules)"],
    )


def test_a_missing_rules_directory_is_one_line(samples: Path, tmp_path: Path) -> None:
    file = str(samples / "LCM" / "LCM-Bulk-RegistryResponse.xml")
    result = CliRunner().invoke(schemas, ["rules", "--rules", str(tmp_path / "nowhere"), file])
    assert result.exit_code != 0
    assert result.output.splitlines() == [f"Error: rules directory {tmp_path / 'nowhere'} does not exist"]

    result = CliRunner().invoke(schemas, ["rules", file], env={"BROKER_OOTS_RULES_PATH": ""})
    assert result.exit_code != 0
    assert result.output.splitlines() == ["Error: no rules directory: set BROKER_OOTS_RULES_PATH or pass --rules DIR"]

    result = CliRunner().invoke(schemas, ["rules", file], env={"BROKER_OOTS_RULES_PATH": str(tmp_path / "gone")})
    assert result.exit_code != 0
    assert result.output.splitlines() == [f"Error: rules directory {tmp_path / 'gone'} does not exist"]
