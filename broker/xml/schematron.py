"""The OOTS business rules: a small ISO Schematron engine on Saxon-HE (``saxonche``).

The EC publishes the OOTS rules as ISO Schematron with ``queryBinding="xslt2"``: XPath 2+,
which lxml's XSLT 1.0 Schematron cannot run. This module translates a ``.sch`` file into an
XSLT 3.0 stylesheet of its own (the way the ISO skeleton does, but built as a tree, so no text
from the rule file is ever pasted into markup), compiles it once with Saxon and runs it on
documents that already went through the intake door (:func:`broker.xml.hardened.parse_xml`).

The translation, for the subset the OOTS files use (``schema``, ``ns``, ``pattern``, ``rule``,
``let``, ``assert``, ``report``, ``value-of``; ``name``, ``emph``, ``dir``, ``span``, ``title``
and ``p`` too; anything else is refused with :class:`SchematronError` rather than ignored):

- one mode per pattern; each rule is a template ``match="{context}"`` in that mode, with a
  priority that falls in document order, so the first rule of a pattern that matches a node
  is the only one that fires for it (ISO Schematron's rule); every template, and a lowest
  priority template for nodes no rule matches, goes on over the node's attributes and children;
- ``let`` becomes a variable: schema lets global ones, pattern lets are evaluated once on the
  document and tunnelled to the pattern's templates, rule lets are local;
- each assert and report is wrapped in ``xsl:try``: a rule whose XPath fails on this input
  (``matches()`` over two nodes, say, which untrusted input can provoke) is reported as a
  failure of that rule ("cannot be evaluated: …"), it does not abort the whole check;
- a failure is an element carrying only the check's number, ``path()`` of the context node and
  the message (text plus evaluated ``value-of``); the rule id and flag stay on the Python side.

Severity: the OOTS files mark asserts with ``flag="ERROR"``/``"FATAL"`` or
``role="error"``/``"warning"``/``"info"``, and most (504 of 561) with neither. A failure's
``flag`` is the ``flag`` attribute, else the ``role``, lower-cased; ``warning`` and ``info``
do not make a document fail (:attr:`Failure.blocking`), everything else does, unflagged
included, because an unflagged OOTS assert is a MUST.

Which rules apply to a message is :func:`kind_of`'s decision (read its docstring), with
:data:`RULE_FILES` naming the files of each kind in the directory the operator configured
(``BROKER_OOTS_RULES_PATH``): the rules are third-party files, never copied into the project.

Saxon never reads anything itself: the processor is configured with no allowed URI scheme
(``allowedProtocols`` empty), so neither ``doc()``/``unparsed-text()`` in a rule nor an
external entity can reach a file or the network, and the document it sees is the hardened
parser's tree serialised again (root element only: no DOCTYPE can be left in it, XInclude
elements were refused by the parser, and Saxon's XInclude support stays off).

Threads: saxonche keeps the GIL while a transformation runs (measured: another Python thread
makes no progress meanwhile, and two threads' transforms take twice as long as one), and its
documentation says a ``PyXsltExecutable`` is not thread-safe (one clone per thread). With no
parallelism to win, one lock serialises every use of the single per-process processor.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from lxml import etree
from saxonche import PySaxonApiError, PySaxonProcessor

from broker.xml.hardened import XmlIntakeError, parse_xml

SCH_NS: Final = "http://purl.oclc.org/dsdl/schematron"
XSL_NS: Final = "http://www.w3.org/1999/XSL/Transform"
# Our own vocabulary for the stylesheet's output; it never leaves this module.
RESULT_NS: Final = "urn:once-only-broker:schematron-result"
_ERR_NS: Final = "http://www.w3.org/2005/xqt-errors"

_QUERY_NS: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:query:4.0"
_RIM_NS: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:4.0"
_RS_NS: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:4.0"
_LCM_NS: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:4.0"
_SDG_NS: Final = "http://data.europa.eu/p4s"
_FAILURE_STATUS: Final = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"

# Flags (or roles) that report without failing the document; any other flag, or none, fails it.
NON_BLOCKING_FLAGS: Final = frozenset({"warning", "warn", "info", "information"})

# The query bindings whose expressions are XPath that XSLT 3.0 (XPath 3.1) evaluates as meant;
# three of the OOTS files declare none (ISO's default, "xslt").
_QUERY_BINDINGS: Final = frozenset({"", "xslt", "xslt2", "xslt3", "xpath2", "xpath3", "xpath31"})
# Documentation elements: allowed where ISO allows them, and not part of any check.
_DOCUMENTATION: Final = frozenset({"title", "p"})
_NCNAME: Final = re.compile(r"^[A-Za-z_][\w.\-]*$")


class SchematronError(Exception):
    """A rule file that cannot be read, is outside the supported subset, or does not compile."""


class UnknownMessageKind(ValueError):
    """A document that is not one of the OOTS messages the rule files cover."""


# --- which rules apply to which message ------------------------------------------------------


class MessageKind(StrEnum):
    EVIDENCE_REQUEST = "evidence-request"
    EVIDENCE_RESPONSE = "evidence-response"
    EVIDENCE_ERROR = "evidence-error"
    DSD_RESPONSE = "dsd-response"
    DSD_ERROR = "dsd-error"
    EB_REQUIREMENTS_RESPONSE = "eb-requirements-response"
    EB_EVIDENCE_TYPES_RESPONSE = "eb-evidence-types-response"
    EB_ERROR = "eb-error"
    DSD_SUBMISSION = "dsd-submission"
    EB_SUBMISSION = "eb-submission"
    LCM_SUCCESS = "lcm-success"
    LCM_ERROR = "lcm-error"


# The rule files (stems of ``.sch`` files in the rules directory) each kind must pass:
# structure (-S) first, then content (-C); the EB error and LCM responses have one file each.
RULE_FILES: Final[Mapping[MessageKind, tuple[str, ...]]] = {
    MessageKind.EVIDENCE_REQUEST: ("EDM-REQ-S", "EDM-REQ-C"),
    MessageKind.EVIDENCE_RESPONSE: ("EDM-RESP-S", "EDM-RESP-C"),
    MessageKind.EVIDENCE_ERROR: ("EDM-ERR-S", "EDM-ERR-C"),
    MessageKind.DSD_RESPONSE: ("DSD-RESP-S", "DSD-RESP-C"),
    MessageKind.DSD_ERROR: ("DSD-ERR-S", "DSD-ERR-C"),
    MessageKind.EB_REQUIREMENTS_RESPONSE: ("EB-REQ-S", "EB-REQ-C"),
    MessageKind.EB_EVIDENCE_TYPES_RESPONSE: ("EB-EVI-S", "EB-EVI-C"),
    MessageKind.EB_ERROR: ("EB-ERR",),
    MessageKind.DSD_SUBMISSION: ("DSD-SUB-S", "DSD-SUB-C"),
    MessageKind.EB_SUBMISSION: ("EB-SUB-S", "EB-SUB-C"),
    MessageKind.LCM_SUCCESS: ("LCM-SUC",),
    MessageKind.LCM_ERROR: ("LCM-ERR",),
}

# What a registry object's slot (or classification node) names in each directory's messages.
_DSD_NAMES: Final = frozenset({"DataServiceEvidenceType", "EvidenceProvider", "DataServiceEvidenceProvider"})
_EB_NAMES: Final = frozenset({"Requirement", "EvidenceType", "EvidenceTypeList", "ReferenceFramework", "Procedure"})


def kind_of(root: etree._Element) -> MessageKind | None:
    """Which OOTS message ``root`` is, or None for anything the rule files do not cover.

    - ``query:QueryRequest``: an evidence request (the DSD and the Evidence Broker are queried
      over REST with URL parameters, so every RegRep query request in OOTS is one).
    - ``query:QueryResponse``: an error if it has an ``rs:Exception`` child or the Failure
      status, else a response (Success or Unavailable). Whose, decided in this order:
      1. an exception ``code`` prefix: ``EDM:`` evidence, ``DSD:`` DSD, ``EB:`` Evidence Broker;
      2. ``rim:Slot`` children of the root: only evidence messages have them
         (SpecificationIdentifier, EvidenceResponseIdentifier, …; DSD and EB responses carry
         their data in registry objects, and their errors forbid root slots);
      3. the slots of the registry objects: ``EvidenceMetadata`` evidence,
         ``DataServiceEvidenceType`` DSD, ``Requirement`` Evidence Broker, where a requirement
         listing ``sdg:EvidenceTypeList`` answers the evidence-types query (EB-EVI) and one
         without answers the requirements query (EB-REQ).
    - ``lcm:SubmitObjectsRequest``: a DSD or an EB submission, by the classification scheme of
      its objects (``…:classification:dsd`` / ``…:classification:eb``), else by their slot names.
    - ``rs:RegistryResponse``: the LCM error with an exception or the Failure status, else success.
    """
    tag = root.tag if isinstance(root.tag, str) else ""
    if tag == f"{{{_QUERY_NS}}}QueryRequest":
        return MessageKind.EVIDENCE_REQUEST
    if tag == f"{{{_QUERY_NS}}}QueryResponse":
        return _query_response_kind(root)
    if tag == f"{{{_LCM_NS}}}SubmitObjectsRequest":
        return _submission_kind(root)
    if tag == f"{{{_RS_NS}}}RegistryResponse":
        failed = root.find(f"{{{_RS_NS}}}Exception") is not None or root.get("status") == _FAILURE_STATUS
        return MessageKind.LCM_ERROR if failed else MessageKind.LCM_SUCCESS
    return None


def _query_response_kind(root: etree._Element) -> MessageKind | None:
    exceptions = root.findall(f"{{{_RS_NS}}}Exception")
    failed = bool(exceptions) or root.get("status") == _FAILURE_STATUS
    family = _family_by_code(exceptions)
    if family is None and root.find(f"{{{_RIM_NS}}}Slot") is not None:
        family = "EDM"
    if family is None and not failed:
        family = _family_by_objects(root)
    if family == "EDM":
        return MessageKind.EVIDENCE_ERROR if failed else MessageKind.EVIDENCE_RESPONSE
    if family == "DSD":
        return MessageKind.DSD_ERROR if failed else MessageKind.DSD_RESPONSE
    if family == "EB":
        if failed:
            return MessageKind.EB_ERROR
        requirements = root.iterfind(f"{{{_RIM_NS}}}RegistryObjectList//{{{_SDG_NS}}}Requirement")
        if any(r.find(f"{{{_SDG_NS}}}EvidenceTypeList") is not None for r in requirements):
            return MessageKind.EB_EVIDENCE_TYPES_RESPONSE
        return MessageKind.EB_REQUIREMENTS_RESPONSE
    return None


def _family_by_code(exceptions: Iterable[etree._Element]) -> str | None:
    for exception in exceptions:
        prefix = (exception.get("code") or "").split(":", 1)[0].strip().upper()
        if prefix in ("EDM", "DSD", "EB"):
            return prefix
    return None


def _family_by_objects(root: etree._Element) -> str | None:
    names = {
        slot.get("name")
        for slot in root.iterfind(f"{{{_RIM_NS}}}RegistryObjectList/{{{_RIM_NS}}}RegistryObject/{{{_RIM_NS}}}Slot")
    }
    if "EvidenceMetadata" in names:
        return "EDM"
    if "DataServiceEvidenceType" in names:
        return "DSD"
    if "Requirement" in names:
        return "EB"
    return None


def _submission_kind(root: etree._Element) -> MessageKind | None:
    objects = list(root.iterfind(f"{{{_RIM_NS}}}RegistryObjectList/{{{_RIM_NS}}}RegistryObject"))
    schemes = {
        (classification.get("classificationScheme") or "").rsplit(":", 1)[-1]
        for item in objects
        for classification in item.iterfind(f"{{{_RIM_NS}}}Classification")
    }
    directories = schemes & {"dsd", "eb"}
    if len(directories) == 1:
        return MessageKind.DSD_SUBMISSION if "dsd" in directories else MessageKind.EB_SUBMISSION
    names = {slot.get("name") for item in objects for slot in item.iterfind(f"{{{_RIM_NS}}}Slot")}
    dsd, eb = bool(names & _DSD_NAMES), bool(names & _EB_NAMES)
    if dsd != eb:
        return MessageKind.DSD_SUBMISSION if dsd else MessageKind.EB_SUBMISSION
    return None


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A failed assert or a fired report.

    ``rule_id`` is the assert's ``id`` (``file.sch:line`` where it has none); ``flag`` its
    ``flag``, else its ``role``, lower-cased, empty when it has neither; ``location`` the XPath
    3 ``path()`` of the node the rule fired on, its ``Q{uri}`` written with the rule file's
    prefixes (``/query:QueryResponse[1]/@requestId``); ``message`` the text, ``value-of``
    evaluated, whitespace collapsed to single spaces.
    """

    rule_id: str
    flag: str
    location: str
    message: str

    @property
    def blocking(self) -> bool:
        """Whether this failure makes the document fail (everything but warnings and infos)."""
        return self.flag not in NON_BLOCKING_FLAGS

    @property
    def severity(self) -> str:
        """The flag as shown to people: an unflagged assert is an error."""
        return self.flag or "error"


