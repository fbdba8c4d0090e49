"""The schema catalogue: local XSDs indexed by namespace, compiled once, never the network.

Directories are scanned for ``*.xsd`` in order; the first directory that defines a namespace
owns it (later ones are shadowed, like ``PATH``). Namespaces linked by ``xs:import`` form a
*component*; each component is compiled once from a generated wrapper schema that imports
every member namespace from its local file. Every document the compilers load comes from the
catalogue's own in-memory store through a resolver (lxml) or an opener (xmlschema) that
refuses everything else, so remote ``schemaLocation`` URLs and location-less imports are
answered from local files or not at all.

Components whose schemas really use XSD 1.1 constructs are compiled with ``xmlschema``;
everything else with lxml (libxml2), which is much faster and also accepts schemas that merely
declare ``vc:minVersion="1.1"``.
"""

from __future__ import annotations

import io
import itertools
import os
import posixpath
import re
import shutil
import stat
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import urllib.response
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, Protocol
from xml.sax.saxutils import quoteattr

import xmlschema
from lxml import etree

from broker.xml.hardened import (
    SCHEMA_INVALID,
    UNEXPECTED_ROOT,
    XmlIntakeError,
    XmlLimits,
    element_path,
)

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
MAX_IMPORT_BYTES = 256 * 1024 * 1024

_NOT_URI = re.compile(r'[\x00-\x20<>"{}|\\^`\x7f]')
# Generated wrapper schemas live at paths no real file can have.
_VIRTUAL_DIR = "/__broker_schema_catalogue__"


class CatalogueError(Exception):
    """A schema set that cannot be indexed or compiled; the message names the file."""


@dataclass(frozen=True, slots=True)
class SchemaEntry:
    namespace: str  # "" for schemas without targetNamespace
    root_elements: tuple[str, ...]
    file: Path
    declared_version: str  # from vc:minVersion, "1.0" when absent
    uses_xsd11: bool
    engine: str  # "lxml" or "xmlschema"
    shadowed_by: Path | None = None

    @property
    def xsd_version(self) -> str:
        if self.uses_xsd11:
            return "1.1"
        if self.declared_version == "1.1":
            return "1.1 (declared, no 1.1 constructs)"
        return self.declared_version


class Validator(Protocol):
    engine: str

    def validate(self, root: etree._Element) -> None: ...


@dataclass(eq=False)
class _SchemaFile:
    path: Path
    dir_index: int
    namespace: str
    roots: tuple[str, ...]
    declared_version: str
    uses_xsd11: bool
    content: bytes
    imports: list[tuple[str, str | None]] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)
    shadowed_by: Path | None = None

    @property
    def key(self) -> str:
        return str(self.path)


