"""The fields of an evidence document: every element with text, labelled by its path.

A reading that suits any of the registry's document types without a template per type. The
citizen's preview page (``broker.preview.page``) and the OOTS gateway's human-readable version
(``broker.oots.human_readable``) both show a document this way; it lives here, below both, so
that neither package imports the other for it.
"""

from __future__ import annotations

from collections.abc import Collection

from lxml import etree

SEPARATOR = " › "


def fields_of(root: etree._Element, skip_namespaces: Collection[str] = ()) -> list[tuple[str, str]]:
    """(label, value) for every element with text below ``root``, labelled by its local names
    from the root down; elements in ``skip_namespaces`` (a seal's signature, say) and all
    below them are left out."""
    fields: list[tuple[str, str]] = []
    for element in root.iter():
        if not isinstance(element.tag, str) or element is root:
            continue
        steps = []
        skipped = False
        node: etree._Element | None = element
        while node is not None and node is not root:
            name = etree.QName(node)
            if name.namespace in skip_namespaces:
                skipped = True
                break
            steps.append(name.localname)
            node = node.getparent()
        text = (element.text or "").strip()
        if skipped or not text or len(element):
            continue
        fields.append((SEPARATOR.join(reversed(steps)), text))
    return fields
