import json
import shutil
import socket
import threading
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from broker.xml.catalogue import CatalogueError, SchemaCatalogue, import_schemas
from broker.xml.catalogue import _import as catalogue_import
from broker.xml.hardened import XmlIntakeError, XmlLimits, element_path, parse_xml

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "xml" / "schemas"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:4.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0"
SDG = "http://data.europa.eu/p4s"
EVIDENCE = "urn:test:broker:evidence"
RANGE = "urn:test:broker:range"
XS = 'xmlns:xs="http://www.w3.org/2001/XMLSchema"'


def samples(shared_dir: Path) -> list[Path]:
    found = sorted((shared_dir / "oots" / "samples" / "exchange").glob("*/oots_*.xml"))
    return [p for p in found if not p.name.endswith("_header.xml")]


def sample_ids() -> list[str]:
    base = Path(__file__).resolve().parents[2] / ".." / "shared" / "oots" / "samples" / "exchange"
    return [
        f"{p.parent.name}/{p.name}"
        for p in sorted(base.resolve().glob("*/oots_*.xml"))
        if not p.name.endswith("_header.xml")
    ]


@pytest.fixture(scope="module")
def oots(shared_dir: Path) -> SchemaCatalogue:
    return SchemaCatalogue([shared_dir / "oots" / "xsd"])


@pytest.fixture(scope="module")
def assets() -> SchemaCatalogue:
    return SchemaCatalogue([ASSETS])


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args))
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def schema(target: str, body: str, extra: str = "") -> str:
    return f'<xs:schema {XS} xmlns:t="{target}" targetNamespace="{target}" {extra}>{body}</xs:schema>'


# --- the official OOTS EDM samples ---------------------------------------------------------


@pytest.mark.parametrize("name", sample_ids())
def test_official_sample_validates(oots: SchemaCatalogue, shared_dir: Path, name: str) -> None:
    oots.validate(parse_xml((shared_dir / "oots" / "samples" / "exchange" / name).read_bytes()))


def test_there_are_samples(shared_dir: Path) -> None:
    assert len(samples(shared_dir)) >= 6


@pytest.mark.parametrize("name", sample_ids())
def test_sample_with_unknown_element_fails_with_its_path(oots: SchemaCatalogue, shared_dir: Path, name: str) -> None:
    root = parse_xml((shared_dir / "oots" / "samples" / "exchange" / name).read_bytes())
    slot = next(root.iter(f"{{{RIM}}}Slot"))
    intruder = etree.SubElement(slot, f"{{{RIM}}}NotInTheSchema")
    with pytest.raises(XmlIntakeError) as caught:
        oots.validate(root)
    error = caught.value
    assert (error.status, error.reason) == (422, "xml.schema_invalid")
    assert error.path == element_path(intruder)
    assert error.path.endswith("/rim:NotInTheSchema") and error.path in str(error)
    assert "not expected" in error.detail


@pytest.mark.parametrize("name", sample_ids())
def test_sample_missing_a_required_element_fails_with_its_path(
    oots: SchemaCatalogue, shared_dir: Path, name: str
) -> None:
    data = (shared_dir / "oots" / "samples" / "exchange" / name).read_bytes()
    root = parse_xml(data)
    # Every sample names agents, and an sdg:AgentType must start with sdg:Identifier.
    agent = next(root.iter(f"{{{SDG}}}Agent"))
    identifier = agent.find(f"{{{SDG}}}Identifier")
    following = identifier.getnext()
    agent.remove(identifier)
    with pytest.raises(XmlIntakeError) as caught:
        oots.validate(root)
    error = caught.value
    assert error.reason == "xml.schema_invalid"
    assert error.path == element_path(following) and error.path.startswith(element_path(agent) + "/")
    assert error.line == following.sourceline
    assert "Identifier" in error.detail


def test_request_without_query_names_the_root(oots: SchemaCatalogue, shared_dir: Path) -> None:
    data = (shared_dir / "oots/samples/exchange/birth-certificate/oots_request.xml").read_bytes()
    root = parse_xml(data)
    root.remove(root.find(f"{{{QUERY}}}Query"))
    with pytest.raises(XmlIntakeError) as caught:
        oots.validate(root)
    assert caught.value.path == "/query:QueryRequest"
    assert "Query" in caught.value.detail