@dataclass(frozen=True)
class Check:
    """What the generated stylesheet's check number ``n`` (its index here) stands for."""

    rule_id: str
    flag: str


@dataclass(frozen=True)
class Translation:
    """A schema translated to XSLT 3.0, and the checks its failures refer to by number."""

    xslt: bytes
    checks: tuple[Check, ...]
    namespaces: Mapping[str, str]  # the schema's sch:ns, prefix → URI


# --- translation: .sch tree → XSLT tree ------------------------------------------------------


def _sch(local: str) -> str:
    return f"{{{SCH_NS}}}{local}"


def _xsl(parent: etree._Element, local: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{XSL_NS}}}{local}", attributes)


def _children(element: etree._Element) -> Iterator[etree._Element]:
    """The element children (comments and processing instructions are no part of a schema)."""
    for child in element:
        if isinstance(child.tag, str):
            yield child


def _local(element: etree._Element, where: str) -> str:
    """The local name of a Schematron element; anything from another namespace is refused."""
    qname = etree.QName(element)
    if qname.namespace != SCH_NS:
        raise SchematronError(f"{where}: element {element.tag} is not Schematron (line {element.sourceline})")
    return qname.localname


def _unsupported(element: etree._Element, where: str) -> SchematronError:
    name = etree.QName(element).localname
    return SchematronError(f"{where}: sch:{name} is not supported here (line {element.sourceline})")


