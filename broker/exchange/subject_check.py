"""Is the evidence about the subject asked for?

An authority (or a compromised adapter) can answer with a correctly signed, schema-valid
document about someone else. So before evidence is sealed or held for a preview, the broker
reads the subject the document states — where the evidence type's registry entry says
(:class:`~broker.registry.schemas.SubjectPaths`) — and compares it with the request by the
registers' identity rules (:mod:`adapters.identity`): where both name an IDNr, the IDNr decides;
otherwise family name, given names (all of them, or the first) and birth date must agree, case,
accents and spacing aside. A request that gives only an IDNr cannot be checked against a
document that states none, and fails like a mismatch.
"""

from __future__ import annotations

import re
from datetime import date

from lxml import etree

from adapters.identity import given_names_match, name_key
from adapters.protocol import Subject
from broker.registry.schemas import SubjectPaths

# xs:date: the date, optionally with a time zone (which does not change the day it names).
_XS_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(Z|[+-]\d{2}:\d{2})?$")


def differing_attribute(root: etree._Element, paths: SubjectPaths, requested: Subject) -> str | None:
    """The first attribute by which the document's subject is not the one requested; None if it is."""
    stated = {attribute: _stated(root, path, paths.namespaces) for attribute, path in paths.paths().items()}
    stated_idnr = stated.get("idnr")
    if requested.idnr and stated_idnr:
        return None if stated_idnr == requested.idnr else "idnr"
    if not (requested.family_name and requested.given_name and requested.birth_date):
        return "idnr"
    family, given, born = stated["family_name"], stated["given_names"], stated["birth_date"]
    if family is None or name_key(family) != name_key(requested.family_name):
        return "family_name"
    if given is None or not given_names_match(requested.given_name, name_key(given)):
        return "given_names"
    if born is None or _xs_date(born) != requested.birth_date:
        return "birth_date"
    return None


def stated_idnr(root: etree._Element, paths: SubjectPaths) -> str | None:
    """The IDNr the document states, where its type says it states one; None otherwise."""
    return _stated(root, paths.idnr, paths.namespaces) if paths.idnr else None


def _stated(root: etree._Element, path: str, namespaces: dict[str, str]) -> str | None:
    """The text the path selects: None unless it is exactly one non-empty value (a document
    naming two subjects states none)."""
    try:
        found = root.xpath(path, namespaces=namespaces)
    except etree.XPathError:  # a path stored before paths were checked on write
        return None
    if isinstance(found, str):
        text = found
    elif isinstance(found, list) and len(found) == 1:
        node = found[0]
        text = "".join(node.itertext()) if isinstance(node, etree._Element) else str(node)
    else:
        return None
    return text.strip() or None


def _xs_date(text: str) -> date | None:
    match = _XS_DATE.match(text)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