def test_sdg_content_inside_lax_wildcards_is_validated(oots: SchemaCatalogue, shared_dir: Path) -> None:
    # sdg:* elements sit in rim:AnyValueType (lax): only a catalogue that loads the SDG
    # schemas together with RegRep catches errors there.
    data = (shared_dir / "oots/samples/exchange/birth-certificate/oots_request.xml").read_bytes()
    root = parse_xml(data)
    agent = next(root.iter(f"{{{SDG}}}Agent"))
    etree.SubElement(agent, f"{{{SDG}}}NoSuchThing")
    with pytest.raises(XmlIntakeError) as caught:
        oots.validate(root)
    assert (caught.value.path or "").endswith("/sdg:Agent/sdg:NoSuchThing")


def test_default_namespace_paths_are_readable(oots: SchemaCatalogue) -> None:
    root = parse_xml(
        f'<QueryRequest xmlns="{QUERY}" id="x"><ResponseOption returnType="Nope"/>'
        '<Query queryDefinition="q"/></QueryRequest>'.encode()
    )
    with pytest.raises(XmlIntakeError) as caught:
        oots.validate(root)
    assert caught.value.path == "/QueryRequest/ResponseOption"
    assert caught.value.line == 1


def test_unknown_namespace_and_unknown_root(oots: SchemaCatalogue) -> None:
    with pytest.raises(XmlIntakeError) as caught:
        oots.validate(parse_xml(b'<x:Foo xmlns:x="urn:nobody"/>'))
    assert (caught.value.status, caught.value.reason) == (422, "xml.unexpected_root")
    with pytest.raises(XmlIntakeError) as caught:
        oots.validate(parse_xml(f'<q:Nope xmlns:q="{QUERY}"/>'.encode()))
    assert (caught.value.status, caught.value.reason) == (422, "xml.unexpected_root")


def test_oots_index(oots: SchemaCatalogue) -> None:
    entries = {e.file.name: e for e in oots.entries()}
    assert len(entries) == 10
    assert entries["query.xsd"].namespace == QUERY
    assert "QueryRequest" in entries["query.xsd"].root_elements
    driver = entries["oots_driver_v1.0.0.xsd"]
    assert (driver.declared_version, driver.uses_xsd11, driver.engine) == ("1.1", False, "lxml")
    assert driver.xsd_version.startswith("1.1")
    assert {e.engine for e in entries.values()} == {"lxml"}
    assert oots.validator_for(QUERY) is oots.validator_for(SDG)  # one component, compiled once
    assert oots.validator_for("urn:nobody") is None
    assert QUERY in oots.namespaces()


def test_compiling_never_touches_the_network(shared_dir: Path, no_network: list[str]) -> None:
    catalogue = SchemaCatalogue([shared_dir / "oots" / "xsd"])
    catalogue.validate(
        parse_xml((shared_dir / "oots/samples/exchange/birth-certificate/oots_request.xml").read_bytes())
    )
    assert no_network == []


def test_to_json_of_an_oots_response(oots: SchemaCatalogue, shared_dir: Path, no_network: list[str]) -> None:
    data = (shared_dir / "oots/samples/exchange/birth-certificate/oots_response.xml").read_bytes()
    decoded = oots.to_json(parse_xml(data))
    assert list(decoded) == ["query:QueryResponse"]
    text = json.dumps(decoded)
    assert "rim:RegistryObjectList" in text
    assert no_network == []


# --- own assets: XSD 1.0 and a real XSD 1.1 schema -----------------------------------------