def _required(element: etree._Element, attribute: str, where: str) -> str:
    value = element.get(attribute)
    if value is None or not value.strip():
        name = etree.QName(element).localname
        raise SchematronError(f"{where}: sch:{name} without {attribute} (line {element.sourceline})")
    return value


def translate(schema: etree._Element, source: str = "schema") -> Translation:
    """Translate a parsed ``sch:schema`` into an XSLT 3.0 stylesheet; ``source`` names it in
    errors and in the fallback rule ids."""
    if schema.tag != _sch("schema"):
        raise SchematronError(f"{source}: the root element is {schema.tag}, not sch:schema")
    binding = (schema.get("queryBinding") or "").strip().lower()
    if binding not in _QUERY_BINDINGS:
        raise SchematronError(f"{source}: queryBinding {binding!r} is not supported")
    if schema.get("defaultPhase"):
        raise SchematronError(f"{source}: phases are not supported")

    namespaces: dict[str, str] = {}
    lets: list[etree._Element] = []
    patterns: list[etree._Element] = []
    for child in _children(schema):
        name = _local(child, source)
        if name == "ns":
            prefix, uri = _required(child, "prefix", source), _required(child, "uri", source)
            if prefix in ("xsl", "xml") or namespaces.get(prefix, uri) != uri:
                raise SchematronError(f"{source}: prefix {prefix!r} cannot be bound to {uri!r}")
            namespaces[prefix] = uri
        elif name == "let":
            lets.append(child)
        elif name == "pattern":
            patterns.append(child)
        elif name not in _DOCUMENTATION:
            raise _unsupported(child, source)

    try:
        stylesheet = etree.Element(f"{{{XSL_NS}}}stylesheet", {"version": "3.0"}, nsmap={"xsl": XSL_NS, **namespaces})
    except ValueError as exc:  # an sch:ns prefix or URI lxml cannot bind
        raise SchematronError(f"{source}: {exc}") from None
    _xsl(stylesheet, "output", method="xml", indent="no", encoding="UTF-8")
    for let in lets:
        # Global variables: the global context item is the document, as ISO requires.
        _xsl(stylesheet, "variable", name=_let_name(let, source), select=_required(let, "value", source))

    checks: list[Check] = []
    root_template = _xsl(stylesheet, "template", match="/")
    results = _xsl(root_template, "element", name="results", namespace=RESULT_NS)
    for number, pattern in enumerate(patterns, 1):
        _pattern(stylesheet, results, pattern, f"M{number}", checks, source)
    xslt = etree.tostring(stylesheet, xml_declaration=True, encoding="UTF-8")
    return Translation(xslt=xslt, checks=tuple(checks), namespaces=dict(namespaces))


