"""Compiling: one schema object per component, built from a generated wrapper schema.

Each component is compiled once from a wrapper that imports every member namespace from its
local file; a namespace whose definitions are spread over several top-level files gets a
generated schema of its own that includes them all. Components whose schemas really use XSD 1.1
constructs are compiled with ``xmlschema``; everything else with lxml (libxml2), which is much
faster and also accepts schemas that merely declare ``vc:minVersion="1.1"``. Only xmlschema
decodes documents to JSON, so lxml components get an xmlschema build on demand as well.
"""

from __future__ import annotations

import urllib.error
from xml.sax.saxutils import quoteattr

import xmlschema
from lxml import etree

from broker.xml.catalogue._index import XSD_NS, CatalogueError, SchemaFile
from broker.xml.catalogue._resolve import LocalDocuments, file_url, path_key

# Generated schemas live at paths no real file can have.
_VIRTUAL_DIR = "/__broker_schema_catalogue__"


class SchemaCompiler:
    """Compiles the components of one catalogue; the documents it loads all come from ``documents``."""

    def __init__(self, documents: LocalDocuments, active: list[SchemaFile], included: set[str]) -> None:
        self._documents = documents
        self.namespace_roots = self._namespace_roots(active, included)
        # The component wrapper has no target namespace itself, so it includes these directly.
        self._no_namespace_tops = [f.key for f in active if f.namespace == "" and f.key not in included]

    def lxml(self, index: int, members: set[str]) -> etree.XMLSchema:
        key = self._wrapper_key(index, members)
        self._documents.refused.clear()
        try:
            wrapper = etree.fromstring(self._documents.content(key), self._documents.parser(), base_url=file_url(key))
            return etree.XMLSchema(wrapper)
        except etree.XMLSchemaParseError as exc:
            raise CatalogueError(self._describe_lxml_failure(exc)) from None

    def xmlschema(self, index: int, members: set[str], version: str) -> xmlschema.XMLSchemaBase:
        cls = xmlschema.XMLSchema11 if version == "1.1" else xmlschema.XMLSchema10
        key = self._wrapper_key(index, members)
        self._documents.refused.clear()
        try:
            return cls(
                file_url(key),
                allow="local",
                defuse="always",
                opener=self._documents.opener(),
                uri_mapper=self._documents.map_remote,
                use_fallback=False,
            )
        except (xmlschema.XMLSchemaException, OSError, urllib.error.URLError) as exc:
            raise CatalogueError(f"{_xmlschema_source(exc)}{exc}{self._refused_note()}") from None

    def _namespace_roots(self, active: list[SchemaFile], included: set[str]) -> dict[str, str]:
        """Per namespace, the one document to import it from (generated if several files)."""
        by_ns: dict[str, list[SchemaFile]] = {}
        for f in active:
            by_ns.setdefault(f.namespace, []).append(f)
        roots: dict[str, str] = {}
        for namespace, files in by_ns.items():
            tops = [f for f in files if f.key not in included] or files[:1]
            if namespace == "" or len(tops) == 1:
                roots[namespace] = tops[0].key if namespace else ""
                continue
            key = f"{_VIRTUAL_DIR}/namespace-{len(roots)}.xsd"
            body = "".join(f"<xs:include schemaLocation={quoteattr(file_url(t.key))}/>" for t in tops)
            schema = f'<xs:schema xmlns:xs="{XSD_NS}" targetNamespace={quoteattr(namespace)}>{body}</xs:schema>'
            self._documents.add(key, schema.encode())
            roots[namespace] = key
        return roots

    def _wrapper_key(self, index: int, members: set[str]) -> str:
        key = f"{_VIRTUAL_DIR}/component-{index}.xsd"
        if key not in self._documents:
            parts = [f'<xs:schema xmlns:xs="{XSD_NS}">']
            if "" in members:
                parts += [f"<xs:include schemaLocation={quoteattr(file_url(k))}/>" for k in self._no_namespace_tops]
            # File URLs, not paths: libxml2 silently skips a location that is not a valid URI
            # (a path with a space, say) instead of asking the resolver.
            parts += [
                f"<xs:import namespace={quoteattr(ns)} schemaLocation={quoteattr(file_url(self.namespace_roots[ns]))}/>"
                for ns in sorted(members)
                if ns
            ]
            parts.append("</xs:schema>")
            self._documents.add(key, "".join(parts).encode())
        return key

    def _describe_lxml_failure(self, exc: etree.XMLSchemaParseError) -> str:
        errors = [e for e in exc.error_log if e.level >= etree.ErrorLevels.ERROR]
        first = errors[0] if errors else None
        where = f"{path_key(first.filename) or first.filename}:{first.line}: " if first is not None else ""
        message = first.message if first is not None else str(exc)
        return f"{where}{message}{self._refused_note()}"

    def _refused_note(self) -> str:
        refused = self._documents.refused
        return f" (refused to load: {', '.join(refused)})" if refused else ""


def _xmlschema_source(exc: BaseException) -> str:
    url = getattr(exc, "url", None) or getattr(getattr(exc, "source", None), "url", None)
    if isinstance(url, str) and url.startswith("file://"):
        return f"{path_key(url)}: "
    return f"{url}: " if url else ""
