import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from broker.xml.catalogue import SchemaCatalogue
from broker.xml.hardened import (
    DEFAULT_LIMITS,
    STATUS,
    XmlIntakeError,
    XmlLimits,
    check_media_type,
    element_path,
    expect_root,
    parse_document,
    parse_xml,
)
from tests.xml.hostile import CASES, EXPECTED_ROOT, MINIMAL_QUERY_REQUEST, OOTS_MEDIA_TYPE, HostileCase

HANG_GUARD_SECONDS = 1.0


@pytest.fixture(scope="module")
def oots(shared_dir: Path) -> SchemaCatalogue:
    return SchemaCatalogue([shared_dir / "oots" / "xsd"])


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def intake(case: HostileCase, body: bytes, catalogue: SchemaCatalogue) -> None:
    """What an XML endpoint expecting an OOTS QueryRequest does, in order."""
    check_media_type(case.content_type_or(OOTS_MEDIA_TYPE), {OOTS_MEDIA_TYPE, "application/xml"})
    root = parse_xml(body)
    expect_root(root, {EXPECTED_ROOT})
    catalogue.validate(root)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_case_is_refused_quickly_with_its_reason(
    case: HostileCase, oots: SchemaCatalogue, no_network: None
) -> None:
    body = case.payload()  # built outside the timed call: we time the intake, not the generator
    started = time.monotonic()
    with pytest.raises(XmlIntakeError) as caught:
        intake(case, body, oots)
    elapsed = time.monotonic() - started
    assert (caught.value.status, caught.value.reason) == (case.status, case.reason), caught.value
    assert elapsed < HANG_GUARD_SECONDS, f"{case.name} took {elapsed:.2f}s"


@pytest.mark.parametrize("case", [c for c in CASES if c.stage == "parse"], ids=lambda c: c.name)
def test_parse_stage_cases_fail_in_parse_xml_itself(case: HostileCase) -> None:
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(case.payload())
    assert caught.value.reason == case.reason
    assert caught.value.status == STATUS[case.reason]


def test_corpus_covers_the_brief() -> None:
    names = {c.name for c in CASES}
    for required in (
        "billion_laughs",
        "quadratic_blowup",
        "xxe_file",
        "xxe_http",
        "parameter_entities",
        "xinclude",
        "doctype_internal_subset",
        "oversize_100mb",
        "deep_nesting_10000",
        "invalid_utf8",
        "utf16_without_bom",
        "utf16_with_bom_reaches_schema",
        "declared_utf8_but_latin1",
        "wrong_root",
        "wrong_namespace",
        "schema_invalid_enum",
        "trailing_garbage",
        "empty_body",
    ):
        assert required in names
    assert len(names) == len(CASES)
    assert {c.stage for c in CASES} <= {"media", "parse", "root", "schema"}


def test_minimal_request_passes_the_whole_intake(oots: SchemaCatalogue) -> None:
    utf16 = MINIMAL_QUERY_REQUEST.replace("UTF-8", "UTF-16").encode("utf-16")
    for body in (MINIMAL_QUERY_REQUEST.encode(), utf16):
        root = parse_xml(body)
        expect_root(root, {EXPECTED_ROOT})
        oots.validate(root)


# --- encodings the XML spec allows ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "<a>Grüße</a>".encode(),
        b"\xef\xbb\xbf<a>Gr\xc3\xbc\xc3\x9fe</a>",
        '<?xml version="1.0" encoding="UTF-16"?><a>Grüße</a>'.encode("utf-16"),
        "<a>Grüße</a>".encode("utf-16-be").join([b"\xfe\xff", b""]),
        '<?xml version="1.0" encoding="ISO-8859-1"?><a>Grüße</a>'.encode("latin-1"),
        '<?xml version="1.0" encoding="windows-1252"?><a>Grüße</a>'.encode("cp1252"),
    ],
    ids=["utf8", "utf8-bom", "utf16-bom-declared", "utf16be-bom", "latin1-declared", "cp1252-declared"],
)
def test_allowed_encodings_decode_correctly(body: bytes) -> None:
    assert parse_xml(body).text == "Grüße"


def test_utf16_with_invalid_code_units_is_a_bad_encoding() -> None:
    body = "<a>x</a>".encode("utf-16") + b"\x00\xdc"  # a lone low surrogate
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(body)
    assert caught.value.reason == "xml.bad_encoding"