def _let_name(let: etree._Element, where: str) -> str:
    name = _required(let, "name", where)
    if not _NCNAME.match(name):
        raise SchematronError(f"{where}: let name {name!r} is not a plain name (line {let.sourceline})")
    return name


def _pattern(
    stylesheet: etree._Element,
    results: etree._Element,
    pattern: etree._Element,
    mode: str,
    checks: list[Check],
    source: str,
) -> None:
    if pattern.get("abstract") == "true" or pattern.get("is-a"):
        raise SchematronError(f"{source}: abstract patterns are not supported (line {pattern.sourceline})")
    lets: list[etree._Element] = []
    rules: list[etree._Element] = []
    for child in _children(pattern):
        name = _local(child, source)
        if name == "let":
            lets.append(child)
        elif name == "rule":
            rules.append(child)
        elif name not in _DOCUMENTATION:
            raise _unsupported(child, source)

    # Pattern lets are evaluated once, on the document, and reach every template of the mode as
    # tunnel parameters (apply-templates passes them on, through the fallback template too).
    # xsl:for-each over the document only scopes the variables to this pattern.
    scope = _xsl(results, "for-each", select=".") if lets else results
    names = [_let_name(let, source) for let in lets]
    for let, name in zip(lets, names, strict=True):
        _xsl(scope, "variable", name=name, select=_required(let, "value", source))
    start = _xsl(scope, "apply-templates", select="/", mode=mode)
    for name in names:
        _xsl(start, "with-param", name=name, select=f"${name}", tunnel="yes")

    for position, rule in enumerate(rules):
        # Priorities fall in document order: of a pattern's rules matching one node, only the
        # first one's template runs.
        _rule(stylesheet, rule, mode, len(rules) - position, names, checks, source)
    fallback = _xsl(stylesheet, "template", match="/|@*|node()", mode=mode, priority="-1")
    _xsl(fallback, "apply-templates", select="@*|node()", mode=mode)