def evidence_doc(entries: int = 2, postal: str = "19053") -> bytes:
    items = "".join(
        f'<ev:Entry kind="main" seq="{i + 1}"><ev:Street>Am Markt</ev:Street>'
        "<ev:HouseNumber>1</ev:HouseNumber>"
        f"<ev:PostalCode>{postal}</ev:PostalCode><ev:Municipality>Schwerin</ev:Municipality>"
        "<ev:Ars>130040000000</ev:Ars><ev:From>2001-01-01</ev:From></ev:Entry>"
        for i in range(entries)
    )
    return (
        f'<ev:Evidence xmlns:ev="{EVIDENCE}"><ev:Header><ev:Id>0b7b3f63-2f8c-4a0e-9d54-6c1f2e3a4b5c</ev:Id>'
        "<ev:Issued>2024-05-01T10:00:00Z</ev:Issued><ev:Authority>Amt</ev:Authority>"
        "<ev:Jurisdiction>13004</ev:Jurisdiction></ev:Header><ev:Subject><ev:FamilyName>Mustermann</ev:FamilyName>"
        "<ev:GivenName>Erika</ev:GivenName><ev:BirthDate>1964-08-12</ev:BirthDate></ev:Subject>"
        f"{items}</ev:Evidence>"
    ).encode()


def range_doc(low: int, high: int) -> bytes:
    return f'<r:Range xmlns:r="{RANGE}">\n<r:Min>{low}</r:Min>\n<r:Max>{high}</r:Max>\n</r:Range>'.encode()


def test_engines_follow_real_xsd11_use(assets: SchemaCatalogue) -> None:
    entries = {e.file.name: e for e in assets.entries()}
    assert (entries["range11.xsd"].engine, entries["range11.xsd"].uses_xsd11) == ("xmlschema", True)
    assert entries["range11.xsd"].xsd_version == "1.1"
    assert (entries["evidence.xsd"].engine, entries["evidence.xsd"].xsd_version) == ("lxml", "1.0")
    assert assets.validator_for(RANGE).engine == "xmlschema"  # type: ignore[union-attr]
    assert assets.validator_for(EVIDENCE).engine == "lxml"  # type: ignore[union-attr]


def test_xsd11_assertion_is_enforced(assets: SchemaCatalogue) -> None:
    assets.validate(parse_xml(range_doc(1, 3)))
    with pytest.raises(XmlIntakeError) as caught:
        assets.validate(parse_xml(range_doc(5, 3)))
    assert (caught.value.reason, caught.value.path, caught.value.line) == (
        "xml.schema_invalid",
        "/r:Range",
        1,
    )
    assert "assert" in caught.value.detail
    with pytest.raises(XmlIntakeError) as caught:
        assets.validate(parse_xml(f'<r:Other xmlns:r="{RANGE}"/>'.encode()))
    assert caught.value.reason == "xml.unexpected_root"


def test_xsd11_type_errors_have_paths(assets: SchemaCatalogue) -> None:
    with pytest.raises(XmlIntakeError) as caught:
        assets.validate(parse_xml(range_doc(1, 3).replace(b">3<", b">three<")))
    assert (caught.value.path, caught.value.line) == ("/r:Range/r:Max", 3)


def test_evidence_schema(assets: SchemaCatalogue) -> None:
    assets.validate(parse_xml(evidence_doc()))
    with pytest.raises(XmlIntakeError) as caught:
        assets.validate(parse_xml(evidence_doc(postal="1905")))
    assert caught.value.path == "/ev:Evidence/ev:Entry[1]/ev:PostalCode"


def test_to_json_of_own_evidence_and_xsd11(assets: SchemaCatalogue) -> None:
    decoded = assets.to_json(parse_xml(evidence_doc(entries=2)))
    evidence = decoded["ev:Evidence"]
    assert evidence["ev:Subject"]["ev:BirthDate"] == "1964-08-12"
    assert [e["@seq"] for e in evidence["ev:Entry"]] == [1, 2]
    json.dumps(decoded)
    assert assets.to_json(parse_xml(range_doc(1, 2)))["r:Range"]["r:Max"] == 2
    with pytest.raises(XmlIntakeError) as caught:
        assets.to_json(parse_xml(evidence_doc(postal="x")))
    assert caught.value.reason == "xml.schema_invalid"


def test_validators_are_thread_safe(assets: SchemaCatalogue) -> None:
    good, bad = parse_xml(evidence_doc()), parse_xml(evidence_doc(postal="1"))
    failures: list[str] = []

    def work() -> None:
        for i in range(200):
            doc = good if i % 2 else bad
            try:
                assets.validate(doc)
                if doc is bad:
                    failures.append("invalid accepted")
            except XmlIntakeError as exc:
                if doc is good or not (exc.path or "").endswith("ev:PostalCode"):
                    failures.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# --- catalogue construction: resolution, shadowing, failures -----------------------------------