class SchemaCatalogue:
    def __init__(self, dirs: Iterable[Path | str]) -> None:
        self.dirs = [Path(d).resolve() for d in dirs]
        self._files = _scan(self.dirs)
        self._store: dict[str, bytes] = {f.key: f.content for f in self._files}
        self._by_key = {f.key: f for f in self._files}
        _mark_shadowed(self._files)
        active = [f for f in self._files if f.shadowed_by is None]
        self._locations: dict[str, str] = {}
        self._refused: list[str] = []
        self._no_namespace_tops: list[str] = []
        included = self._link(active)
        self._ns_roots = self._namespace_roots(active, included)
        self._components = _components(active, set(self._ns_roots))
        self._engines = [
            "xmlschema" if any(f.uses_xsd11 for f in active if f.namespace in members) else "lxml"
            for members in self._components
        ]
        self._validators: dict[str, Validator] = {}
        self._component_of: dict[str, int] = {}
        self._decoders: dict[int, xmlschema.XMLSchemaBase] = {}
        self._decoder_lock = threading.Lock()
        for index, members in enumerate(self._components):
            validator = self._compile(index)
            for namespace in members:
                self._validators[namespace] = validator
                self._component_of[namespace] = index

    # --- public API ----------------------------------------------------------------------

    def entries(self) -> list[SchemaEntry]:
        result = []
        for f in self._files:
            index = self._component_of.get(f.namespace)
            engine = self._engines[index] if index is not None and f.shadowed_by is None else "-"
            result.append(
                SchemaEntry(f.namespace, f.roots, f.path, f.declared_version, f.uses_xsd11, engine, f.shadowed_by)
            )
        return result

    def prepare_json(self) -> None:
        """Build the xmlschema decoders for :meth:`to_json` now (they are built on first use
        otherwise, which takes a noticeable fraction of a second for a large schema set)."""
        for index in range(len(self._components)):
            self._decoder(index)

    def namespaces(self) -> list[str]:
        return sorted(self._validators)

    def validator_for(self, namespace: str | None) -> Validator | None:
        return self._validators.get(namespace or "")

    def validate(self, root: etree._Element) -> None:
        """Validate against the schema of the root's namespace; XmlIntakeError (422) if not valid."""
        validator = self._validators.get(_namespace_of(root.tag))
        if validator is None:
            namespace = _namespace_of(root.tag)
            raise XmlIntakeError.of(
                UNEXPECTED_ROOT,
                f"no schema in the catalogue for the namespace {namespace!r} of the root element",
                root.sourceline,
                path=element_path(root),
            )
        validator.validate(root)

    def to_json(self, root: etree._Element) -> dict[str, Any]:
        """Decode a (valid) document into JSON-ready data: ``{"prefix:Root": {...}}``.

        Decimals stay strings so no precision is lost; dates stay ISO strings.
        """
        namespace = etree.QName(root).namespace or ""
        if namespace not in self._component_of:
            raise XmlIntakeError.of(UNEXPECTED_ROOT, f"no schema in the catalogue for the namespace {namespace!r}")
        decoder = self._decoder(self._component_of[namespace])
        try:
            data = decoder.decode(root, preserve_root=True, decimal_type=str, xmlns_processing="root-only")
        except xmlschema.XMLSchemaValidationError as exc:
            raise _xmlschema_error(exc) from None
        if not isinstance(data, dict):  # simple-content roots decode to a bare value
            data = {etree.QName(root).localname: data}
        return data

    # --- indexing --------------------------------------------------------------------------

    def _link(self, active: list[_SchemaFile]) -> set[str]:
        """Check every include/import points into the catalogue; return the included files."""
        namespaces = {f.namespace for f in active}
        included: set[str] = set()
        for f in active:
            for location in [*f.includes, *(hint for _, hint in f.imports if hint)]:
                if _NOT_URI.search(location):
                    # libxml2 cannot build a URI from it and fails without naming the file.
                    raise CatalogueError(f"{f.path}: schemaLocation {location!r} is not a URI (escape spaces as %20)")
            for location in f.includes:
                target = self._locate_include(location, f)
                if target is None:
                    raise CatalogueError(
                        f"{f.path}: includes {location!r}, which is not a schema in the catalogue "
                        "(the catalogue never downloads schemas)"
                    )
                self._locations[_absolute(location, f.key)] = target.key
                included.add(target.key)
            for namespace, hint in f.imports:
                if namespace == XSD_NS:
                    continue
                if namespace not in namespaces:
                    where = f" from {hint!r}" if hint else ""
                    raise CatalogueError(
                        f"{f.path}: imports namespace {namespace!r}{where}, which no schema in the catalogue "
                        "provides (the catalogue never downloads schemas; add the file to the schema path)"
                    )
        return included

    def _namespace_roots(self, active: list[_SchemaFile], included: set[str]) -> dict[str, str]:
        """Per namespace, the one document to import it from (generated if several files)."""
        by_ns: dict[str, list[_SchemaFile]] = {}
        for f in active:
            by_ns.setdefault(f.namespace, []).append(f)
        roots: dict[str, str] = {}
        for namespace, files in by_ns.items():
            tops = [f for f in files if f.key not in included] or files[:1]
            if namespace == "" or len(tops) == 1:
                roots[namespace] = tops[0].key if namespace else ""
                continue
            key = f"{_VIRTUAL_DIR}/namespace-{len(roots)}.xsd"
            body = "".join(f"<xs:include schemaLocation={quoteattr(_file_url(t.key))}/>" for t in tops)
            self._store[key] = (
                f'<xs:schema xmlns:xs="{XSD_NS}" targetNamespace={quoteattr(namespace)}>{body}</xs:schema>'
            ).encode()
            roots[namespace] = key
        self._no_namespace_tops = [f.key for f in by_ns.get("", []) if f.key not in included]
        # Imports resolve by namespace: whatever location a schema names (remote URL, a
        # relative path that is missing or shadowed), the catalogue's own document is served.
        for f in active:
            for namespace, location in f.imports:
                if namespace == XSD_NS or location is None:
                    continue
                url = _absolute(location, f.key)
                target = self._by_key.get(_path_key(url) or "")
                if target is None or target.shadowed_by is not None or target.namespace != namespace:
                    target_key = self._pick_by_name(location, namespace) or roots[namespace]
                    self._locations[url] = target_key
        return roots

    def _pick_by_name(self, location: str, namespace: str) -> str | None:
        name = posixpath.basename(urllib.parse.urlparse(location).path)
        for f in self._files:
            if f.shadowed_by is None and f.namespace == namespace and f.path.name == name:
                return f.key
        return None

    def _locate_include(self, location: str, includer: _SchemaFile) -> _SchemaFile | None:
        url = _absolute(location, includer.key)
        found = self._by_key.get(_path_key(url) or "")
        if found is not None:
            return found
        name = posixpath.basename(urllib.parse.urlparse(location).path)
        candidates = [f for f in self._files if f.path.name == name and f.shadowed_by is None]
        same_ns = [f for f in candidates if f.namespace in (includer.namespace, "")]
        return next(iter(same_ns or candidates), None)

    # --- compiling -------------------------------------------------------------------------

    def _wrapper_key(self, index: int) -> str:
        key = f"{_VIRTUAL_DIR}/component-{index}.xsd"
        if key not in self._store:
            members = sorted(self._components[index])
            parts = [f'<xs:schema xmlns:xs="{XSD_NS}">']
            if "" in members:
                # The wrapper has no target namespace itself, so it includes no-namespace schemas.
                parts += [f"<xs:include schemaLocation={quoteattr(_file_url(k))}/>" for k in self._no_namespace_tops]
            # File URLs, not paths: libxml2 silently skips a location that is not a valid URI
            # (a path with a space, say) instead of asking the resolver.
            parts += [
                f"<xs:import namespace={quoteattr(ns)} schemaLocation={quoteattr(_file_url(self._ns_roots[ns]))}/>"
                for ns in members
                if ns
            ]
            parts.append("</xs:schema>")
            self._store[key] = "".join(parts).encode()
        return key

    def _compile(self, index: int) -> Validator:
        if self._engines[index] == "xmlschema":
            return XmlschemaValidator(self._build_xmlschema(index, "1.1"))
        key = self._wrapper_key(index)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        parser.resolvers.add(_CatalogueResolver(self))
        self._refused.clear()
        try:
            wrapper = etree.fromstring(self._store[key], parser, base_url=_file_url(key))
            schema = etree.XMLSchema(wrapper)
        except etree.XMLSchemaParseError as exc:
            raise CatalogueError(self._describe_lxml_failure(exc)) from None
        return LxmlValidator(schema)

    def _describe_lxml_failure(self, exc: etree.XMLSchemaParseError) -> str:
        errors = [e for e in exc.error_log if e.level >= etree.ErrorLevels.ERROR]
        first = errors[0] if errors else None
        where = f"{_path_key(first.filename) or first.filename}:{first.line}: " if first is not None else ""
        message = first.message if first is not None else str(exc)
        refused = f" (refused to load: {', '.join(self._refused)})" if self._refused else ""
        return f"{where}{message}{refused}"

    def _build_xmlschema(self, index: int, version: str) -> xmlschema.XMLSchemaBase:
        cls = xmlschema.XMLSchema11 if version == "1.1" else xmlschema.XMLSchema10
        key = self._wrapper_key(index)
        self._refused.clear()
        try:
            return cls(
                _file_url(key),
                allow="local",
                defuse="always",
                opener=self._opener(),
                uri_mapper=self._map_remote,
                use_fallback=False,
            )
        except (xmlschema.XMLSchemaException, OSError, urllib.error.URLError) as exc:
            refused = f" (refused to load: {', '.join(self._refused)})" if self._refused else ""
            raise CatalogueError(f"{_xmlschema_source(exc)}{exc}{refused}") from None

    def _decoder(self, index: int) -> xmlschema.XMLSchemaBase:
        with self._decoder_lock:
            decoder = self._decoders.get(index)
            if decoder is None:
                validator = self._validators[sorted(self._components[index])[0]]
                if isinstance(validator, XmlschemaValidator):
                    decoder = validator.schema
                else:
                    members = self._components[index]
                    declared = any(
                        f.declared_version == "1.1"
                        for f in self._files
                        if f.namespace in members and f.shadowed_by is None
                    )
                    decoder = self._build_xmlschema(index, "1.1" if declared else "1.0")
                self._decoders[index] = decoder
            return decoder

    # --- serving documents to the compilers ----------------------------------------------------

    def _serve(self, url: str) -> tuple[str, bytes] | None:
        """The catalogue document for a URL a compiler asks for, with its real location."""
        key = self._locations.get(url) or self._locations.get(_path_key(url) or "") or _path_key(url)
        if key is not None and key in self._store:
            return key, self._store[key]
        self._refused.append(url)
        return None

    def _map_remote(self, uri: str) -> str:
        # xmlschema asks before resolving relative references; only absolute URLs are mapped
        # here, the opener refuses whatever is left outside the catalogue.
        key = self._locations.get(uri.strip())
        return _file_url(key) if key else uri

    def _opener(self) -> urllib.request.OpenerDirector:
        opener = urllib.request.OpenerDirector()  # deliberately without any network handler
        opener.add_handler(_CatalogueHandler(self))
        return opener


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
            raise _xmlschema_error(deepest, f" (and {more} more)" if more else "")