def _rule(
    stylesheet: etree._Element,
    rule: etree._Element,
    mode: str,
    priority: int,
    tunnelled: list[str],
    checks: list[Check],
    source: str,
) -> None:
    if rule.get("abstract") == "true":
        raise SchematronError(f"{source}: abstract rules are not supported (line {rule.sourceline})")
    context = _required(rule, "context", source)
    template = _xsl(stylesheet, "template", match=context, mode=mode, priority=str(priority))
    for name in tunnelled:
        _xsl(template, "param", name=name, tunnel="yes")
    lets: list[etree._Element] = []
    for child in _children(rule):
        name = _local(child, source)
        if name == "let":
            lets.append(child)
        elif name in ("assert", "report"):
            _check(template, child, lets, checks, source)
        elif name not in _DOCUMENTATION:
            raise _unsupported(child, source)
    _xsl(template, "apply-templates", select="@*|node()", mode=mode)


def _check(
    template: etree._Element,
    check: etree._Element,
    lets: list[etree._Element],
    checks: list[Check],
    source: str,
) -> None:
    number = str(len(checks))
    flag = (check.get("flag") or check.get("role") or "").strip().lower()
    checks.append(Check(rule_id=check.get("id") or f"{source}:{check.sourceline}", flag=flag))
    test = _required(check, "test", source)

    attempt = _xsl(template, "try")
    # The rule's lets live inside the try, so an error evaluating one is caught like any other.
    for let in lets:
        _xsl(attempt, "variable", name=_let_name(let, source), select=_required(let, "value", source))
    if etree.QName(check).localname == "assert":
        # choose/otherwise rather than not(…): the test goes into the stylesheet untouched.
        choice = _xsl(attempt, "choose")
        _xsl(choice, "when", test=test)
        body = _xsl(choice, "otherwise")
    else:
        body = _xsl(attempt, "if", test=test)
    _message(_failure(body, number), check, source)

    caught = _failure(_xsl(attempt, "catch"), number)
    _xsl(caught, "text").text = "cannot be evaluated: "
    _xsl(caught, "value-of", select=f"$Q{{{_ERR_NS}}}description")


