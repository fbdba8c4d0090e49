"""Indexing: which ``*.xsd`` files the catalogue directories hold and what each one declares.

Directories are scanned in order; the first directory that defines a namespace owns it (later
ones are shadowed, like ``PATH``). Namespaces linked by ``xs:import`` form a *component*, the
unit that is compiled together. Whether a schema needs an XSD 1.1 processor is decided here
from the constructs it uses, not from ``vc:minVersion``, because that choice picks the compiler.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from broker.xml.hardened import XmlLimits

XSD_NS = "http://www.w3.org/2001/XMLSchema"
VC_NS = "http://www.w3.org/2007/XMLSchema-versioning"
XSD = f"{{{XSD_NS}}}"

# Constructs only an XSD 1.1 processor understands; a schema using none of them compiles
# with libxml2 even if it declares vc:minVersion="1.1".
_XSD11_ELEMENTS = frozenset(
    XSD + name for name in ("assert", "assertion", "alternative", "openContent", "defaultOpenContent", "override")
) | {XSD + "explicitTimezone"}
_XSD11_ATTRIBUTES = frozenset({"notNamespace", "notQName", "defaultAttributes", "defaultAttributesApply"})
_XSD11_TYPES = frozenset({"dateTimeStamp", "dayTimeDuration", "yearMonthDuration", "anyAtomicType", "error"})
_TYPE_ATTRIBUTES = ("type", "base", "itemType")

SCHEMA_FILE_LIMITS = XmlLimits(max_bytes=16 * 1024 * 1024, max_elements=2_000_000)
MAX_SCHEMA_FILES = 10_000


class CatalogueError(Exception):
    """A schema set that cannot be indexed or compiled; the message names the file."""


@dataclass(eq=False)
class SchemaFile:
    path: Path
    dir_index: int
    namespace: str  # "" for schemas without targetNamespace
    roots: tuple[str, ...]
    declared_version: str  # from vc:minVersion, "1.0" when absent
    uses_xsd11: bool
    content: bytes
    imports: list[tuple[str, str | None]] = field(default_factory=list)  # (namespace, schemaLocation)
    includes: list[str] = field(default_factory=list)  # schemaLocations of include/redefine/override
    shadowed_by: Path | None = None

    @property
    def key(self) -> str:
        """The file's name among the catalogue's documents: its absolute path."""
        return str(self.path)


def scan(dirs: list[Path]) -> list[SchemaFile]:
    """Index every schema file under ``dirs`` in order, marking the ones an earlier directory shadows."""
    files: list[SchemaFile] = []
    seen: set[Path] = set()
    for index, directory in enumerate(dirs):
        if not directory.is_dir():
            raise CatalogueError(f"schema directory {directory} does not exist")
        for path in xsd_files(directory):
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            if len(seen) > MAX_SCHEMA_FILES:
                raise CatalogueError(f"more than {MAX_SCHEMA_FILES} schema files under {directory}")
            files.append(_index_file(resolved, index))
    _mark_shadowed(files)
    return files


def xsd_files(directory: Path) -> list[Path]:
    found = []
    for here, subdirs, names in os.walk(directory):
        # Hidden directories hold VCS data or half-finished imports, never live schemas.
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found += [Path(here, n) for n in sorted(names) if n.lower().endswith(".xsd") and not n.startswith(".")]
    return found


def components(active: list[SchemaFile], namespaces: set[str]) -> list[set[str]]:
    """Namespaces connected by imports, in either direction (union-find)."""
    parent = {ns: ns for ns in namespaces}

    def find(ns: str) -> str:
        while parent[ns] != ns:
            parent[ns] = parent[parent[ns]]
            ns = parent[ns]
        return ns

    for f in active:
        for namespace, _ in f.imports:
            if namespace in parent:
                parent[find(namespace)] = find(f.namespace)
    groups: dict[str, set[str]] = {}
    for ns in sorted(namespaces):
        groups.setdefault(find(ns), set()).add(ns)
    return list(groups.values())


class _RefuseResolver(etree.Resolver):
    def resolve(self, system_url: str, public_id: str, context: object) -> Any:
        return self.resolve_string(b"", context)


def _schema_parser() -> etree.XMLParser:
    # Schema files come from operators, not from requests: an internal DTD subset is allowed
    # (W3C's xmldsig schema has one), but only internal entities are expanded and nothing
    # external is ever loaded.
    parser = etree.XMLParser(
        resolve_entities="internal", no_network=True, load_dtd=False, huge_tree=False, collect_ids=False
    )
    parser.resolvers.add(_RefuseResolver())
    return parser


def _index_file(path: Path, dir_index: int) -> SchemaFile:
    data = path.read_bytes()
    if len(data) > SCHEMA_FILE_LIMITS.max_bytes:
        raise CatalogueError(f"{path}: larger than {SCHEMA_FILE_LIMITS.max_bytes} bytes")
    try:
        root = etree.fromstring(data, _schema_parser(), base_url=str(path))
    except etree.XMLSyntaxError as exc:
        raise CatalogueError(f"{path}:{exc.lineno}: not well-formed: {exc.msg}") from None
    if root.tag != XSD + "schema":
        raise CatalogueError(f"{path}: not an XML Schema document (root element {root.tag})")
    if root.getroottree().docinfo.internalDTD is not None:
        # Compilers get the entity-expanded tree, never the DTD.
        data = etree.tostring(root, encoding="utf-8", xml_declaration=True)
    # anyURI values are whitespace-collapsed: surrounding blanks are not part of the location.
    imports = [
        (i.get("namespace") or "", (i.get("schemaLocation") or "").strip() or None)
        for i in root.iterchildren(XSD + "import")
    ]
    includes = [
        (i.get("schemaLocation") or "").strip()
        for i in root.iterchildren(XSD + "include", XSD + "redefine", XSD + "override")
    ]
    return SchemaFile(
        path=path,
        dir_index=dir_index,
        namespace=root.get("targetNamespace") or "",
        roots=tuple(e.get("name") or "" for e in root.iterchildren(XSD + "element")),
        declared_version=root.get(f"{{{VC_NS}}}minVersion") or "1.0",
        uses_xsd11=_uses_xsd11(root),
        content=data,
        imports=imports,
        includes=includes,
    )


def _uses_xsd11(root: etree._Element) -> bool:
    if next(root.iter(*_XSD11_ELEMENTS), None) is not None:
        return True
    for element in root.iter(XSD + "*"):
        if not _XSD11_ATTRIBUTES.isdisjoint(element.attrib):
            return True
        for attribute in _TYPE_ATTRIBUTES:
            value = element.get(attribute)
            if value and _is_xsd11_type(element, value):
                return True
    return False


def _is_xsd11_type(element: etree._Element, qname: str) -> bool:
    prefix, _, local = qname.rpartition(":")
    return local in _XSD11_TYPES and element.nsmap.get(prefix or None) == XSD_NS


def _mark_shadowed(files: list[SchemaFile]) -> None:
    """The first directory defining a namespace owns it; its files in later ones are shadowed."""
    owner_dir: dict[str, int] = {}
    first_file: dict[str, Path] = {}
    for f in files:
        if f.namespace not in owner_dir:
            owner_dir[f.namespace] = f.dir_index
            first_file[f.namespace] = f.path
        elif f.dir_index != owner_dir[f.namespace] and f.namespace:
            f.shadowed_by = first_file[f.namespace]