def test_unknown_remote_import_fails_clearly_without_network(tmp_path: Path, no_network: list[str]) -> None:
    write(
        tmp_path,
        "a.xsd",
        schema(
            "urn:a",
            '<xs:import namespace="urn:elsewhere" schemaLocation="http://127.0.0.1:9/elsewhere.xsd"/>'
            '<xs:element name="A" type="xs:string"/>',
        ),
    )
    with pytest.raises(CatalogueError) as caught:
        SchemaCatalogue([tmp_path])
    message = str(caught.value)
    assert "a.xsd" in message and "urn:elsewhere" in message and "http://127.0.0.1:9/elsewhere.xsd" in message
    assert no_network == []


def test_unknown_remote_include_fails_clearly_without_network(tmp_path: Path, no_network: list[str]) -> None:
    write(tmp_path, "a.xsd", schema("urn:a", '<xs:include schemaLocation="http://127.0.0.1:9/part.xsd"/>'))
    with pytest.raises(CatalogueError, match=r"a\.xsd.*part\.xsd"):
        SchemaCatalogue([tmp_path])
    assert no_network == []


def test_remote_locations_map_to_local_files(tmp_path: Path, no_network: list[str]) -> None:
    write(
        tmp_path,
        "lib/types.xsd",
        schema(
            "urn:types",
            '<xs:simpleType name="Code"><xs:restriction base="xs:string">'
            '<xs:length value="3"/></xs:restriction></xs:simpleType>',
        ),
    )
    # One import names the file remotely by its own name, one by an unrelated URL: both are
    # answered from the catalogue, by file name or by namespace.
    write(
        tmp_path,
        "main/a.xsd",
        schema(
            "urn:a",
            '<xs:import namespace="urn:types" schemaLocation="https://example.org/v1/types.xsd"/>'
            '<xs:element name="A" type="u:Code"/>',
            'xmlns:u="urn:types"',
        ),
    )
    write(
        tmp_path,
        "main/b.xsd",
        schema(
            "urn:b",
            '<xs:import namespace="urn:types" schemaLocation="http://example.org/whatever/renamed.xsd"/>'
            '<xs:element name="B" type="u:Code"/>',
            'xmlns:u="urn:types"',
        ),
    )
    catalogue = SchemaCatalogue([tmp_path])
    catalogue.validate(parse_xml(b'<a:A xmlns:a="urn:a">abc</a:A>'))
    with pytest.raises(XmlIntakeError):
        catalogue.validate(parse_xml(b'<b:B xmlns:b="urn:b">abcd</b:B>'))
    assert no_network == []


def test_import_without_location_resolves_by_namespace(tmp_path: Path) -> None:
    write(
        tmp_path,
        "types.xsd",
        schema("urn:types", '<xs:simpleType name="Code"><xs:restriction base="xs:int"/></xs:simpleType>'),
    )
    write(
        tmp_path,
        "a.xsd",
        schema(
            "urn:a",
            '<xs:import namespace="urn:types"/><xs:element name="A" type="u:Code"/>',
            'xmlns:u="urn:types"',
        ),
    )
    catalogue = SchemaCatalogue([tmp_path])
    catalogue.validate(parse_xml(b'<a:A xmlns:a="urn:a">12</a:A>'))
    with pytest.raises(XmlIntakeError):
        catalogue.validate(parse_xml(b'<a:A xmlns:a="urn:a">twelve</a:A>'))