def test_unknown_declared_encoding_is_a_bad_encoding() -> None:
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(b'<?xml version="1.0" encoding="X-NO-SUCH"?><a/>')
    assert (caught.value.status, caught.value.reason) == (400, "xml.bad_encoding")


# --- errors carry positions ------------------------------------------------------------------


def test_malformed_error_has_line_and_column() -> None:
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(b"<a>\n  <b>\n</a>")
    error = caught.value
    assert (error.status, error.reason) == (400, "xml.malformed")
    assert error.line == 3 and error.column is not None
    assert "mismatch" in error.detail


def test_doctype_error_points_at_the_doctype() -> None:
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(b'<?xml version="1.0"?>\n<!-- hello -->\n  <!DOCTYPE a><a/>')
    assert (caught.value.line, caught.value.column) == (3, 3)


def test_doctype_after_a_long_comment_is_still_found() -> None:
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(b"<!--" + b"x" * 100_000 + b"-->\n<!DOCTYPE a><a/>")
    assert caught.value.reason == "xml.doctype_forbidden"


def test_doctype_text_inside_content_is_not_a_doctype() -> None:
    root = parse_xml(b"<a><![CDATA[<!DOCTYPE html>]]><!-- <!DOCTYPE x> --></a>")
    assert root.text == "<!DOCTYPE html>"


def test_xinclude_error_names_the_element() -> None:
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(b'<a><b><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="x"/></b></a>')
    assert caught.value.path == "/a/b/xi:include"


@pytest.mark.parametrize(
    "body",
    [
        b'<a xmlns:xi="http://www.w3.org/2001/&#88;Include"><xi:include href="x"/></a>',
        b'<a xmlns:xi="http://www.w3.org/2001/&#x58;Include"><xi:include href="x"/></a>',
        b'<a><b xmlns="http://www.w3.org/2003/XInclude"><include href="x"/></b></a>',
        b'<?xml version="1.0" encoding="ISO-8859-1"?><a><xi:include xmlns:xi="http://www.w3.org/2001/XInclude"/></a>',
        '<a><xi:include xmlns:xi="http://www.w3.org/2001/XInclude"/></a>'.encode("utf-16"),
    ],
    ids=["char-ref", "hex-char-ref", "old-namespace-default", "latin1", "utf16"],
)
def test_xinclude_is_found_however_it_is_spelled(body: bytes) -> None:
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(body)
    assert caught.value.reason == "xml.xinclude_forbidden"


def test_error_message_and_dict() -> None:
    error = XmlIntakeError.of("xml.schema_invalid", "bad", 3, 4, "/a/b")
    assert str(error) == "xml.schema_invalid: bad [/a/b]"
    assert error.as_dict() == {
        "status": 422,
        "reason": "xml.schema_invalid",
        "detail": "bad",
        "line": 3,
        "column": 4,
        "path": "/a/b",
    }


# --- limits ----------------------------------------------------------------------------------


def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(b"<a>" + b"x" * 100 + b"</a>", XmlLimits(max_bytes=50))
    assert (caught.value.status, caught.value.reason) == (413, "xml.too_large")


def test_default_depth_limit_is_libxml2s() -> None:
    ok = b"<a>" * DEFAULT_LIMITS.max_depth + b"</a>" * DEFAULT_LIMITS.max_depth
    parse_xml(ok)
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(b"<a>" + ok + b"</a>")
    assert caught.value.reason == "xml.too_deep"


def test_smaller_limits_are_enforced_while_parsing() -> None:
    limits = XmlLimits(max_depth=5, max_elements=10)
    parse_xml(b"<a>" * 5 + b"</a>" * 5, limits)
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(b"<a>" * 6 + b"</a>" * 6, limits)
    assert caught.value.reason == "xml.too_deep"
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(b"<r>" + b"<a/>" * 10 + b"</r>", limits)
    assert caught.value.reason == "xml.too_many_elements"


def test_element_limit_cuts_a_huge_document_off_early() -> None:
    body = b"<r>" + b"<a/>" * 2_400_000 + b"</r>"  # ~9.6 MB, under the byte limit
    started = time.monotonic()
    with pytest.raises(XmlIntakeError) as caught:
        parse_xml(body)
    assert caught.value.reason == "xml.too_many_elements"
    assert time.monotonic() - started < HANG_GUARD_SECONDS


