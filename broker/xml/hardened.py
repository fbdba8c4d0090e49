"""The one door every inbound XML byte goes through.

Policy: no DOCTYPE at all (so no entities, internal or external), no network, no XInclude,
no DTD loading, no huge-tree mode, and hard limits on size, depth and element count. Every
failure is an :class:`XmlIntakeError` with a stable reason code, an HTTP status and, where
known, a line/column; nothing else escapes :func:`parse_xml` for any input.
"""

from __future__ import annotations

import codecs
import gc
import re
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lxml import etree

# Reason codes are part of the public contract (problem+json bodies, CLI output, tests):
# never rename one, only add.
EMPTY = "xml.empty"
TOO_LARGE = "xml.too_large"
MALFORMED = "xml.malformed"
DOCTYPE_FORBIDDEN = "xml.doctype_forbidden"
XINCLUDE_FORBIDDEN = "xml.xinclude_forbidden"
TOO_DEEP = "xml.too_deep"
TOO_MANY_ELEMENTS = "xml.too_many_elements"
BAD_ENCODING = "xml.bad_encoding"
UNSUPPORTED_MEDIA_TYPE = "xml.unsupported_media_type"
UNEXPECTED_ROOT = "xml.unexpected_root"
SCHEMA_INVALID = "xml.schema_invalid"

STATUS: dict[str, int] = {
    EMPTY: 400,
    TOO_LARGE: 413,
    MALFORMED: 400,
    DOCTYPE_FORBIDDEN: 400,
    XINCLUDE_FORBIDDEN: 400,
    TOO_DEEP: 400,
    TOO_MANY_ELEMENTS: 400,
    BAD_ENCODING: 400,
    UNSUPPORTED_MEDIA_TYPE: 415,
    UNEXPECTED_ROOT: 422,
    SCHEMA_INVALID: 422,
}

# libxml2 refuses deeper documents unless XML_PARSE_HUGE is set, which we never set;
# a configured limit above this could therefore never be reached.
LIBXML2_MAX_DEPTH = 256

XINCLUDE_TAGS = ("{http://www.w3.org/2001/XInclude}*", "{http://www.w3.org/2003/XInclude}*")


@dataclass(frozen=True, slots=True)
class XmlLimits:
    max_bytes: int = 10 * 1024 * 1024
    max_depth: int = LIBXML2_MAX_DEPTH
    max_elements: int = 200_000

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_depth, self.max_elements) < 1:
            raise ValueError("XML limits must be positive")
        if self.max_depth > LIBXML2_MAX_DEPTH:
            raise ValueError(f"max_depth cannot exceed libxml2's {LIBXML2_MAX_DEPTH} without huge_tree")


DEFAULT_LIMITS = XmlLimits()


class XmlIntakeError(Exception):
    """A refused XML input. ``reason`` is a stable machine code, ``detail`` is for humans."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}" + (f" [{path}]" if path else ""))
        self.status = status
        self.reason = reason
        self.detail = detail
        self.line = line or None  # libxml2 reports 0 when it does not know
        self.column = column or None
        self.path = path

    @classmethod
    def of(
        cls,
        reason: str,
        detail: str,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> XmlIntakeError:
        return cls(STATUS[reason], reason, detail, line, column, path)

    def as_dict(self) -> dict[str, Any]:
        """The fields a problem+json body or a log line needs."""
        return {
            "status": self.status,
            "reason": self.reason,
            "detail": self.detail,
            "line": self.line,
            "column": self.column,
            "path": self.path,
        }

    def __repr__(self) -> str:
        return (
            f"XmlIntakeError({self.status}, {self.reason!r}, {self.detail!r}, "
            f"line={self.line}, column={self.column}, path={self.path!r})"
        )


def check_media_type(content_type: str | None, allowed: Collection[str]) -> str:
    """Return the bare, lower-cased media type, or refuse with 415."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not media:
        raise XmlIntakeError.of(UNSUPPORTED_MEDIA_TYPE, "no Content-Type given")
    if media not in {a.lower() for a in allowed}:
        expected = ", ".join(sorted(allowed))
        detail = f"media type {media!r} not accepted here ({expected})"
        raise XmlIntakeError.of(UNSUPPORTED_MEDIA_TYPE, detail)
    return media


