"""Resolving: which local document answers each location a schema names; never the network.

Every document the compilers load comes from :class:`LocalDocuments` through a resolver (lxml)
or an opener (xmlschema) that refuses everything else, so remote ``schemaLocation`` URLs and
location-less imports are answered from local files or not at all. Which document answers a
location is decided once, when the catalogue loads: includes by path (by file name when the
path is missing), imports by namespace.
"""

from __future__ import annotations

import io
import posixpath
import re
import urllib.error
import urllib.parse
import urllib.request
import urllib.response
from email.message import Message
from typing import Any

from lxml import etree

from broker.xml.catalogue._index import XSD_NS, CatalogueError, SchemaFile

_NOT_URI = re.compile(r'[\x00-\x20<>"{}|\\^`\x7f]')


class LocalDocuments:
    """The catalogue's files and generated schemas by key (an absolute path), and the table
    from the locations schemas name to those keys."""

    def __init__(self, files: list[SchemaFile]) -> None:
        self._files = files
        self._by_key = {f.key: f for f in files}
        self._content: dict[str, bytes] = {f.key: f.content for f in files}
        self._locations: dict[str, str] = {}
        # What a compiler asked for and did not get, for its error message; cleared per compile.
        self.refused: list[str] = []

    def __contains__(self, key: str) -> bool:
        return key in self._content

    def content(self, key: str) -> bytes:
        return self._content[key]

    def add(self, key: str, content: bytes) -> None:
        """A generated schema; its key must be a path no real file can have."""
        self._content[key] = content

    # --- linking, once at load -------------------------------------------------------------

    def link(self, active: list[SchemaFile]) -> set[str]:
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
                self._locations[absolute(location, f.key)] = target.key
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

    def map_imports(self, active: list[SchemaFile], namespace_roots: dict[str, str]) -> None:
        """Imports resolve by namespace: whatever location a schema names (remote URL, a
        relative path that is missing or shadowed), the catalogue's own document is served."""
        for f in active:
            for namespace, location in f.imports:
                if namespace == XSD_NS or location is None:
                    continue
                url = absolute(location, f.key)
                target = self._by_key.get(path_key(url) or "")
                if target is None or target.shadowed_by is not None or target.namespace != namespace:
                    self._locations[url] = self._pick_by_name(location, namespace) or namespace_roots[namespace]

    def _pick_by_name(self, location: str, namespace: str) -> str | None:
        name = posixpath.basename(urllib.parse.urlparse(location).path)
        for f in self._files:
            if f.shadowed_by is None and f.namespace == namespace and f.path.name == name:
                return f.key
        return None

    def _locate_include(self, location: str, includer: SchemaFile) -> SchemaFile | None:
        found = self._by_key.get(path_key(absolute(location, includer.key)) or "")
        if found is not None:
            return found
        name = posixpath.basename(urllib.parse.urlparse(location).path)
        candidates = [f for f in self._files if f.path.name == name and f.shadowed_by is None]
        same_ns = [f for f in candidates if f.namespace in (includer.namespace, "")]
        return next(iter(same_ns or candidates), None)

    # --- serving, whenever a compiler loads ------------------------------------------------

    def serve(self, url: str) -> tuple[str, bytes] | None:
        """The catalogue document for a URL a compiler asks for, with its real location."""
        key = self._locations.get(url) or self._locations.get(path_key(url) or "") or path_key(url)
        if key is not None and key in self._content:
            return key, self._content[key]
        self.refused.append(url)
        return None

    def map_remote(self, uri: str) -> str:
        # xmlschema asks before resolving relative references; only absolute URLs are mapped
        # here, the opener refuses whatever is left outside the catalogue.
        key = self._locations.get(uri.strip())
        return file_url(key) if key else uri

    def parser(self) -> etree.XMLParser:
        """An lxml parser whose every schema load is answered by :meth:`serve`."""
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        parser.resolvers.add(_DocumentResolver(self))
        return parser

    def opener(self) -> urllib.request.OpenerDirector:
        opener = urllib.request.OpenerDirector()  # deliberately without any network handler
        opener.add_handler(_DocumentHandler(self))
        return opener


def absolute(location: str, base_key: str) -> str:
    location = location.strip()
    if urllib.parse.urlparse(location).scheme not in ("", "file") or location.startswith("/"):
        return location
    return posixpath.normpath(posixpath.join(posixpath.dirname(base_key), urllib.parse.unquote(location)))


def path_key(url: str) -> str | None:
    """The document key for a local URL or path, None for anything remote."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return posixpath.normpath(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "" and url.startswith("/"):
        return posixpath.normpath(urllib.parse.unquote(url))
    return None


def file_url(key: str) -> str:
    return "file://" + urllib.request.pathname2url(key)


class _DocumentResolver(etree.Resolver):
    """libxml2 asks here for every schema document; only catalogue documents are served."""

    def __init__(self, documents: LocalDocuments) -> None:
        super().__init__()
        self._documents = documents

    def resolve(self, system_url: str, public_id: str, context: object) -> Any:
        served = self._documents.serve(system_url)
        if served is None:
            # An empty document makes libxml2 fail this load with its own clear error.
            return self.resolve_string(b"", context)
        key, content = served
        return self.resolve_string(content, context, base_url=file_url(key))


class _DocumentHandler(urllib.request.BaseHandler):
    """The only handler of xmlschema's opener: file URLs inside the catalogue, nothing else."""

    def __init__(self, documents: LocalDocuments) -> None:
        self._documents = documents

    def file_open(self, request: urllib.request.Request) -> urllib.response.addinfourl:
        url = request.full_url
        served = self._documents.serve(url)
        if served is None:
            raise urllib.error.URLError(f"{url} is not in the schema catalogue")
        return urllib.response.addinfourl(io.BytesIO(served[1]), Message(), url)

    def unknown_open(self, request: urllib.request.Request) -> None:
        self._documents.refused.append(request.full_url)
        raise urllib.error.URLError(f"{request.full_url}: the schema catalogue never uses the network")
