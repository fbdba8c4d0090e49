"""How an authority's answer travels over HTTP, in the push answer and in a pull result alike.

Evidence is the evidence document itself (``application/xml``); every other outcome is a small
JSON object ``{"kind": "not_found" | "ambiguous" | "failed", "detail": "…"}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from adapters.protocol import AdapterOutcome, OutcomeKind

XML = "application/xml"
JSON = "application/json"
# Far above any real evidence document, far below what would hurt the broker.
MAX_ANSWER_BYTES = 5 * 1024 * 1024


class GarbageAnswer(ValueError):
    """The bytes are not an answer of this protocol at all."""


# The check evidence bytes must pass: raises ValueError (with the reason) when they are not
# well-formed, safe XML. Whoever receives answers injects it (the broker passes its hardened
# intake), so the wire format carries no XML parsing policy of its own.
XmlCheck = Callable[[bytes], None]


def encode_answer(outcome: AdapterOutcome) -> tuple[str, bytes]:
    if outcome.kind is OutcomeKind.EVIDENCE and outcome.evidence is not None:
        return XML, outcome.evidence
    body = {"kind": outcome.kind.value, "detail": outcome.detail}
    return JSON, json.dumps(body, ensure_ascii=False).encode("utf-8")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_answer(content_type: str | None, body: bytes, check_xml: XmlCheck) -> AdapterOutcome:
    """The outcome an answer carries; raises :class:`GarbageAnswer` for anything else.

    Evidence must at least be well-formed, safe XML (``check_xml`` says so): whether it is valid
    for the evidence type is the exchange core's check, and a different failure (``evidence.invalid``).
    """
    if len(body) > MAX_ANSWER_BYTES:
        raise GarbageAnswer(f"the answer exceeds {MAX_ANSWER_BYTES} bytes")
    kind = media_type(content_type)
    if kind in (XML, "text/xml"):
        try:
            check_xml(body)
        except ValueError as error:
            raise GarbageAnswer(f"the evidence is not well-formed XML ({error})") from None
        return AdapterOutcome.found(body)
    if kind == JSON:
        try:
            data = json.loads(body)
            outcome = AdapterOutcome.from_json(data)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise GarbageAnswer(f"the JSON answer is not an outcome: {type(error).__name__}") from None
        if outcome.kind is OutcomeKind.EVIDENCE:
            raise GarbageAnswer("evidence must be sent as application/xml")
        return outcome
    raise GarbageAnswer(f"unexpected content type {kind or '(none)'!r}")
