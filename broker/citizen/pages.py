"""The citizen's pages (German): sign-in, the data cockpit, consent requests, refusals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from broker.citizen.layout import Frame, document, esc, hidden_csrf
from broker.citizen.service import Cockpit, ExchangeRow
from broker.db.models import Consent
from broker.registry.service import RegistrySnapshot

PROOF_SCRIPT = "/citizen/static/proof.js"

_STATES = {
    "received": "eingegangen",
    "authorised": "geprüft",
    "routed": "bei der Behörde angefragt",
    "awaiting_preview": "wartet auf Ihre Freigabe",
    "delivered": "übermittelt",
    "rejected": "abgelehnt",
    "failed": "fehlgeschlagen",
    "expired": "abgelaufen",
}
_CONSENT_STATES = {"requested": "angefragt", "granted": "erteilt", "declined": "abgelehnt"}


def when(moment: datetime | None) -> str:
    return moment.strftime("%d.%m.%Y %H:%M UTC") if moment else "–"


def signin_page(login_href: str, frame: Frame, *, lead: str) -> str:
    body = (
        "<h1>Anmeldung erforderlich</h1>"
        f"<p>{esc(lead)}</p>"
        "<p>Sie melden sich bei Ihrem Nutzerkonto (z. B. BundID) an. Der Vermittlungsdienst speichert dabei "
        "keine Angaben zu Ihrer Person.</p>"
        f'<p><a href="{esc(login_href)}">Anmelden</a></p>'
    )
    return document("Anmeldung", body, frame)


# The demo citizens of the development sign-in (the specimen citizen and the register's twins).
DEMO_CITIZENS = ("erika", "erika-ohne-idnr", "jan-schulz")


def dev_signin_page(labels: Sequence[tuple[str, str]], next_path: str, csrf: str, frame: Frame) -> str:
    choices = "".join(
        f'<label><input type="radio" name="citizen" value="{esc(key)}"{" checked" if i == 0 else ""}> '
        f"{esc(label)}</label>"
        for i, (key, label) in enumerate(labels)
    )
    levels = "".join(
        f'<label><input type="radio" name="assurance" value="{level}"{" checked" if level == "high" else ""}> '
        f"{text}</label>"
        for level, text in (("low", "niedrig"), ("substantial", "substanziell"), ("high", "hoch"))
    )
    body = (
        "<h1>Anmeldung (Entwicklung)</h1>"
        "<p>Wählen Sie eine Demo-Person. Diese Anmeldung gibt es nur in der Entwicklungsumgebung.</p>"
        f'<form method="post" action="/citizen/dev-login">{hidden_csrf(csrf)}'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        f"<fieldset><legend>Person</legend>{choices}</fieldset>"
        f"<fieldset><legend>Vertrauensniveau (eIDAS)</legend>{levels}</fieldset>"
        '<button class="primary" type="submit">Anmelden</button></form>'
    )
    return document("Anmeldung (Entwicklung)", body, frame)


def _outcome(row: ExchangeRow) -> str:
    text = _STATES.get(row.state, row.state)
    return f"{text} ({row.reason})" if row.reason else text


def _exchange_rows(rows: Sequence[ExchangeRow]) -> str:
    lines = []
    for row in rows:
        if row.log_index is None:
            index = "noch nicht im Log"
            mark = "–"
        else:
            index = str(row.log_index)
            mark = (
                f'<span id="proof-{row.log_index}" class="proof-pending" data-proof="pending">'
                "Prüfung im Browser …</span>"
                "<noscript>Zur Prüfung im Browser wird JavaScript benötigt.</noscript>"
            )
        lines.append(
            f"<tr><td>{esc(when(row.at))}</td><td>{esc(row.requester)}</td><td>{esc(row.evidence_type)}</td>"
            f"<td>{esc(row.purpose)}</td><td>{esc(row.basis)}</td><td>{esc(_outcome(row))}</td>"
            f"<td>{esc(index)}</td><td>{mark}</td></tr>"
        )
    return "".join(lines)


def _consent_rows(consents: Sequence[Consent], registry: RegistrySnapshot, csrf: str) -> str:
    lines = []
    for consent in consents:
        types = ", ".join(
            registry.evidence_types[t].title if t in registry.evidence_types else t for t in consent.evidence_types
        )
        purpose = registry.purpose(consent.purpose)
        state = _CONSENT_STATES.get(consent.state, consent.state)
        if consent.revoked_at is not None:
            state = f"widerrufen am {when(consent.revoked_at)}"
        actions = f'<a href="/citizen/consents/{esc(consent.id)}">Ansehen</a>'
        if consent.state == "granted" and consent.revoked_at is None:
            actions += (
                f'<form class="inline" method="post" action="/citizen/consents/{esc(consent.id)}/revoke">'
                f'{hidden_csrf(csrf)}<button type="submit">Widerrufen</button></form>'
            )
        lines.append(
            f"<tr><td>{esc(types)}</td><td>{esc(purpose.name if purpose else consent.purpose)}</td>"
            f"<td>{esc(when(consent.valid_until))}</td><td>{esc(state)}</td><td>{actions}</td></tr>"
        )
    return "".join(lines)


def cockpit_page(view: Cockpit, registry: RegistrySnapshot, csrf: str, frame: Frame) -> str:
    pending = "".join(
        f'<li>{esc(row.evidence_type)} für {esc(row.requester)}: <a href="{esc(row.preview_path)}">'
        "Vorschau ansehen und entscheiden</a></li>"
        for row in view.pending_previews
    )
    waiting_consents = [c for c in view.consents if c.state == "requested" and c.revoked_at is None]
    asks = "".join(
        f'<li><a href="/citizen/consents/{esc(c.id)}">Anfrage einer Einwilligung ansehen</a></li>'
        for c in waiting_consents
    )
    todo = (
        f"<h2>Wartet auf Ihre Entscheidung</h2><ul>{pending}{asks}</ul>"
        if pending or asks
        else "<h2>Wartet auf Ihre Entscheidung</h2><p>Nichts.</p>"
    )
    exchanges = (
        '<table><caption class="visually-hidden">Übermittlungen über Sie</caption><thead><tr>'
        '<th scope="col">Zeitpunkt</th><th scope="col">Empfänger</th><th scope="col">Nachweis</th>'
        '<th scope="col">Zweck</th><th scope="col">Rechtsgrundlage</th><th scope="col">Ergebnis</th>'
        '<th scope="col">Log-Index</th><th scope="col">Nachweis im Log</th></tr></thead>'
        f"<tbody>{_exchange_rows(view.exchanges)}</tbody></table>"
        if view.exchanges
        else "<p>Über Sie wurden bisher keine Nachweise angefragt.</p>"
    )
    consents = (
        '<table><caption class="visually-hidden">Ihre Einwilligungen</caption><thead><tr>'
        '<th scope="col">Nachweise</th><th scope="col">Zweck</th><th scope="col">Gültig bis</th>'
        '<th scope="col">Stand</th><th scope="col">Aktion</th></tr></thead>'
        f"<tbody>{_consent_rows(view.consents, registry, csrf)}</tbody></table>"
        if view.consents
        else "<p>Sie haben keine Einwilligungen erteilt oder angefragt bekommen.</p>"
    )
    # Inside a script element nothing may end it early ("</script>") or start markup: the JSON
    # escapes the three characters that could (JSON readers decode them unchanged).
    data = (
        json.dumps(view.proofs, separators=(",", ":"))
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    body = (
        "<h1>Datenschutzcockpit</h1>"
        "<p>Hier sehen Sie, welche Nachweise über Sie zwischen Behörden und Online-Diensten übermittelt "
        "wurden, wann, an wen, wozu und auf welcher Grundlage. Jede Übermittlung steht in einem "
        "öffentlich prüfbaren Protokoll; Ihr Browser prüft selbst, dass der Eintrag darin enthalten ist.</p>"
        f"{todo}<h2>Übermittlungen</h2>{exchanges}"
        f'<p><a href="/citizen/export.json" download>Meine Einträge mit Nachweisen herunterladen (JSON)</a></p>'
        f"<h2>Einwilligungen</h2>{consents}"
        f'<script type="application/json" id="log-proofs">{data}</script>'
    )
    return document("Datenschutzcockpit", body, frame, scripts=(PROOF_SCRIPT,))


def consent_page(
    consent: Consent, requester: str, registry: RegistrySnapshot, csrf: str, frame: Frame, *, notice: str = ""
) -> str:
    types = "".join(
        f"<li>{esc(registry.evidence_types[t].title if t in registry.evidence_types else t)}</li>"
        for t in consent.evidence_types
    )
    purpose = registry.purpose(consent.purpose)
    basis = registry.legal_basis(consent.legal_basis) if consent.legal_basis else None
    uses = str(consent.max_uses) if consent.max_uses else "unbegrenzt oft"
    facts = (
        f"<dl><dt>Wer fragt?</dt><dd>{esc(requester)}</dd>"
        f"<dt>Welche Nachweise?</dt><dd><ul>{types}</ul></dd>"
        f"<dt>Wozu?</dt><dd>{esc(purpose.name if purpose else consent.purpose)}</dd>"
        f"<dt>Rechtsgrundlage</dt><dd>{esc(basis.citation if basis else '–')}</dd>"
        f"<dt>Gültig</dt><dd>{esc(when(consent.valid_from))} bis {esc(when(consent.valid_until))}</dd>"
        f"<dt>Wie oft?</dt><dd>{esc(uses)}</dd></dl>"
    )
    notice_html = f'<p role="status"><strong>{esc(notice)}</strong></p>' if notice else ""
    if consent.state == "requested":
        action = (
            f'<form class="inline" method="post" action="/citizen/consents/{esc(consent.id)}">{hidden_csrf(csrf)}'
            '<input type="hidden" name="decision" value="grant">'
            '<button class="primary" type="submit">Einwilligen</button></form>'
            f'<form class="inline" method="post" action="/citizen/consents/{esc(consent.id)}">{hidden_csrf(csrf)}'
            '<input type="hidden" name="decision" value="decline">'
            '<button type="submit">Ablehnen</button></form>'
        )
    elif consent.state == "granted":
        link = f"/citizen/consents/{esc(consent.id)}/artefact"
        action = f'<p><a href="{link}" download>Einwilligung herunterladen</a></p>'
        if consent.revoked_at is None:
            action += (
                f'<form method="post" action="/citizen/consents/{esc(consent.id)}/revoke">{hidden_csrf(csrf)}'
                '<button type="submit">Einwilligung widerrufen</button></form>'
            )
        else:
            action += f"<p>Widerrufen am {esc(when(consent.revoked_at))}.</p>"
    else:
        action = "<p>Sie haben diese Einwilligung abgelehnt.</p>"
    body = (
        "<h1>Einwilligung</h1>"
        f"<p><strong>{esc(requester)}</strong> bittet um Ihre Einwilligung, die folgenden Nachweise bei den "
        "zuständigen Behörden abzurufen. Ohne Ihre Einwilligung geschieht das nicht.</p>"
        f"{notice_html}{facts}{action}"
    )
    return document("Einwilligung", body, frame)


_REFUSAL_TEXTS = {
    "citizen.not_subject": "Diese Seite betrifft eine andere Person als die angemeldete. Sie wird Ihnen nicht "
    "angezeigt; der Versuch wurde protokolliert.",
    "citizen.assurance_too_low": "Für diesen Nachweis ist eine Anmeldung mit höherem Vertrauensniveau nötig "
    "(z. B. mit der Online-Ausweisfunktion).",
    "citizen.reauthenticate": "Ihre Anmeldung liegt zu lange zurück. Bitte melden Sie sich erneut an, bevor "
    "Sie entscheiden.",
    "citizen.csrf": "Das Formular war ungültig oder veraltet. Bitte laden Sie die Seite neu und versuchen Sie es "
    "noch einmal.",
    "consent.not_found": "Unter dieser Adresse gibt es keine Einwilligung.",
}


def refused_page(reason: str, frame: Frame, *, login_href: str | None = None) -> str:
    text = _REFUSAL_TEXTS.get(reason, "Diese Aktion ist nicht möglich.")
    again = f'<p><a href="{esc(login_href)}">Erneut anmelden</a></p>' if login_href else ""
    body = f'<h1>Nicht möglich</h1><div class="refused"><p>{esc(text)}</p></div>{again}'
    return document("Nicht möglich", body, frame)


def signin_failed_page(frame: Frame) -> str:
    body = (
        "<h1>Anmeldung fehlgeschlagen</h1><p>Die Anmeldung konnte nicht abgeschlossen werden. "
        'Bitte versuchen Sie es erneut.</p><p><a href="/citizen">Zum Datenschutzcockpit</a></p>'
    )
    return document("Anmeldung fehlgeschlagen", body, frame)


def signed_out_page(frame: Frame) -> str:
    body = '<h1>Abgemeldet</h1><p>Sie sind abgemeldet.</p><p><a href="/citizen">Erneut anmelden</a></p>'
    return document("Abgemeldet", body, frame)