def _failure(parent: etree._Element, number: str) -> etree._Element:
    failure = _xsl(parent, "element", name="failure", namespace=RESULT_NS)
    _xsl(failure, "attribute", name="n").text = number  # literal content, never an AVT
    _xsl(failure, "attribute", name="location", select="path()")
    return failure


def _message(failure: etree._Element, element: etree._Element, source: str) -> None:
    """The message: text as ``xsl:text`` (escaped by the serialiser), expressions evaluated."""
    if element.text:
        _xsl(failure, "text").text = element.text
    for child in element:
        if isinstance(child.tag, str):
            name = _local(child, source)
            if name == "value-of":
                _xsl(failure, "value-of", select=_required(child, "select", source))
            elif name == "name":
                # The node's name; for-each keeps the path out of any string we build.
                each = _xsl(failure, "for-each", select=child.get("path") or ".")
                _xsl(each, "value-of", select="name()")
            elif name in ("emph", "dir", "span"):
                _message(failure, child, source)
            else:
                raise _unsupported(child, source)
        if child.tail:
            _xsl(failure, "text").text = child.tail


# --- Saxon ------------------------------------------------------------------------------------

_saxon_lock = threading.Lock()
_processor: Any = None  # PySaxonProcessor; created on first use, one per process


def _saxon() -> Any:
    """The process's Saxon processor (call with ``_saxon_lock`` held)."""
    global _processor
    if _processor is None:
        processor = PySaxonProcessor(license=False)
        # No URI scheme at all: doc(), unparsed-text(), xsl:import and external entities fail.
        processor.set_configuration_property("http://saxon.sf.net/feature/allowedProtocols", "")
        processor.set_configuration_property("http://saxon.sf.net/feature/xinclude-aware", "false")
        processor.set_configuration_property("http://saxon.sf.net/feature/validation", "false")
        _processor = processor
    return _processor


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:500] or type(error).__name__


_RESULT_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
_result_parser_lock = threading.Lock()


