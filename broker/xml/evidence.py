"""Evidence documents against their schemas: the check before sealing, and the JSON view after."""

from __future__ import annotations

from typing import Any

from lxml import etree

from broker.xml.catalogue import SchemaCatalogue
from broker.xml.hardened import UNEXPECTED_ROOT, XmlIntakeError, XmlLimits, parse_xml

_SIGNATURE = "{http://www.w3.org/2000/09/xmldsig#}Signature"


class EvidenceSchemas:
    def __init__(self, catalogue: SchemaCatalogue, limits: XmlLimits) -> None:
        self._catalogue = catalogue
        self._limits = limits

    def check(self, evidence: bytes, namespace: str, root_element: str) -> etree._Element:
        """The document's root; raises XmlIntakeError unless it is safe XML with the expected root,
        valid by its schema."""
        root = parse_xml(evidence, self._limits)
        expected = etree.QName(namespace, root_element)
        if root.tag != expected.text:
            raise XmlIntakeError(
                422, UNEXPECTED_ROOT, f"expected root {expected.text}, got {root.tag}", root.sourceline, None, None
            )
        self._catalogue.validate(root)
        return root

    def as_json(self, sealed: bytes) -> dict[str, Any]:
        """Delivered evidence decoded to JSON by its schema (the seal itself is left out)."""
        root = parse_xml(sealed, self._limits)
        for signature in root.findall(_SIGNATURE):
            root.remove(signature)
        return self._catalogue.to_json(root)
