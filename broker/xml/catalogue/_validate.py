"""Validating documents against compiled schemas, reported as :class:`XmlIntakeError` (422).

Both engines report the single most useful error with the path of the offending element, so a
client sees the same kind of answer whichever engine compiled its schema.
"""

from __future__ import annotations

import itertools
import threading
from typing import Protocol

import xmlschema
from lxml import etree

from broker.xml.hardened import SCHEMA_INVALID, UNEXPECTED_ROOT, XmlIntakeError, element_path


class Validator(Protocol):
    engine: str

    def validate(self, root: etree._Element) -> None: ...


class LxmlValidator:
    engine = "lxml"

    def __init__(self, schema: etree.XMLSchema) -> None:
        self.schema = schema
        # One XMLSchema keeps one error log; concurrent validations would mix their errors.
        self._lock = threading.Lock()

    def validate(self, root: etree._Element) -> None:
        with self._lock:
            if self.schema.validate(root):
                return
            errors = list(self.schema.error_log)
        first = errors[0]
        reason = UNEXPECTED_ROOT if first.type_name == "SCHEMAV_CVC_ELT_1" else SCHEMA_INVALID
        detail = first.message + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
        path, line = _readable_path(root, first.path, first.line)
        raise XmlIntakeError.of(reason, detail, line, first.column, path)


class XmlschemaValidator:
    engine = "xmlschema"

    def __init__(self, schema: xmlschema.XMLSchemaBase) -> None:
        self.schema = schema
        self._lock = threading.Lock()

    def validate(self, root: etree._Element) -> None:
        if root.tag not in self.schema.maps.elements:
            raise XmlIntakeError.of(
                UNEXPECTED_ROOT,
                f"{root.tag} is not a global element of the catalogue's schemas",
                root.sourceline,
                path=element_path(root),
            )
        with self._lock:
            errors = list(itertools.islice(self.schema.iter_errors(root), 50))
        if errors:
            # xmlschema reports a failed assertion before the bad child value that made it fail;
            # the deepest error is the one worth showing.
            deepest = max(errors, key=lambda e: _depth(e.elem))
            more = len(errors) - 1
            raise xmlschema_error(deepest, f" (and {more} more)" if more else "")


def xmlschema_error(error: xmlschema.XMLSchemaValidationError, suffix: str = "") -> XmlIntakeError:
    elem = error.elem
    path = element_path(elem) if isinstance(elem, etree._Element) else error.path
    line = elem.sourceline if isinstance(elem, etree._Element) else error.sourceline
    return XmlIntakeError.of(SCHEMA_INVALID, (error.reason or error.message) + suffix, line, None, path)


def _readable_path(root: etree._Element, path: str | None, line: int) -> tuple[str | None, int | None]:
    """libxml2 writes unprefixed elements as ``*``; recompute those paths from the node."""
    if not path or "*" not in path:
        return path, line or None
    try:
        namespaces = {k: v for k, v in root.nsmap.items() if k}
        nodes = root.getroottree().xpath(path, namespaces=namespaces)
    except etree.XPathError:
        return path, line or None
    if nodes and isinstance(nodes[0], etree._Element):
        node = nodes[0]
        return element_path(node), line or node.sourceline
    return path, line or None


def _depth(value: object) -> int:
    return sum(1 for _ in value.iterancestors()) if isinstance(value, etree._Element) else -1