def parse_xml(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted bytes into an element, or raise :class:`XmlIntakeError`."""
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > limits.max_bytes:
        raise XmlIntakeError.of(TOO_LARGE, f"body has {len(data)} bytes, the limit is {limits.max_bytes}")
    utf8 = _check_prolog(data)
    try:
        if limits.max_depth == LIBXML2_MAX_DEPTH and len(data) <= 4 * limits.max_elements:
            # Every element costs at least four bytes ("<a/>"), so this body cannot exceed the
            # element budget and libxml2 enforces the depth: one C call, no Python per element.
            try:
                parser = _local.parser
            except AttributeError:
                # lxml parsers must not be shared between threads; building one per call
                # costs more than parsing a small body.
                parser = _local.parser = _new_parser()
            root = etree.fromstring(data, parser)
        else:
            root = _parse_incrementally(data, limits)
    except etree.XMLSyntaxError as exc:
        raise _from_syntax_error(exc) from None
    except (etree.LxmlError, ValueError, UnicodeError) as exc:
        raise XmlIntakeError.of(MALFORMED, str(exc) or type(exc).__name__) from None
    if not utf8 and root.getroottree().docinfo.internalDTD is not None:
        # Backstop for encodings the prolog scan cannot read (EBCDIC and the like).
        raise XmlIntakeError.of(DOCTYPE_FORBIDDEN, "documents with a DOCTYPE are not accepted")
    # An XInclude element needs its namespace URI in some xmlns attribute; in UTF-8 that is
    # either the literal bytes or character references, so most bodies skip the tree walk.
    # (Single-byte searches first: they run at memchr speed, longer needles do not.)
    if not utf8 or b"&" in data or (b"X" in data and b"XInclude" in data):
        xinclude = next(root.iter(*XINCLUDE_TAGS), None)
        if xinclude is not None:
            raise XmlIntakeError.of(
                XINCLUDE_FORBIDDEN,
                "XInclude elements are not accepted",
                xinclude.sourceline,
                path=element_path(xinclude),
            )
    return root


def parse_document(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._ElementTree:
    return parse_xml(data, limits).getroottree()


def check_well_formed(data: bytes) -> None:
    """Refuse bytes that are not well-formed, safe XML with a ``ValueError`` naming the reason code.

    The XML check the adapters' wire format takes (``adapters.wire.XmlCheck``): an authority's
    evidence goes through the same door as every other inbound XML, while adapters/ does not
    depend on the broker.
    """
    try:
        parse_xml(data)
    except XmlIntakeError as error:
        raise ValueError(error.reason) from None


def expect_root(root: etree._Element, allowed: Collection[str]) -> None:
    """Refuse (422) a document whose root is not one of ``allowed`` (Clark names ``{ns}local``)."""
    if root.tag not in allowed:
        expected = ", ".join(sorted(allowed))
        raise XmlIntakeError.of(
            UNEXPECTED_ROOT,
            f"root element {root.tag} is not accepted here (expected {expected})",
            root.sourceline,
            path=element_path(root),
        )


def element_path(element: etree._Element) -> str:
    """``/prefix:local[n]/…`` using each element's own prefix; ``[n]`` only among same-name siblings."""
    steps = []
    node: etree._Element | None = element
    while node is not None:
        qname = etree.QName(node)
        name = f"{node.prefix}:{qname.localname}" if node.prefix else qname.localname
        parent = node.getparent()
        if parent is not None:
            same = [s for s in parent.iterchildren(node.tag)]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


# --- parsing -------------------------------------------------------------------------------

_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": False,
    "collect_ids": False,  # no ID hash table: we never use it and it costs memory per element
}


class _RefuseAll(etree.Resolver):
    """Defence in depth: with the options above libxml2 never asks, but if it did, say no."""

    def resolve(self, system_url: str, public_id: str, context: object) -> Any:
        return self.resolve_string(b"", context)


def _new_parser() -> etree.XMLParser:
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    parser.resolvers.add(_RefuseAll())
    return parser


_local = threading.local()


_CHUNK = 64 * 1024


