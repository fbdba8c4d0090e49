"""Hostile XML inputs, as data, for any code path that takes XML from outside.

Each case says what a correct intake answers: an HTTP status and a stable reason code (see
``broker.xml.hardened``). ``stage`` says which check must refuse it:

- ``media``  — the Content-Type check (``check_media_type``), before the body is read;
- ``parse``  — ``parse_xml`` itself (safety, well-formedness, encoding, limits);
- ``root``   — the endpoint's expected-root check (these cases expect an OOTS
  ``query:QueryRequest``, see ``EXPECTED_ROOT``);
- ``schema`` — schema validation with the OOTS EDM v1 schemas (``../shared/oots/xsd``).

``parse`` and ``media`` cases are refused identically by every XML endpoint; ``root`` and
``schema`` cases are written for the ``/oots/edm`` endpoint (or anything else expecting a
``query:QueryRequest``). ``content_type`` None means "send the endpoint's own XML media
type". Big bodies are built on demand (``payload()`` / ``chunks()``), never at import.

No test framework in here on purpose: endpoint tests parametrise over ``CASES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

QUERY_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0"
EXPECTED_ROOT = f"{{{QUERY_NS}}}QueryRequest"
OOTS_MEDIA_TYPE = "application/x-ebrs+xml"

# Schema-valid against the EDM v1 XSDs, semantically empty: the base for the schema cases.
MINIMAL_QUERY_REQUEST = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<query:QueryRequest xmlns:query="{QUERY_NS}" id="urn:uuid:0b7b3f63-2f8c-4a0e-9d54-6c1f2e3a4b5c">\n'
    '  <query:ResponseOption returnType="LeafClassWithRepositoryItem"/>\n'
    '  <query:Query queryDefinition="DocumentQuery"/>\n'
    "</query:QueryRequest>\n"
)


@dataclass(frozen=True)
class HostileCase:
    name: str
    body: bytes | Callable[[], bytes]
    status: int
    reason: str
    stage: str = "parse"
    content_type: str | None = None
    note: str = ""

    def payload(self) -> bytes:
        return self.body() if callable(self.body) else self.body

    def chunks(self, size: int = 1024 * 1024) -> Iterator[bytes]:
        """The body in pieces, for streaming uploads of the big cases."""
        data = self.payload()
        for offset in range(0, len(data), size):
            yield data[offset : offset + size]

    def content_type_or(self, default: str) -> str:
        return self.content_type or default


def _query(inner: str = "", root_attrs: str = "") -> str:
    return (
        f'<query:QueryRequest xmlns:query="{QUERY_NS}" id="urn:uuid:1"{root_attrs}>'
        f'<query:ResponseOption returnType="LeafClassWithRepositoryItem"/>'
        f'<query:Query queryDefinition="DocumentQuery"/>{inner}</query:QueryRequest>'
    )


def _billion_laughs() -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE query:QueryRequest [\n'
        + "\n".join(entities)
        + "\n]>\n"
        + _query(root_attrs=' comment="&lol9;"')
    ).encode()


def _quadratic() -> bytes:
    blob = "A" * 100_000
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE query:QueryRequest [<!ENTITY a "{blob}">]>\n'
        + _query(root_attrs=f' comment="{"&a;" * 20_000}"')
    ).encode()


def _doctype(subset: str) -> bytes:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE query:QueryRequest {subset}>\n' + _query()).encode()


def _with_entity(declaration: str, reference: str = "&x;") -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE query:QueryRequest [{declaration}]>\n'
        + _query(root_attrs=f' comment="{reference}"')
    ).encode()


def _oversize() -> bytes:
    # 100 MiB of whitespace between two elements: well-formed, just far too big.
    head, tail = _query().encode().split(b"<query:Query ", 1)
    return b"".join([head, b" " * (100 * 1024 * 1024), b"<query:Query ", tail])


def _deep(levels: int) -> bytes:
    return (
        f'<query:QueryRequest xmlns:query="{QUERY_NS}">'.encode()
        + b"<a>" * levels
        + b"</a>" * levels
        + b"</query:QueryRequest>"
    )


def _many_elements(count: int) -> bytes:
    start = f'<query:QueryRequest xmlns:query="{QUERY_NS}">'.encode()
    return start + b"<a/>" * count + b"</query:QueryRequest>"


_XINCLUDE = _query(
    '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>'
).encode()

CASES: list[HostileCase] = [
    # --- entity and DTD attacks: any DOCTYPE is refused before libxml2 reads it -------------
    HostileCase("billion_laughs", _billion_laughs(), 400, "xml.doctype_forbidden"),
    HostileCase("quadratic_blowup", _quadratic, 400, "xml.doctype_forbidden"),
    HostileCase("xxe_file", _with_entity('<!ENTITY x SYSTEM "file:///etc/passwd">'), 400, "xml.doctype_forbidden"),
    HostileCase(
        "xxe_http",
        _with_entity('<!ENTITY x SYSTEM "http://127.0.0.1:9/x">'),
        400,
        "xml.doctype_forbidden",
        note="must not open a connection",
    ),
    HostileCase(
        "parameter_entities",
        _with_entity('<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;', reference="x"),
        400,
        "xml.doctype_forbidden",
    ),
    HostileCase("external_dtd", _doctype('SYSTEM "http://127.0.0.1:9/x.dtd"'), 400, "xml.doctype_forbidden"),
    HostileCase(
        "doctype_internal_subset",
        _doctype("[<!ATTLIST query:QueryRequest extra CDATA 'x'>]"),
        400,
        "xml.doctype_forbidden",
    ),
    HostileCase("doctype_plain", _doctype(""), 400, "xml.doctype_forbidden"),
    HostileCase(
        "xinclude",
        _XINCLUDE,
        400,
        "xml.xinclude_forbidden",
        note="refused, not merely left unprocessed: a lax wildcard would let it through",
    ),
    # --- size and shape limits ------------------------------------------------------------
    HostileCase("oversize_100mb", _oversize, 413, "xml.too_large"),
    HostileCase("deep_nesting_10000", _deep(10_000), 400, "xml.too_deep"),
    HostileCase("many_elements_300000", lambda: _many_elements(300_000), 400, "xml.too_many_elements"),
    # --- encodings ------------------------------------------------------------------------
    HostileCase(
        "invalid_utf8",
        _query(root_attrs=' comment="caf\udce9"').encode("utf-8", "surrogateescape"),
        400,
        "xml.bad_encoding",
    ),
    HostileCase(
        "utf16_without_bom",
        ('<?xml version="1.0" encoding="UTF-16"?>' + _query()).encode("utf-16-le"),
        400,
        "xml.bad_encoding",
    ),
    HostileCase(
        "declared_utf8_but_latin1",
        ('<?xml version="1.0" encoding="UTF-8"?>' + _query(root_attrs=' comment="Müller"')).encode("latin-1"),
        400,
        "xml.bad_encoding",
    ),
    HostileCase(
        "declared_utf16_but_utf8",
        ('<?xml version="1.0" encoding="UTF-16"?>' + _query()).encode("utf-8"),
        400,
        "xml.bad_encoding",
    ),
    HostileCase(
        "utf16_bom_declared_utf8",
        ('<?xml version="1.0" encoding="UTF-8"?>' + _query()).encode("utf-16"),
        400,
        "xml.bad_encoding",
    ),
    HostileCase(
        "utf16_with_bom_reaches_schema",
        ('<?xml version="1.0" encoding="UTF-16"?>' + _query("<query:Bogus/>")).encode("utf-16"),
        422,
        "xml.schema_invalid",
        stage="schema",
        note="UTF-16 with a BOM is accepted; the schema check then finds the unknown element",
    ),
    # --- well-formedness ------------------------------------------------------------------
    HostileCase("empty_body", b"", 400, "xml.empty"),
    HostileCase("whitespace_only", b" \r\n\t ", 400, "xml.empty"),
    HostileCase("trailing_garbage", (_query() + "garbage").encode(), 400, "xml.malformed"),
    HostileCase("second_root", (_query() + _query()).encode(), 400, "xml.malformed"),
    HostileCase("truncated", _query().encode()[:-10], 400, "xml.malformed"),
    HostileCase("not_xml_json", b'{"evidence_type": "x"}', 400, "xml.malformed"),
    HostileCase("undeclared_prefix", _query("<rim:Slot/>").encode(), 400, "xml.malformed"),
    # --- transport ------------------------------------------------------------------------
    HostileCase(
        "wrong_media_type",
        MINIMAL_QUERY_REQUEST.encode(),
        415,
        "xml.unsupported_media_type",
        stage="media",
        content_type="text/plain",
    ),
    # --- right syntax, wrong document -------------------------------------------------------
    HostileCase(
        "wrong_root",
        f'<query:QueryResponse xmlns:query="{QUERY_NS}" status="x"/>'.encode(),
        422,
        "xml.unexpected_root",
        stage="root",
    ),
    HostileCase(
        "wrong_namespace",
        _query().replace(QUERY_NS, "urn:example:not-regrep").encode(),
        422,
        "xml.unexpected_root",
        stage="root",
    ),
    HostileCase(
        "schema_invalid_enum",
        _query().replace("LeafClassWithRepositoryItem", "EverythingPlease").encode(),
        422,
        "xml.schema_invalid",
        stage="schema",
    ),
    HostileCase(
        "schema_missing_required_element",
        _query().replace('<query:Query queryDefinition="DocumentQuery"/>', "").encode(),
        422,
        "xml.schema_invalid",
        stage="schema",
    ),
    HostileCase(
        "schema_unknown_element",
        _query(f'<query:Unexpected xmlns:query="{QUERY_NS}"/>').encode(),
        422,
        "xml.schema_invalid",
        stage="schema",
    ),
]

BY_NAME: dict[str, HostileCase] = {case.name: case for case in CASES}