class RuleSet:
    """One compiled rule file; :meth:`load` compiles each file once per modification."""

    def __init__(self, path: Path, translation: Translation, executable: Any) -> None:
        self.path = path
        self.name = path.stem
        self._checks = translation.checks
        self._executable = executable
        # path() writes every name as Q{uri}local; the rule file's own prefixes read better
        # and are unambiguous in its context.
        self._prefixes: dict[str, str] = {"http://www.w3.org/XML/1998/namespace": "xml"}
        for prefix, uri in translation.namespaces.items():
            self._prefixes.setdefault(uri, prefix)

    def __repr__(self) -> str:
        return f"RuleSet({str(self.path)!r})"

    @classmethod
    def load(cls, path: Path | str) -> RuleSet:
        """The compiled rule set of ``path``, from the cache while the file is unchanged."""
        return _load(Path(path))

    @classmethod
    def compile(cls, path: Path) -> RuleSet:
        """Read, translate and compile ``path`` (no cache)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SchematronError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            schema = parse_xml(data)
        except XmlIntakeError as exc:
            raise SchematronError(f"{path}: {exc.reason}: {exc.detail}") from None
        translation = translate(schema, path.name)
        with _saxon_lock:
            try:
                compiler = _saxon().new_xslt30_processor()
                executable = compiler.compile_stylesheet(
                    stylesheet_text=translation.xslt.decode("utf-8"), encoding="utf-8"
                )
            except PySaxonApiError as exc:
                raise SchematronError(f"{path}: does not compile: {_one_line(exc)}") from None
        return cls(path, translation, executable)

    def check(self, document: bytes) -> list[Failure]:
        """Parse untrusted ``document`` through the intake door and check it.

        Raises :class:`~broker.xml.hardened.XmlIntakeError` for input the door refuses (so a
        DTD, an entity or an XInclude never reaches Saxon).
        """
        return self.check_tree(parse_xml(document))

    def check_tree(self, root: etree._Element) -> list[Failure]:
        """Check a document that :func:`~broker.xml.hardened.parse_xml` produced."""
        return self._run(_for_saxon(root))

    def _run(self, text: str) -> list[Failure]:
        with _saxon_lock:
            try:
                node = _saxon().parse_xml(xml_text=text, encoding="utf-8")
                output = self._executable.transform_to_string(xdm_node=node)
            except PySaxonApiError as exc:
                raise SchematronError(f"{self.path}: cannot run: {_one_line(exc)}") from None
        if not output:
            raise SchematronError(f"{self.path}: the stylesheet produced no result")
        return self._failures(output)

    def _failures(self, output: str) -> list[Failure]:
        # Saxon's serialisation of our own stylesheet's result: no DOCTYPE can be in it. Large
        # text is allowed because messages quote the (size-limited) input.
        with _result_parser_lock:  # lxml parsers must not be used by two threads at once
            results = etree.fromstring(output.encode("utf-8"), _RESULT_PARSER)
        failures = []
        for element in results.iterchildren(f"{{{RESULT_NS}}}failure"):
            number = int(element.get("n", "-1"))
            if not 0 <= number < len(self._checks):
                raise SchematronError(f"{self.path}: the stylesheet reported an unknown check {number}")
            check = self._checks[number]
            failures.append(
                Failure(
                    rule_id=check.rule_id,
                    flag=check.flag,
                    location=self._readable(element.get("location", "")),
                    message=" ".join("".join(element.itertext()).split()),
                )
            )
        return failures

    def _readable(self, path: str) -> str:
        """``Q{uri}local`` steps written ``prefix:local`` with the schema's prefixes (``local``
        for no namespace); URIs the schema names no prefix for stay as they are."""

        def step(match: re.Match[str]) -> str:
            uri = match.group(1)
            if not uri:
                return ""
            prefix = self._prefixes.get(uri)
            return f"{prefix}:" if prefix else match.group(0)

        return _EQNAME_URI.sub(step, path)


_EQNAME_URI: Final = re.compile(r"Q\{([^{}]*)\}")


def _for_saxon(root: etree._Element) -> str:
    """The root element alone, serialised: no DOCTYPE, no nodes beside the root."""
    return etree.tostring(root, encoding="unicode")


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int], RuleSet]] = {}


def _load(path: Path) -> RuleSet:
    try:
        resolved = path.resolve()
        status = resolved.stat()
    except OSError as exc:
        raise SchematronError(f"{path}: cannot read: {exc.strerror or exc}") from None
    stamp = (status.st_mtime_ns, status.st_size)
    with _cache_lock:
        cached = _cache.get(resolved)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        rule_set = RuleSet.compile(resolved)
        _cache[resolved] = (stamp, rule_set)
        return rule_set


# --- a message against its rules --------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """A message checked against every rule file of its kind."""

    kind: MessageKind
    rule_sets: tuple[str, ...]
    failures: tuple[Failure, ...]

    @property
    def passed(self) -> bool:
        return not any(failure.blocking for failure in self.failures)


def rule_sets_for(kind: MessageKind, directory: Path) -> list[RuleSet]:
    """The compiled rule sets of ``kind`` from ``directory`` (each must exist there)."""
    if not directory.is_dir():
        raise SchematronError(f"{directory}: no such rules directory")
    sets = []
    for stem in RULE_FILES[kind]:
        path = directory / f"{stem}.sch"
        if not path.is_file():
            raise SchematronError(f"{path}: rule file not found (the {kind} rules)")
        sets.append(RuleSet.load(path))
    return sets


def check_message(document: bytes, directory: Path) -> Verdict:
    """Parse ``document`` through the intake door, tell its kind and check it against its rules.

    Raises :class:`~broker.xml.hardened.XmlIntakeError` for refused input,
    :class:`UnknownMessageKind` when :func:`kind_of` cannot tell, :class:`SchematronError`
    when the rule files are missing or broken.
    """
    root = parse_xml(document)
    kind = kind_of(root)
    if kind is None:
        raise UnknownMessageKind(f"root element {root.tag} is not an OOTS message the rules cover")
    sets = rule_sets_for(kind, directory)
    text = _for_saxon(root)
    failures = [failure for rule_set in sets for failure in rule_set._run(text)]
    return Verdict(kind=kind, rule_sets=tuple(s.name for s in sets), failures=tuple(failures))