def test_broken_schema_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, "ok.xsd", schema("urn:ok", '<xs:element name="Ok" type="xs:string"/>'))
    write(tmp_path, "broken.xsd", schema("urn:broken", '<xs:element name="X" type="t:Missing"/>'))
    with pytest.raises(CatalogueError, match=r"broken\.xsd:1: .*Missing"):
        SchemaCatalogue([tmp_path])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<xs:schema", "not well-formed"),
        ("<notaschema/>", "not an XML Schema document"),
        (schema("urn:x", '<xs:include schemaLocation="missing.xsd"/>'), "missing.xsd"),
        (
            '<!DOCTYPE xs:schema [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            + schema("urn:x", "<xs:annotation><xs:documentation>&e;</xs:documentation></xs:annotation>"),
            "not well-formed",
        ),
    ],
    ids=["malformed", "not-a-schema", "missing-include", "external-entity"],
)
def test_bad_schema_files_fail_fast(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path, "bad.xsd", text)
    with pytest.raises(CatalogueError, match=message) as caught:
        SchemaCatalogue([tmp_path])
    assert "bad.xsd" in str(caught.value)


def test_schema_with_internal_entities_is_accepted(tmp_path: Path) -> None:
    # The shape of W3C's xmldsig-core-schema.xsd: an internal subset with a namespace entity.
    write(
        tmp_path,
        "dsig.xsd",
        '<!DOCTYPE xs:schema [<!ENTITY ns "urn:dsig">]>\n'
        f'<xs:schema {XS} xmlns:d="&ns;" targetNamespace="&ns;">'
        '<xs:element name="S" type="xs:int"/></xs:schema>',
    )
    catalogue = SchemaCatalogue([tmp_path])
    catalogue.validate(parse_xml(b'<d:S xmlns:d="urn:dsig">1</d:S>'))


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="does not exist"):
        SchemaCatalogue([tmp_path / "nope"])


def test_empty_catalogue_knows_nothing(tmp_path: Path) -> None:
    catalogue = SchemaCatalogue([tmp_path])
    assert catalogue.entries() == []
    with pytest.raises(XmlIntakeError) as caught:
        catalogue.validate(parse_xml(b"<a/>"))
    assert caught.value.reason == "xml.unexpected_root"