_gc_lock = threading.Lock()
_gc_pausers = 0


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic collector while a large body is parsed incrementally.

    Every parser event creates an element proxy; in a large heap (a serving process, a test
    run) those allocations trigger full collections that made a 300,000-element refusal take
    ~1 s instead of ~0.1 s. lxml proxies form no reference cycles, so nothing is lost by
    pausing for one bounded parse. Counted, so concurrent parses don't re-enable it early.
    """
    global _gc_pausers
    with _gc_lock:
        if _gc_pausers == 0 and not gc.isenabled():
            paused_by_us = False
        else:
            paused_by_us = True
            _gc_pausers += 1
            gc.disable()
    try:
        yield
    finally:
        if paused_by_us:
            with _gc_lock:
                _gc_pausers -= 1
                if _gc_pausers == 0:
                    gc.enable()


def _parse_incrementally(data: bytes, limits: XmlLimits) -> etree._Element:
    with _cyclic_gc_paused():
        return _pull_parse(data, limits)


def _pull_parse(data: bytes, limits: XmlLimits) -> etree._Element:
    track_depth = limits.max_depth < LIBXML2_MAX_DEPTH
    events = ("start", "end") if track_depth else ("start",)
    parser = etree.XMLPullParser(events=events, **_PARSER_OPTIONS)
    parser.resolvers.add(_RefuseAll())
    count = depth = 0
    for offset in range(0, len(data), _CHUNK):
        parser.feed(data[offset : offset + _CHUNK])
        for event, element in parser.read_events():
            if event == "end":
                depth -= 1
                continue
            count += 1
            depth += 1
            if count > limits.max_elements:
                raise XmlIntakeError.of(
                    TOO_MANY_ELEMENTS,
                    f"more than {limits.max_elements} elements",
                    element.sourceline,
                )
            if track_depth and depth > limits.max_depth:
                raise XmlIntakeError.of(TOO_DEEP, f"elements nested deeper than {limits.max_depth}", element.sourceline)
    root: etree._Element = parser.close()
    return root


_ENCODING_ERRORS = frozenset(
    getattr(etree.ErrorTypes, name)
    for name in (
        "ERR_INVALID_ENCODING",
        "ERR_UNSUPPORTED_ENCODING",
        "ERR_UNKNOWN_ENCODING",
        "ERR_ENCODING_NAME",
    )
)
_LOCATION_SUFFIX = re.compile(r", line \d+, column \d+$")


def _from_syntax_error(exc: etree.XMLSyntaxError) -> XmlIntakeError:
    message = _LOCATION_SUFFIX.sub("", (exc.msg or str(exc)).strip())
    line, column = exc.position if exc.position else (exc.lineno, None)
    if exc.code == etree.ErrorTypes.ERR_RESOURCE_LIMIT:
        reason = TOO_DEEP if "depth" in message.lower() else TOO_LARGE
    elif exc.code in _ENCODING_ERRORS:
        reason = BAD_ENCODING
    else:
        reason = MALFORMED
    return XmlIntakeError.of(reason, message, line, column)


# --- prolog: encoding sanity and DOCTYPE, before libxml2 sees a byte ---------------------------

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM is a prefix of this one
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
_BOM_FIRST_BYTES = frozenset(bom[0] for bom, _ in _BOMS)
# Declared encodings compatible with each byte order mark (names normalised by _norm).
_BOM_DECLARATIONS: dict[str, frozenset[str]] = {
    "utf-8": frozenset({"utf8"}),
    "utf-16-le": frozenset({"utf16", "utf16le", "iso10646ucs2", "ucs2"}),
    "utf-16-be": frozenset({"utf16", "utf16be", "iso10646ucs2", "ucs2"}),
    "utf-32-le": frozenset({"utf32", "utf32le", "iso10646ucs4", "ucs4"}),
    "utf-32-be": frozenset({"utf32", "utf32be", "iso10646ucs4", "ucs4"}),
}
_WIDE_ENCODINGS = frozenset().union(*(names - {"utf8"} for names in _BOM_DECLARATIONS.values()))
_ENCODING = re.compile(rb"""encoding[ \t\r\n]*=[ \t\r\n]*(["'])([A-Za-z][A-Za-z0-9._-]*)\1""")
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")
# An optional UTF-8 BOM, an optional declaration naming no encoding or UTF-8, then at once
# the root element: nothing in such a prolog can be a DOCTYPE or a contradicting encoding.
_PLAIN_START = re.compile(
    rb"(?:\xef\xbb\xbf)?"
    rb"(?:<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*([\"'])1\.[01]\1"
    rb"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*([\"'])(?i:utf-8)\2)?"
    rb"(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*([\"'])(?:yes|no)\3)?[ \t\r\n]*\?>)?"
    rb"[ \t\r\n]*<[^?!\x00]"
)


def _norm(encoding: str) -> str:
    return encoding.lower().replace("-", "").replace("_", "").replace(".", "")


def _check_prolog(data: bytes) -> bool:
    """Refuse empty bodies, encodings that contradict the bytes, and any DOCTYPE; return
    whether the body is known to be UTF-8.

    Byte-oriented encodings are scanned as bytes: markup characters are ASCII in all of them,
    so the structure of the prolog is visible without knowing the real encoding. UTF-16/32
    bodies are decoded first (to UTF-8) and scanned the same way.
    """
    if _PLAIN_START.match(data):
        return True  # the common case, one regex: UTF-8, and the root element comes first
    bom_codec = None
    if data and data[0] in _BOM_FIRST_BYTES:
        bom_codec = next((codec for bom, codec in _BOMS if data.startswith(bom)), None)
    if bom_codec is None and len(data) >= 2 and (data[0] == 0 or data[1] == 0):
        # A NUL is never legal XML text, so this is UTF-16/32 without the byte order mark the
        # XML spec requires for them; libxml2 would guess, we refuse to.
        raise XmlIntakeError.of(BAD_ENCODING, "UTF-16/UTF-32 content without a byte order mark", 1, 1)

    if bom_codec in (None, "utf-8"):
        text, start = data, 3 if bom_codec else 0
    else:
        text, start = _decode_wide(data, bom_codec), 0

    utf8 = bom_codec in (None, "utf-8")
    position = start
    if text.startswith(b"<?xml", position):
        end = text.find(b"?>", position, position + 400)
        if end > 0:
            declaration = text[position:end]
            found = _ENCODING.search(declaration) if b"encoding" in declaration else None
            if found:
                declared = found.group(2).decode("ascii")
                _check_declared_encoding(declared, bom_codec)
                utf8 = utf8 and _norm(declared) in ("utf8", "usascii", "ascii")
            position = end + 2
    first = _NOT_SPACE.search(text, position)
    if first is None:
        if position == start:
            raise XmlIntakeError.of(EMPTY, "the body contains no XML document")
        return utf8  # a declaration and nothing else: libxml2 reports the missing root
    if text.startswith((b"<!", b"<?"), first.start()):
        offset = _doctype_offset(text, first.start())
        if offset >= 0:
            line = text.count(b"\n", 0, offset) + 1
            column = offset - (text.rfind(b"\n", 0, offset) + 1) + 1
            raise XmlIntakeError.of(DOCTYPE_FORBIDDEN, "documents with a DOCTYPE are not accepted", line, column)
    return utf8


def _check_declared_encoding(declared: str, bom_codec: str | None) -> None:
    name = _norm(declared)
    if bom_codec is not None and name not in _BOM_DECLARATIONS[bom_codec]:
        detail = f"declared encoding {declared!r} contradicts the {bom_codec} byte order mark"
        raise XmlIntakeError.of(BAD_ENCODING, detail, 1, 1)
    if bom_codec is None and name in _WIDE_ENCODINGS:
        raise XmlIntakeError.of(BAD_ENCODING, f"declared encoding {declared!r} but the bytes are not {declared}", 1, 1)


def _decode_wide(data: bytes, codec: str) -> bytes:
    bom = next(bom for bom, name in _BOMS if name == codec)
    try:
        # Decoded whole: libxml2 would have to anyway, and this gives an exact position for
        # bytes that are not valid in the encoding.
        return data[len(bom) :].decode(codec).encode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise XmlIntakeError.of(BAD_ENCODING, f"bytes not valid {codec} at offset {exc.start}") from None


def _doctype_offset(text: bytes, start: int) -> int:
    """Offset of a DOCTYPE in the prolog, or -1 once the root element (or junk) comes first."""
    i, end = start, len(text)
    while i < end:
        if text[i] in b" \t\r\n":
            i += 1
        elif text.startswith(b"<!--", i):
            close = text.find(b"-->", i + 4)
            if close < 0:
                return -1  # an unclosed comment: libxml2 reports it
            i = close + 3
        elif text.startswith(b"<?", i):
            close = text.find(b"?>", i + 2)
            if close < 0:
                return -1
            i = close + 2
        elif text.startswith(b"<!DOCTYPE", i):
            return i
        else:
            return -1
    return -1
