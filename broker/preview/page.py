"""The citizen's preview page: plain HTML in the citizen pages' frame, no scripts.

Shown only to the signed-in subject of the exchange (``broker.preview.routes``). The evidence
is shown as its fields (element path and text), which reads well for any of the registry's
document types without a template per type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from broker.citizen.layout import Frame, document, esc, hidden_csrf
from broker.xml.fields import fields_of
from broker.xml.hardened import XmlIntakeError, parse_xml


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
    return fields_of(root)


def _back_link(return_url: str | None) -> str:
    if not return_url:
        return ""
    return f'<p><a href="{esc(return_url)}">Zurück zum Online-Dienst</a></p>'


def pending_page(
    facts: PageFacts, fields: Sequence[tuple[str, str]], return_url: str | None, csrf: str, frame: Frame
) -> str:
    rows = "".join(f'<tr><th scope="row">{esc(label)}</th><td>{esc(value)}</td></tr>' for label, value in fields)
    back = f'<input type="hidden" name="returnurl" value="{esc(return_url)}">' if return_url else ""
    hidden = hidden_csrf(csrf) + back
    until = (
        f'<p class="note">Diese Vorschau gilt bis {esc(facts.expires_at.strftime("%d.%m.%Y %H:%M"))} UTC.</p>'
        if facts.expires_at
        else ""
    )
    body = (
        f"<h1>{esc(facts.evidence_title)}: Vorschau</h1>"
        f"<p><strong>{esc(facts.requester)}</strong> möchte diesen Nachweis von "
        f"<strong>{esc(facts.authority)}</strong> erhalten. Er wird nur übermittelt, "
        "wenn Sie zustimmen.</p>"
        f'<table><caption class="visually-hidden">Inhalt des Nachweises</caption>{rows}</table>{until}'
        f'<form class="inline" method="post"><input type="hidden" name="decision" value="approve">{hidden}'
        '<button class="primary" type="submit">Übermitteln</button></form>'
        f'<form class="inline" method="post"><input type="hidden" name="decision" value="decline">{hidden}'
        '<button type="submit">Ablehnen</button></form>'
    )
    return document("Nachweis-Vorschau", body, frame)


_OUTCOMES = {
    "approved": "Sie haben der Übermittlung zugestimmt. Der Nachweis wurde übermittelt.",
    "declined": "Sie haben die Übermittlung abgelehnt. Der Nachweis wurde nicht übermittelt und verworfen.",
    "expired": "Diese Vorschau ist abgelaufen. Der Nachweis wurde nicht übermittelt und verworfen.",
}


def outcome_page(state: str, return_url: str | None, frame: Frame, already: bool = False) -> str:
    prefix = "Diese Vorschau wurde bereits entschieden. " if already and state != "expired" else ""
    text = _OUTCOMES.get(state, "Diese Vorschau ist nicht mehr verfügbar.")
    return document(
        "Nachweis-Vorschau", f"<h1>Nachweis-Vorschau</h1><p>{prefix}{esc(text)}</p>" + _back_link(return_url), frame
    )


def not_found_page(frame: Frame) -> str:
    return document(
        "Nachweis-Vorschau", "<h1>Nachweis-Vorschau</h1><p>Unter dieser Adresse gibt es keine Vorschau.</p>", frame
    )