def test_large_valid_document_parses_incrementally() -> None:
    body = b"<r>" + b"<a>x</a>" * 150_000 + b"</r>"  # above the fast-path size, under the limits
    assert len(parse_xml(body)) == 150_000


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        XmlLimits(max_depth=1000)
    with pytest.raises(ValueError):
        XmlLimits(max_bytes=0)


# --- media type, root, paths --------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/xml", "Application/XML; charset=utf-8", "application/x-ebrs+xml ;q=1"]
)
def test_media_type_accepted(content_type: str) -> None:
    assert check_media_type(content_type, {"application/xml", "application/x-ebrs+xml"}) in {
        "application/xml",
        "application/x-ebrs+xml",
    }


@pytest.mark.parametrize("content_type", [None, "", "text/xml", "application/json", "application/xml-dtd"])
def test_media_type_refused(content_type: str | None) -> None:
    with pytest.raises(XmlIntakeError) as caught:
        check_media_type(content_type, {"application/xml"})
    assert (caught.value.status, caught.value.reason) == (415, "xml.unsupported_media_type")


def test_expect_root() -> None:
    root = parse_xml(b'<q:QueryResponse xmlns:q="urn:q"/>')
    expect_root(root, {"{urn:q}QueryResponse"})
    with pytest.raises(XmlIntakeError) as caught:
        expect_root(root, {"{urn:q}QueryRequest"})
    assert (caught.value.status, caught.value.reason, caught.value.path) == (
        422,
        "xml.unexpected_root",
        "/q:QueryResponse",
    )


def test_element_path_indexes_same_name_siblings_only() -> None:
    root = parse_xml(b'<r xmlns:p="urn:p"><p:s/><x/><p:s><y/></p:s></r>')
    assert element_path(root[2][0]) == "/r/p:s[2]/y"
    assert element_path(root[1]) == "/r/x"


def test_parse_document_returns_the_tree() -> None:
    tree = parse_document(b"<a/>")
    assert isinstance(tree, etree._ElementTree) and tree.getroot().tag == "a"


def test_no_resolution_ever_reaches_the_filesystem(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    for body in (
        f'<!DOCTYPE a [<!ENTITY x SYSTEM "{secret.as_uri()}">]><a>&x;</a>'.encode(),
        f'<a xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{secret}"/></a>'.encode(),
    ):
        with pytest.raises(XmlIntakeError) as caught:
            parse_xml(body)
        assert "TOP SECRET" not in str(caught.value)


def test_parser_is_safe_to_use_from_many_threads() -> None:
    good, bad = b"<a><b>1</b></a>", b"<a><b>1</a>"
    failures: list[str] = []

    def work() -> None:
        for i in range(300):
            body = good if i % 2 else bad
            try:
                root = parse_xml(body)
                if body is bad or root.findtext("b") != "1":
                    failures.append("bad accepted")
            except XmlIntakeError as exc:
                if body is good or exc.reason != "xml.malformed":
                    failures.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# --- no input escapes as anything but XmlIntakeError ------------------------------------------

_SEED_BODIES = [case.payload() for case in CASES if not callable(case.body)] + [MINIMAL_QUERY_REQUEST.encode()]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEED_BODIES),
    cut=st.integers(min_value=0, max_value=5000),
    insert=st.binary(max_size=12),
    noise=st.binary(max_size=64),
)
def test_mangled_bodies_only_ever_raise_intake_errors(seed: bytes, cut: int, insert: bytes, noise: bytes) -> None:
    cut = min(cut, len(seed))
    for body in (seed[:cut] + insert + seed[cut:], seed[:cut], noise, insert + seed):
        try:
            parse_xml(body)
        except XmlIntakeError as exc:
            assert exc.reason in STATUS and exc.status == STATUS[exc.reason]


def test_large_parses_leave_the_cyclic_collector_as_they_found_it() -> None:
    import gc

    huge = b"<r>" + b"<a/>" * 300_000 + b"</r>"
    assert gc.isenabled()
    with pytest.raises(XmlIntakeError):
        parse_xml(huge)
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(XmlIntakeError):
            parse_xml(huge)
        assert not gc.isenabled()
    finally:
        gc.enable()
