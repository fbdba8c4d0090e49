"""The citizen's preview page: plain HTML, no scripts, no external resources.

Framework-free so it can be rendered and checked without a server. Every value that reaches
the page is escaped; the evidence is shown as its fields (element path and text), which reads
well for any of the registry's document types without a template per type.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from broker.xml.hardened import XmlIntakeError, parse_xml

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}"
    "table{border-collapse:collapse;width:100%;margin:1rem 0}"
    "th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}"
    "th{font-weight:600;color:#444;width:40%}"
    "form{display:inline-block;margin-right:1rem}"
    "button{font-size:1rem;padding:.5rem 1.2rem;cursor:pointer}"
    ".note{color:#555}"
)


@dataclass(frozen=True)
class PageFacts:
    evidence_title: str
    authority: str
    requester: str
    expires_at: datetime | None


def evidence_fields(evidence: bytes) -> list[tuple[str, str]]:
    """(label, value) for every element with text, labelled by its path below the root."""
    try:
        root = parse_xml(evidence)
    except XmlIntakeError:
        return [("Nachweis", "(nicht darstellbar)")]
    fields: list[tuple[str, str]] = []
    for element in root.iter():
        if not isinstance(element.tag, str) or element is root:
            continue
        text = (element.text or "").strip()
        if not text or len(element):
            continue
        steps = []
        node: etree._Element | None = element
        while node is not None and node is not root:
            steps.append(etree.QName(node).localname)
            node = node.getparent()
        fields.append((" › ".join(reversed(steps)), text))
    return fields


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="de"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _back_link(return_url: str | None) -> str:
    if not return_url:
        return ""
    return f'<p><a href="{html.escape(return_url, quote=True)}">Zurück zum Online-Dienst</a></p>'


def pending_page(facts: PageFacts, fields: Sequence[tuple[str, str]], return_url: str | None) -> str:
    rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>" for label, value in fields)
    hidden = (
        f'<input type="hidden" name="returnurl" value="{html.escape(return_url, quote=True)}">' if return_url else ""
    )
    until = (
        f'<p class="note">Diese Vorschau gilt bis {html.escape(facts.expires_at.strftime("%d.%m.%Y %H:%M"))} UTC.</p>'
        if facts.expires_at
        else ""
    )
    body = (
        f"<h1>{html.escape(facts.evidence_title)}: Vorschau</h1>"
        f"<p><strong>{html.escape(facts.requester)}</strong> möchte diesen Nachweis von "
        f"<strong>{html.escape(facts.authority)}</strong> erhalten. Er wird nur übermittelt, "
        "wenn Sie zustimmen.</p>"
        f"<table>{rows}</table>{until}"
        f'<form method="post"><input type="hidden" name="decision" value="approve">{hidden}'
        '<button type="submit">Übermitteln</button></form>'
        f'<form method="post"><input type="hidden" name="decision" value="decline">{hidden}'
        '<button type="submit">Ablehnen</button></form>'
    )
    return _document("Nachweis-Vorschau", body)


_OUTCOMES = {
    "approved": "Sie haben der Übermittlung zugestimmt. Der Nachweis wurde übermittelt.",
    "declined": "Sie haben die Übermittlung abgelehnt. Der Nachweis wurde nicht übermittelt und verworfen.",
    "expired": "Diese Vorschau ist abgelaufen. Der Nachweis wurde nicht übermittelt und verworfen.",
}


def outcome_page(state: str, return_url: str | None, already: bool = False) -> str:
    prefix = "Diese Vorschau wurde bereits entschieden. " if already and state != "expired" else ""
    text = _OUTCOMES.get(state, "Diese Vorschau ist nicht mehr verfügbar.")
    return _document(
        "Nachweis-Vorschau", f"<h1>Nachweis-Vorschau</h1><p>{prefix}{html.escape(text)}</p>" + _back_link(return_url)
    )


def not_found_page() -> str:
    return _document(
        "Nachweis-Vorschau", "<h1>Nachweis-Vorschau</h1><p>Unter dieser Adresse gibt es keine Vorschau.</p>"
    )
