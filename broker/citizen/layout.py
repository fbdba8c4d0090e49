"""The frame of every citizen page: German, accessible (BITV 2.0 / WCAG 2.1 AA), no external
resources, and usable without JavaScript (only the cockpit's proof check runs a script).

Framework-free so pages can be rendered and checked without a server. Every value that reaches
a page goes through :func:`esc`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from fastapi.responses import HTMLResponse

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:0 auto;padding:0 1rem 2rem;color:#1b1b1b;"
    "line-height:1.5}"
    "header{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:center;gap:1rem;"
    "border-bottom:2px solid #004b76;padding:.75rem 0;margin-bottom:1rem}"
    "header a{color:#004b76;font-weight:600}"
    ".banner{background:#fff3cd;border:2px solid #8a6d00;padding:.5rem 1rem;margin:1rem 0}"
    "table{border-collapse:collapse;width:100%;margin:1rem 0}"
    "th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid #bbb;vertical-align:top}"
    "th{font-weight:600;color:#333}"
    "form.inline{display:inline-block;margin:0 1rem .5rem 0}"
    "button{font-size:1rem;padding:.5rem 1.2rem;cursor:pointer;border:2px solid #004b76;background:#fff;color:#004b76}"
    "button.primary{background:#004b76;color:#fff}"
    "a{color:#004b76}"
    ".note{color:#444}"
    ".refused{border-left:4px solid #a00;padding-left:1rem}"
    ".proof-ok{color:#0a6b2d;font-weight:600}"
    ".proof-bad{color:#a00;font-weight:600}"
    ".visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}"
    "fieldset{border:1px solid #bbb;margin:1rem 0;padding:.5rem 1rem}"
    "label{display:block;margin:.25rem 0}"
)

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
# No script at all, except on pages that name theirs (served from the broker itself).
_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
_CSP_WITH_SCRIPTS = _CSP + "; script-src 'self'; connect-src 'self'"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Frame:
    """What the frame shows around a page: the development banner, and the sign-out form when
    someone is signed in (it carries the session's CSRF token)."""

    development: bool
    csrf: str | None = None


def hidden_csrf(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(csrf)}">'


def document(title: str, body: str, frame: Frame, *, scripts: tuple[str, ...] = ()) -> str:
    banner = (
        '<p class="banner" role="note"><strong>Entwicklungsumgebung:</strong> Die Anmeldung ist simuliert. '
        "Hier gibt es keine echten Personen und keine echten Nachweise.</p>"
        if frame.development
        else ""
    )
    sign_out = (
        f'<form class="inline" method="post" action="/citizen/logout">{hidden_csrf(frame.csrf)}'
        '<button type="submit">Abmelden</button></form>'
        if frame.csrf
        else ""
    )
    script_tags = "".join(f'<script type="module" src="{esc(src)}"></script>' for src in scripts)
    return (
        '<!DOCTYPE html>\n<html lang="de"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style>{script_tags}</head>"
        '<body><header><a href="/citizen">Datenschutzcockpit</a>'
        f"{sign_out}</header>{banner}<main>{body}</main></body></html>\n"
    )


def page(body: str, status: int = 200, *, scripts: bool = False) -> HTMLResponse:
    headers = {**_HEADERS, "Content-Security-Policy": _CSP_WITH_SCRIPTS if scripts else _CSP}
    return HTMLResponse(body, status_code=status, headers=headers)
