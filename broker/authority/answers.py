"""The reference authority's answers on the wire, signed — and, on request, deliberately wrong."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lxml import etree

from adapters.protocol import AdapterOutcome, OutcomeKind
from adapters.signing import SignedMessage, sign
from adapters.wire import encode_answer


@dataclass(frozen=True)
class WireAnswer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


def _schema_invalid(evidence: bytes) -> bytes:
    root = etree.fromstring(evidence)
    root.remove(root[0])  # the Ausstellung block, required in every evidence type
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def wire_answer(
    outcome: AdapterOutcome,
    key: Ed25519PrivateKey,
    fault: str = "none",
    *,
    request_digest: str | None = None,
    method: str | None = None,
    path: str | None = None,
) -> WireAnswer:
    """A push answer (``request_digest`` given) or a pull post (``method`` and ``path`` given)."""
    if fault == "server_error":
        return WireAnswer(503, "text/plain", b"register offline", {})
    content_type, body = encode_answer(outcome)
    if fault == "garbage":
        content_type, body = "text/plain", b"\x00\x13 this is not an answer \xff"
    elif fault == "schema_invalid" and outcome.kind is OutcomeKind.EVIDENCE and outcome.evidence is not None:
        body = _schema_invalid(outcome.evidence)
    if request_digest is not None:
        message = SignedMessage(content_type, body, status=200, request_digest=request_digest)
    else:
        message = SignedMessage(content_type, body, method=method, path=path)
    headers: dict[str, str] = {}
    if fault != "unsigned":
        headers = sign(message, Ed25519PrivateKey.generate() if fault == "wrong_signature" else key)
    return WireAnswer(200, content_type, body, headers)