def test_first_directory_owns_a_namespace(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write(first, "v2.xsd", schema("urn:s", '<xs:element name="S" type="xs:int"/>'))
    write(second, "v1.xsd", schema("urn:s", '<xs:element name="S" type="xs:string"/>'))
    catalogue = SchemaCatalogue([first, second])
    entries = {e.file.name: e for e in catalogue.entries()}
    assert entries["v1.xsd"].shadowed_by == entries["v2.xsd"].file
    assert entries["v2.xsd"].shadowed_by is None
    with pytest.raises(XmlIntakeError):
        catalogue.validate(parse_xml(b'<s:S xmlns:s="urn:s">text</s:S>'))


def test_namespace_split_over_files(tmp_path: Path) -> None:
    # Two independent files of one namespace, plus a chameleon include, plus a no-namespace schema.
    write(tmp_path, "one.xsd", schema("urn:s", '<xs:element name="One" type="xs:int"/>'))
    write(
        tmp_path,
        "two.xsd",
        schema("urn:s", '<xs:include schemaLocation="common/shape.xsd"/><xs:element name="Two" type="t:Shape"/>'),
    )
    write(
        tmp_path,
        "common/shape.xsd",
        f'<xs:schema {XS}><xs:simpleType name="Shape"><xs:restriction base="xs:boolean"/></xs:simpleType></xs:schema>',
    )
    write(tmp_path, "plain.xsd", f'<xs:schema {XS}><xs:element name="Plain" type="xs:date"/></xs:schema>')
    catalogue = SchemaCatalogue([tmp_path])
    catalogue.validate(parse_xml(b'<s:One xmlns:s="urn:s">1</s:One>'))
    catalogue.validate(parse_xml(b'<s:Two xmlns:s="urn:s">true</s:Two>'))
    catalogue.validate(parse_xml(b"<Plain>2024-01-01</Plain>"))
    with pytest.raises(XmlIntakeError):
        catalogue.validate(parse_xml(b'<s:Two xmlns:s="urn:s">maybe</s:Two>'))
    with pytest.raises(XmlIntakeError):
        catalogue.validate(parse_xml(b"<Plain>soon</Plain>"))


def test_hidden_directories_are_not_scanned(tmp_path: Path) -> None:
    write(tmp_path, ".git/junk.xsd", "not even xml")
    write(tmp_path, "ok.xsd", schema("urn:ok", '<xs:element name="Ok" type="xs:string"/>'))
    assert [e.file.name for e in SchemaCatalogue([tmp_path]).entries()] == ["ok.xsd"]


def test_xsd11_features_detected(tmp_path: Path) -> None:
    write(tmp_path, "t.xsd", schema("urn:t", '<xs:element name="T" type="xs:dateTimeStamp"/>'))
    entry = SchemaCatalogue([tmp_path]).entries()[0]
    assert (entry.uses_xsd11, entry.engine) == (True, "xmlschema")


# --- importing third-party sets ------------------------------------------------------------------


def test_import_directory(shared_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "schemas"
    imported = import_schemas(shared_dir / "oots" / "xsd", dest, name="oots")
    assert len(imported) == 10
    assert all(e.file.is_file() and e.file.is_relative_to(dest.resolve() / "oots") for e in imported)
    assert not list(dest.glob(".import-*"))
    SchemaCatalogue([dest]).validate(
        parse_xml((shared_dir / "oots/samples/exchange/birth-certificate/oots_request.xml").read_bytes())
    )
    with pytest.raises(CatalogueError, match="already exists"):
        import_schemas(shared_dir / "oots" / "xsd", dest, name="oots")


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_import_zip_takes_only_xsd_files(shared_dir: Path, tmp_path: Path) -> None:
    source = shared_dir / "oots" / "xsd"
    members = {f"edm/{p.relative_to(source).as_posix()}": p.read_bytes() for p in source.rglob("*.xsd")}
    members["edm/README.txt"] = b"not a schema"
    members["edm/run.sh"] = b"#!/bin/sh"
    archive = make_zip(tmp_path / "edm-v1.zip", members)
    imported = import_schemas(archive, tmp_path / "dest")
    assert len(imported) == 10
    copied = sorted(p.name for p in (tmp_path / "dest" / "edm-v1").rglob("*") if p.is_file())
    assert "README.txt" not in copied and "run.sh" not in copied and len(copied) == 10


@pytest.mark.parametrize(
    "member", ["../evil.xsd", "a/../../evil.xsd", "/etc/evil.xsd", "C:/evil.xsd", "a\\..\\evil.xsd"]
)
def test_import_zip_refuses_escaping_names(tmp_path: Path, member: str) -> None:
    archive = make_zip(tmp_path / "bad.zip", {member: schema("urn:e", "").encode()})
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(CatalogueError, match="unsafe path"):
        import_schemas(archive, dest)
    assert not (tmp_path / "evil.xsd").exists() and not (tmp_path / "dest" / "evil.xsd").exists()
    assert not dest.exists() or not any(dest.iterdir())


def test_import_zip_refuses_symlinks(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link.xsd")
    info.external_attr = 0o120777 << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as archive:
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(CatalogueError, match="symbolic link"):
        import_schemas(tmp_path / "link.zip", tmp_path / "dest")


def test_import_refuses_oversized_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalogue_import, "SCHEMA_FILE_LIMITS", XmlLimits(max_bytes=100))
    big = schema("urn:big", "<!--" + "x" * 200 + "-->").encode()
    with pytest.raises(CatalogueError, match="larger than 100 bytes"):
        import_schemas(make_zip(tmp_path / "big.zip", {"big.xsd": big}), tmp_path / "dest")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "big.xsd").write_bytes(big)
    with pytest.raises(CatalogueError, match="larger than 100 bytes"):
        import_schemas(tmp_path / "dir", tmp_path / "dest")


def test_import_refuses_symlinked_files(tmp_path: Path) -> None:
    source = tmp_path / "src"
    write(source, "ok.xsd", schema("urn:ok", ""))
    outside = write(tmp_path, "outside.xsd", schema("urn:out", ""))
    (source / "link.xsd").symlink_to(outside)
    with pytest.raises(CatalogueError, match="symbolic link"):
        import_schemas(source, tmp_path / "dest")


def test_import_of_a_broken_set_leaves_nothing_behind(tmp_path: Path) -> None:
    source = tmp_path / "src"
    write(source, "a.xsd", schema("urn:a", '<xs:import namespace="urn:missing"/>'))
    dest = tmp_path / "dest"
    with pytest.raises(CatalogueError, match="urn:missing"):
        import_schemas(source, dest)
    assert list(dest.iterdir()) == []


def test_import_checks_against_context_dirs(shared_dir: Path, tmp_path: Path) -> None:
    # A set that extends RegRep compiles only together with the schemas already installed.
    source = tmp_path / "ext"
    write(
        source,
        "ext.xsd",
        schema(
            "urn:ext",
            f'<xs:import namespace="{RIM}" schemaLocation="http://docs.oasis-open.org/regrep/regrep-core/v4.0/os/xsd/rim.xsd"/>'
            '<xs:element name="E" type="rim:SlotType"/>',
            f'xmlns:rim="{RIM}"',
        ),
    )
    with pytest.raises(CatalogueError):
        import_schemas(source, tmp_path / "dest")
    imported = import_schemas(source, tmp_path / "dest", context_dirs=[shared_dir / "oots" / "xsd"])
    assert [e.namespace for e in imported] == ["urn:ext"]


def test_import_refuses_what_is_neither_dir_nor_zip(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(CatalogueError, match="neither"):
        import_schemas(tmp_path / "x.txt", tmp_path / "dest")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CatalogueError, match="no .xsd files"):
        import_schemas(empty, tmp_path / "dest")


def test_shared_data_is_not_modified(shared_dir: Path, tmp_path: Path) -> None:
    # import copies, it never moves: the shared set stays as it was.
    before = sorted(p.name for p in (shared_dir / "oots" / "xsd").rglob("*.xsd"))
    import_schemas(shared_dir / "oots" / "xsd", tmp_path / "d")
    assert sorted(p.name for p in (shared_dir / "oots" / "xsd").rglob("*.xsd")) == before
    shutil.rmtree(tmp_path / "d")


def test_directories_with_spaces_and_umlauts(tmp_path: Path, no_network: list[str]) -> None:
    root = tmp_path / "Schemata für Ämter" / "v 1"
    write(
        root,
        "types/base types.xsd",
        schema("urn:types", '<xs:simpleType name="Code"><xs:restriction base="xs:int"/></xs:simpleType>'),
    )
    write(
        root,
        "main/a.xsd",
        schema(
            "urn:a",
            '<xs:include schemaLocation="a%20part.xsd"/>'
            '<xs:import namespace="urn:types" schemaLocation="../types/base%20types.xsd"/>'
            '<xs:element name="A" type="u:Code"/>',
            'xmlns:u="urn:types"',
        ),
    )
    write(root, "main/a part.xsd", schema("urn:a", '<xs:element name="Part" type="xs:boolean"/>'))
    catalogue = SchemaCatalogue([root])
    catalogue.validate(parse_xml(b'<a:A xmlns:a="urn:a">7</a:A>'))
    catalogue.validate(parse_xml(b'<a:Part xmlns:a="urn:a">true</a:Part>'))
    write(root, "main/r.xsd", (ASSETS / "range11.xsd").read_text())  # an xmlschema component too
    SchemaCatalogue([root]).validate(parse_xml(range_doc(1, 2)))
    assert no_network == []


def test_prepare_json_builds_every_decoder(assets: SchemaCatalogue) -> None:
    assets.prepare_json()
    assert assets.to_json(parse_xml(range_doc(1, 2)))["r:Range"]["r:Min"] == 1


def test_import_refuses_a_corrupt_zip(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "x.zip", {"a.xsd": schema("urn:a", "").encode() * 50})
    data = bytearray(archive.read_bytes())
    start = data.index(b"PK\x03\x04") + 40
    data[start : start + 20] = b"\x00" * 20  # damage the member, keep the directory
    archive.write_bytes(bytes(data))
    with pytest.raises(CatalogueError):
        import_schemas(archive, tmp_path / "dest")


def test_unescaped_schema_location_is_named(tmp_path: Path) -> None:
    write(tmp_path, "a.xsd", schema("urn:a", '<xs:include schemaLocation="a part.xsd"/>'))
    write(tmp_path, "a part.xsd", schema("urn:a", ""))
    with pytest.raises(CatalogueError, match=r"a\.xsd: schemaLocation 'a part\.xsd' is not a URI"):
        SchemaCatalogue([tmp_path])
