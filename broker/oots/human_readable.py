"""The human-readable version of a structured evidence document, as a PDF (fpdf2).

Evidence that is structured but conforms to no OOTS data model is to be accompanied by a
human-readable version (TDD, user journey step 6, "Evidence Response"): the registry's
evidence types are German register extracts, none of them an OOTS data model. The PDF is
rendered from the very XML document the response carries (the sealed one, its signature left
out), as the document's fields, labelled by their element path, the way the citizen's preview
page shows them (:mod:`broker.xml.fields`). It is a rendering, not a second original: the page
says so and names the XML document it was made from.

Pure: bytes in, bytes out; the same document and facts give the same PDF (the creation date is
the evidence's issuing time, not the moment of rendering), so a resent request gets the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fpdf import FPDF

from broker.xml.fields import fields_of
from broker.xml.hardened import parse_xml

MEDIA_TYPE = "application/pdf"
# The seal (XMLDSig with XAdES properties) is for machines; the page shows the content only.
_SEAL_NAMESPACES = ("http://www.w3.org/2000/09/xmldsig#", "http://uri.etsi.org/01903/v1.3.2#")
# The PDF core fonts need no font file on the machine; they cover Windows-1252, which holds
# German and most Western European text. Anything beyond is shown as "?" rather than failing.
_ENCODING = "windows-1252"


@dataclass(frozen=True)
class PdfFacts:
    """What the page says about the document besides its fields."""

    title: str
    authority: str
    issued: datetime
    evidence_id: str


def _printable(text: str) -> str:
    return text.encode(_ENCODING, "replace").decode(_ENCODING)


def render_pdf(evidence: bytes, facts: PdfFacts) -> bytes:
    """The PDF of an evidence document's fields. Raises ``XmlIntakeError`` for a document that
    cannot be read (never the case for evidence the broker checked and sealed)."""
    fields = fields_of(parse_xml(evidence), _SEAL_NAMESPACES) or [("", "(keine Angaben / no content)")]
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = _ENCODING
    pdf.set_creation_date(facts.issued)
    pdf.set_title(_printable(facts.title))
    pdf.set_author(_printable(facts.authority))
    pdf.set_creator("Once-Only evidence broker")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 9, _printable(facts.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    pdf.multi_cell(
        0,
        6,
        _printable(f"{facts.authority}, {facts.issued.date().isoformat()}"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(4)
    pdf.set_font("Helvetica", size=9)
    with pdf.table(col_widths=(40, 60), text_align="LEFT", first_row_as_headings=False) as table:
        for label, value in fields:
            row = table.row()
            row.cell(_printable(label))
            row.cell(_printable(value))
    pdf.ln(6)
    pdf.set_font("Helvetica", "I", 8)
    note = (
        "Lesbare Fassung des elektronisch gesiegelten Nachweises (XML), der mit dieser Datei übermittelt "
        f"wurde; maßgeblich ist der gesiegelte Nachweis {facts.evidence_id}. / Human-readable version of "
        f"the sealed evidence (XML) delivered with this file; the sealed evidence {facts.evidence_id} prevails."
    )
    pdf.multi_cell(0, 4, _printable(note), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