def import_schemas(
    src: Path, dest_dir: Path, *, context_dirs: Sequence[Path] = (), name: str | None = None
) -> list[SchemaEntry]:
    """Copy the ``.xsd`` files of a directory or zip into ``dest_dir/<name>`` after checking
    that they compile together with ``context_dirs``; return their catalogue entries.

    Only ``.xsd`` files are taken; symlinks, absolute or ``..`` names, oversized files and
    oversized sets are refused, and nothing lands in ``dest_dir`` unless the set compiles.
    """
    src = Path(src)
    target = Path(dest_dir) / (name or src.stem)
    if target.exists():
        raise CatalogueError(f"{target} already exists; remove it to import again")
    files = _read_zip(src) if src.is_file() else _read_dir(src)
    if not files:
        raise CatalogueError(f"{src}: no .xsd files found")
    Path(dest_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=dest_dir))
    try:
        for relative, content in files.items():
            path = staging.joinpath(*relative.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        root = staging.resolve()
        catalogue = SchemaCatalogue([staging, *context_dirs])
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [
        SchemaEntry(
            e.namespace,
            e.root_elements,
            target.resolve() / e.file.relative_to(root),
            e.declared_version,
            e.uses_xsd11,
            e.engine,
        )
        for e in catalogue.entries()
        if e.file.is_relative_to(root)
    ]


# --- helpers -------------------------------------------------------------------------------


def _scan(dirs: list[Path]) -> list[_SchemaFile]:
    files: list[_SchemaFile] = []
    seen: set[Path] = set()
    for index, directory in enumerate(dirs):
        if not directory.is_dir():
            raise CatalogueError(f"schema directory {directory} does not exist")
        for path in _xsd_files(directory):
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            if len(seen) > MAX_SCHEMA_FILES:
                raise CatalogueError(f"more than {MAX_SCHEMA_FILES} schema files under {directory}")
            files.append(_index_file(resolved, index))
    return files


def _xsd_files(directory: Path) -> list[Path]:
    found = []
    for here, subdirs, names in os.walk(directory):
        # Hidden directories hold VCS data or half-finished imports, never live schemas.
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found += [Path(here, n) for n in sorted(names) if n.lower().endswith(".xsd") and not n.startswith(".")]
    return found


def _schema_parser() -> etree.XMLParser:
    # Schema files come from operators, not from requests: an internal DTD subset is allowed
    # (W3C's xmldsig schema has one), but only internal entities are expanded and nothing
    # external is ever loaded.
    parser = etree.XMLParser(
        resolve_entities="internal", no_network=True, load_dtd=False, huge_tree=False, collect_ids=False
    )
    parser.resolvers.add(_RefuseResolver())
    return parser


def _index_file(path: Path, dir_index: int) -> _SchemaFile:
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
    uses_xsd11 = _uses_xsd11(root)
    # anyURI values are whitespace-collapsed: surrounding blanks are not part of the location.
    imports = [
        (i.get("namespace") or "", (i.get("schemaLocation") or "").strip() or None)
        for i in root.iterchildren(XSD + "import")
    ]
    includes = [
        (i.get("schemaLocation") or "").strip()
        for i in root.iterchildren(XSD + "include", XSD + "redefine", XSD + "override")
    ]
    roots = tuple(e.get("name") or "" for e in root.iterchildren(XSD + "element"))
    return _SchemaFile(
        path=path,
        dir_index=dir_index,
        namespace=root.get("targetNamespace") or "",
        roots=roots,
        declared_version=root.get(f"{{{VC_NS}}}minVersion") or "1.0",
        uses_xsd11=uses_xsd11,
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


def _mark_shadowed(files: list[_SchemaFile]) -> None:
    """The first directory defining a namespace owns it; its files in later ones are shadowed."""
    owner_dir: dict[str, int] = {}
    first_file: dict[str, Path] = {}
    for f in files:
        if f.namespace not in owner_dir:
            owner_dir[f.namespace] = f.dir_index
            first_file[f.namespace] = f.path
        elif f.dir_index != owner_dir[f.namespace] and f.namespace:
            f.shadowed_by = first_file[f.namespace]


def _components(active: list[_SchemaFile], namespaces: set[str]) -> list[set[str]]:
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


def _absolute(location: str, base_key: str) -> str:
    location = location.strip()
    if urllib.parse.urlparse(location).scheme not in ("", "file") or location.startswith("/"):
        return location
    return posixpath.normpath(posixpath.join(posixpath.dirname(base_key), urllib.parse.unquote(location)))


def _path_key(url: str) -> str | None:
    """The store key for a local URL or path, None for anything remote."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return posixpath.normpath(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "" and url.startswith("/"):
        return posixpath.normpath(urllib.parse.unquote(url))
    return None


def _file_url(key: str) -> str:
    return "file://" + urllib.request.pathname2url(key)


class _RefuseResolver(etree.Resolver):
    def resolve(self, system_url: str, public_id: str, context: object) -> Any:
        return self.resolve_string(b"", context)


class _CatalogueResolver(etree.Resolver):
    """libxml2 asks here for every schema document; only catalogue documents are served."""

    def __init__(self, catalogue: SchemaCatalogue) -> None:
        super().__init__()
        self._catalogue = catalogue

    def resolve(self, system_url: str, public_id: str, context: object) -> Any:
        served = self._catalogue._serve(system_url)
        if served is None:
            # An empty document makes libxml2 fail this load with its own clear error.
            return self.resolve_string(b"", context)
        key, content = served
        return self.resolve_string(content, context, base_url=_file_url(key))


class _CatalogueHandler(urllib.request.BaseHandler):
    """The only handler of xmlschema's opener: file URLs inside the catalogue, nothing else."""

    def __init__(self, catalogue: SchemaCatalogue) -> None:
        self._catalogue = catalogue

    def file_open(self, request: urllib.request.Request) -> urllib.response.addinfourl:
        url = request.full_url
        served = self._catalogue._serve(url)
        if served is None:
            raise urllib.error.URLError(f"{url} is not in the schema catalogue")
        return urllib.response.addinfourl(io.BytesIO(served[1]), Message(), url)

    def unknown_open(self, request: urllib.request.Request) -> None:
        self._catalogue._refused.append(request.full_url)
        raise urllib.error.URLError(f"{request.full_url}: the schema catalogue never uses the network")


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


def _namespace_of(tag: str) -> str:
    return tag[1 : tag.index("}")] if tag[:1] == "{" else ""


def _depth(value: object) -> int:
    return sum(1 for _ in value.iterancestors()) if isinstance(value, etree._Element) else -1


def _xmlschema_error(error: xmlschema.XMLSchemaValidationError, suffix: str = "") -> XmlIntakeError:
    elem = error.elem
    path = element_path(elem) if isinstance(elem, etree._Element) else error.path
    line = elem.sourceline if isinstance(elem, etree._Element) else error.sourceline
    return XmlIntakeError.of(SCHEMA_INVALID, (error.reason or error.message) + suffix, line, None, path)


def _xmlschema_source(exc: BaseException) -> str:
    url = getattr(exc, "url", None) or getattr(getattr(exc, "source", None), "url", None)
    if isinstance(url, str) and url.startswith("file://"):
        return f"{_path_key(url)}: "
    return f"{url}: " if url else ""


# --- reading import sources safely ---------------------------------------------------------


def _read_dir(src: Path) -> dict[str, bytes]:
    if not src.is_dir():
        raise CatalogueError(f"{src}: neither a directory nor a zip file")
    result: dict[str, bytes] = {}
    total = 0
    for path in _xsd_files(src):
        if path.is_symlink():  # os.walk does not enter linked directories; linked files are refused
            raise CatalogueError(f"{path}: symbolic links are not imported")
        size = path.stat().st_size
        total += size
        _check_sizes(path.name, size, total, len(result) + 1)
        result[path.relative_to(src).as_posix()] = path.read_bytes()
    return result


def _read_zip(src: Path) -> dict[str, bytes]:
    if not zipfile.is_zipfile(src):
        raise CatalogueError(f"{src}: neither a directory nor a zip file")
    result: dict[str, bytes] = {}
    total = 0
    try:
        with zipfile.ZipFile(src) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.lower().endswith(".xsd"):
                    continue
                relative = _safe_member_name(info)
                if relative is None:
                    continue
                _check_sizes(info.filename, info.file_size, total + info.file_size, len(result) + 1)
                with archive.open(info) as member:
                    # Never trust the declared size: read at most one byte past the limit.
                    content = member.read(SCHEMA_FILE_LIMITS.max_bytes + 1)
                total += len(content)
                _check_sizes(info.filename, len(content), total, len(result) + 1)
                result[relative] = content
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise CatalogueError(f"{src}: unreadable zip file: {exc}") from None
    return result


def _safe_member_name(info: zipfile.ZipInfo) -> str | None:
    """The member's relative path, or CatalogueError for names that could escape the target."""
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if (
        name.startswith(("/", "\\"))
        or "\\" in name
        or (len(name) > 1 and name[1] == ":")
        or ".." in parts
        or "\x00" in name
    ):
        raise CatalogueError(f"zip member {name!r} has an unsafe path")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise CatalogueError(f"zip member {name!r} is a symbolic link")
    parts = [p for p in parts if p not in ("", ".")]
    if any(p.startswith(".") for p in parts):
        return None  # hidden files would be invisible to the catalogue anyway
    return "/".join(parts)


def _check_sizes(name: str, size: int, total: int, count: int) -> None:
    if size > SCHEMA_FILE_LIMITS.max_bytes:
        raise CatalogueError(f"{name}: larger than {SCHEMA_FILE_LIMITS.max_bytes} bytes")
    if total > MAX_IMPORT_BYTES:
        raise CatalogueError(f"schema set larger than {MAX_IMPORT_BYTES} bytes")
    if count > MAX_SCHEMA_FILES:
        raise CatalogueError(f"more than {MAX_SCHEMA_FILES} schema files")
