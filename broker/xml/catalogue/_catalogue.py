"""The facade: loading a catalogue runs index, link, compile; afterwards it validates and decodes."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree

from broker.xml.catalogue._compile import SchemaCompiler
from broker.xml.catalogue._index import components, scan
from broker.xml.catalogue._resolve import LocalDocuments
from broker.xml.catalogue._validate import LxmlValidator, Validator, XmlschemaValidator, xmlschema_error
from broker.xml.hardened import UNEXPECTED_ROOT, XmlIntakeError, element_path


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


class SchemaCatalogue:
    """Every schema under ``dirs``, compiled when the catalogue loads; safe to share between threads."""

    def __init__(self, dirs: Iterable[Path | str]) -> None:
        self.dirs = [Path(d).resolve() for d in dirs]
        self._files = scan(self.dirs)
        active = [f for f in self._files if f.shadowed_by is None]
        documents = LocalDocuments(self._files)
        included = documents.link(active)
        self._compiler = SchemaCompiler(documents, active, included)
        documents.map_imports(active, self._compiler.namespace_roots)
        self._components = components(active, set(self._compiler.namespace_roots))
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
            raise xmlschema_error(exc) from None
        if not isinstance(data, dict):  # simple-content roots decode to a bare value
            data = {etree.QName(root).localname: data}
        return data

    def _compile(self, index: int) -> Validator:
        members = self._components[index]
        if self._engines[index] == "xmlschema":
            return XmlschemaValidator(self._compiler.xmlschema(index, members, "1.1"))
        return LxmlValidator(self._compiler.lxml(index, members))

    def _decoder(self, index: int) -> xmlschema.XMLSchemaBase:
        with self._decoder_lock:
            decoder = self._decoders.get(index)
            if decoder is None:
                members = self._components[index]
                validator = self._validators[sorted(members)[0]]
                if isinstance(validator, XmlschemaValidator):
                    decoder = validator.schema
                else:
                    declared = any(
                        f.declared_version == "1.1"
                        for f in self._files
                        if f.namespace in members and f.shadowed_by is None
                    )
                    decoder = self._compiler.xmlschema(index, members, "1.1" if declared else "1.0")
                self._decoders[index] = decoder
            return decoder


def _namespace_of(tag: str) -> str:
    return tag[1 : tag.index("}")] if tag[:1] == "{" else ""
