import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.xml.commands import catalogue_dirs, schemas

REPO = Path(__file__).resolve().parents[2]
ERROR_LINE = re.compile(
    r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<reason>[a-z_.]+): "
    r"(?P<message>.+?)( \[(?P<path>/\S+)\])?$"
)


@pytest.fixture
def oots_env(shared_dir: Path) -> dict[str, str]:
    return {"BROKER_SCHEMA_PATH": str(shared_dir / "oots" / "xsd")}


def sample_files(shared_dir: Path) -> list[str]:
    found = sorted((shared_dir / "oots" / "samples" / "exchange").glob("*/oots_*.xml"))
    return [str(p) for p in found if not p.name.endswith("_header.xml")]


def test_catalogue_dirs_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BROKER_SCHEMA_PATH", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")]))
    dirs = catalogue_dirs()
    assert dirs[-2:] == [tmp_path / "a", tmp_path / "b"]
    assert dirs[0] == REPO / "xsd"


def test_list(oots_env: dict[str, str]) -> None:
    result = CliRunner().invoke(schemas, ["list"], env=oots_env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    query = next(line for line in lines if line.startswith("urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0\t"))
    namespace, roots, file, version = query.split("\t")
    assert "QueryRequest" in roots.split(",") and file.endswith("query.xsd") and version == "XSD 1.0"
    driver = next(line for line in lines if "oots_driver_v1.0.0.xsd" in line)
    assert "XSD 1.1" in driver


def test_validate_samples(oots_env: dict[str, str], shared_dir: Path) -> None:
    files = sample_files(shared_dir)
    result = CliRunner().invoke(schemas, ["validate", *files], env=oots_env)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"{f}: ok" for f in files]


def test_validate_reports_each_failure_on_one_line(oots_env: dict[str, str], shared_dir: Path, tmp_path: Path) -> None:
    good = sample_files(shared_dir)[0]
    text = Path(good).read_text(encoding="utf-8")
    invalid = tmp_path / "invalid.xml"
    invalid.write_text(text.replace('<rim:Slot name="IssueDateTime">', '<rim:Slot name="IssueDateTime"><rim:Bogus/>'))
    malformed = tmp_path / "malformed.xml"
    malformed.write_text("<a>\n<b></a>")
    hostile = tmp_path / "xxe.xml"
    hostile.write_text('<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>')
    stranger = tmp_path / "stranger.xml"
    stranger.write_text('<x:Doc xmlns:x="urn:nobody"/>')
    missing = tmp_path / "missing.xml"

    files = [good, str(invalid), str(malformed), str(hostile), str(stranger), str(missing)]
    result = CliRunner().invoke(schemas, ["validate", *files], env=oots_env)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == len(files)
    assert lines[0] == f"{good}: ok"
    parsed = [ERROR_LINE.match(line) for line in lines[1:]]
    assert all(parsed), lines
    found = {m["file"]: m for m in parsed if m}
    assert found[str(invalid)]["reason"] == "xml.schema_invalid"
    assert found[str(invalid)]["path"] == "/query:QueryRequest/rim:Slot[2]/rim:Bogus"
    assert int(found[str(invalid)]["line"]) > 1
    assert (found[str(malformed)]["reason"], found[str(malformed)]["line"]) == ("xml.malformed", "2")
    assert found[str(hostile)]["reason"] == "xml.doctype_forbidden"
    assert found[str(stranger)]["reason"] == "xml.unexpected_root"
    assert found[str(missing)]["reason"] == "file.unreadable"


def test_validate_needs_files() -> None:
    assert CliRunner().invoke(schemas, ["validate"]).exit_code == 2


def test_broken_catalogue_is_reported(tmp_path: Path) -> None:
    (tmp_path / "broken.xsd").write_text("<xs:schema")
    result = CliRunner().invoke(schemas, ["list"], env={"BROKER_SCHEMA_PATH": str(tmp_path)})
    assert result.exit_code == 1
    assert "broken.xsd" in result.output


def test_import_into_a_directory(shared_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "schemas"
    result = CliRunner().invoke(
        schemas,
        ["import", str(shared_dir / "oots" / "xsd"), "--into", str(target)],
        env={"BROKER_SCHEMA_PATH": ""},
    )
    assert result.exit_code == 0, result.output
    assert "imported 10 schema files" in result.output
    assert "not on BROKER_SCHEMA_PATH" in result.output
    assert len(list((target / "xsd").rglob("*.xsd"))) == 10


def test_import_with_a_name(shared_dir: Path, tmp_path: Path) -> None:
    args = ["import", str(shared_dir / "oots" / "xsd"), "--into", str(tmp_path), "--name", "oots-edm-v1"]
    result = CliRunner().invoke(schemas, args, env={"BROKER_SCHEMA_PATH": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "oots-edm-v1" / "regrep4" / "query.xsd").is_file()


def test_import_defaults_to_the_first_schema_path_entry(shared_dir: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    env = {"BROKER_SCHEMA_PATH": os.pathsep.join([str(first), str(tmp_path / "second")])}
    first.mkdir()
    (tmp_path / "second").mkdir()
    result = CliRunner().invoke(schemas, ["import", str(shared_dir / "oots" / "xsd")], env=env)
    assert result.exit_code == 0, result.output
    assert "not on BROKER_SCHEMA_PATH" not in result.output
    assert (first / "xsd" / "regrep4" / "rim.xsd").is_file()
    listed = CliRunner().invoke(schemas, ["list"], env=env)
    assert str(first / "xsd" / "regrep4" / "rim.xsd") in listed.output


def test_import_refusal_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:import namespace="urn:none"/></xs:schema>'
    )
    result = CliRunner().invoke(schemas, ["import", str(tmp_path / "src"), "--into", str(tmp_path / "dest")])
    assert result.exit_code == 1
    assert "urn:none" in result.output


def test_done_when_check_runs_as_a_process(shared_dir: Path) -> None:
    """`BROKER_SCHEMA_PATH=../shared/oots/xsd broker schemas validate ../shared/…/oots_*.xml`."""
    relative = [os.path.relpath(f, REPO) for f in sample_files(shared_dir)]
    env = {**os.environ, "BROKER_SCHEMA_PATH": os.path.relpath(shared_dir / "oots" / "xsd", REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "broker.xml.commands", "validate", *relative],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok") == len(relative)
