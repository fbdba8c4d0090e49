"""Signed messages between the broker and remote authorities: a strict profile of RFC 9421.

Every request the broker sends to an authority (push) and every answer an authority gives
(push answer, pull result or failure) carries

* ``Content-Digest: sha-256=:<base64>:`` (RFC 9530) over the body,
* ``Signature-Input: sig1=(<components>);created=<unix>;keyid="<kid>";alg="ed25519"`` and
* ``Signature: sig1=:<base64 Ed25519 signature>:``

where the signature base is built as RFC 9421 section 2.5 prescribes. The components are fixed:

* requests: ``"@method" "@path" "content-type" "content-digest"``;
* push answers: ``"@status" "content-type" "content-digest" "content-digest";req`` — the last
  one is the digest of the request being answered, so an answer cannot be replayed for
  another request (each request carries a fresh exchange id).

A verifier refuses a message whose covered components lack any of these, whose ``created``
is more than :data:`MAX_SKEW_SECONDS` away from its clock, whose digest does not match the
body, or whose signature does not verify under the key registered for the sender. ``keyid``
is informational (the RFC 7638 thumbprint of the signer's key); the verifier never picks a key
by it, so a message cannot choose the key it is checked against.

Off-the-shelf RFC 9421 libraries produce and check these headers; the profile only pins the
algorithm (Ed25519), the label (``sig1``) and the covered components.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MAX_SKEW_SECONDS = 300
LABEL = "sig1"
REQUEST_COMPONENTS = ('"@method"', '"@path"', '"content-type"', '"content-digest"')
ANSWER_COMPONENTS = ('"@status"', '"content-type"', '"content-digest"', '"content-digest";req')

_INPUT = re.compile(r"^(?P<label>[a-z*][a-z0-9_.*-]*)=(?P<value>\((?P<items>[^()]*)\)(?P<params>(;[^;]+)*))$")
_ITEM = re.compile(r'^"[a-z0-9@_.-]+"(;req)?$')
_PARAM = re.compile(r'^(?P<key>[a-z][a-z0-9_-]*)=(?P<value>-?[0-9]{1,15}|"[^"\\]*")$')
_SIGNATURE = re.compile(r"^(?P<label>[a-z*][a-z0-9_.*-]*)=:(?P<sig>[A-Za-z0-9+/=]+):$")


class SignatureError(Exception):
    """A message's signature is missing or does not hold. ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SignedMessage:
    """What a signature covers: the HTTP parts of one message."""

    content_type: str
    body: bytes
    method: str | None = None  # requests
    path: str | None = None  # requests
    status: int | None = None  # answers
    request_digest: str | None = None  # answers: the Content-Digest of the request answered


def content_digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def key_thumbprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()},
        separators=(",", ":"),
        sort_keys=True,
    )
    return base64.urlsafe_b64encode(hashlib.sha256(jwk.encode()).digest()).rstrip(b"=").decode()


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError) as error:
        raise SignatureError("signature.key_invalid", f"not a PEM public key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("signature.key_invalid", "the registered key is not an Ed25519 key")
    return key


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def _components(message: SignedMessage) -> tuple[str, ...]:
    return REQUEST_COMPONENTS if message.status is None else ANSWER_COMPONENTS


def _value(component: str, message: SignedMessage) -> str:
    values = {
        '"@method"': message.method,
        '"@path"': message.path,
        '"@status"': str(message.status) if message.status is not None else None,
        '"content-type"': message.content_type,
        '"content-digest"': content_digest(message.body),
        '"content-digest";req': message.request_digest,
    }
    value = values.get(component)
    if value is None:
        raise SignatureError("signature.malformed", f"the component {component} has no value here")
    return value.strip()


def _base(message: SignedMessage, components: tuple[str, ...], params_value: str) -> bytes:
    lines = [f"{c}: {_value(c, message)}" for c in components]
    lines.append(f'"@signature-params": {params_value}')
    return "\n".join(lines).encode("utf-8")


def sign(message: SignedMessage, key: Ed25519PrivateKey, now: float | None = None) -> dict[str, str]:
    """The three headers that make ``message`` a signed one."""
    components = _components(message)
    created = int(now if now is not None else time.time())
    params_value = (
        f'({" ".join(components)});created={created};keyid="{key_thumbprint(key.public_key())}";alg="ed25519"'
    )
    signature = key.sign(_base(message, components, params_value))
    return {
        "Content-Digest": content_digest(message.body),
        "Signature-Input": f"{LABEL}={params_value}",
        "Signature": f"{LABEL}=:{base64.b64encode(signature).decode('ascii')}:",
    }


def verify(
    message: SignedMessage,
    headers: Mapping[str, str],
    key: Ed25519PublicKey,
    now: float | None = None,
) -> None:
    """Raise :class:`SignatureError` unless ``headers`` carry a valid signature of ``message`` by ``key``."""
    signature_input = headers.get("signature-input")
    signature_header = headers.get("signature")
    if not signature_input or not signature_header:
        raise SignatureError("signature.missing", "the message carries no Signature and Signature-Input")
    parsed = _INPUT.match(signature_input.strip())
    sig = _SIGNATURE.match(signature_header.strip())
    if parsed is None or sig is None or parsed["label"] != sig["label"]:
        raise SignatureError("signature.malformed", "Signature-Input or Signature is not of the profile")
    items = tuple(parsed["items"].split())
    if not all(_ITEM.match(item) for item in items) or set(items) != set(_components(message)):
        raise SignatureError(
            "signature.components", f"the signature must cover exactly {' '.join(_components(message))}"
        )
    params: dict[str, str] = {}
    for part in filter(None, parsed["params"].split(";")):
        param = _PARAM.match(part)
        if param is None:
            raise SignatureError("signature.malformed", "unreadable signature parameter")
        params[param["key"]] = param["value"].strip('"')
    if params.get("alg", "ed25519") != "ed25519" or "created" not in params:
        raise SignatureError("signature.malformed", "the profile requires alg ed25519 and created")
    moment = now if now is not None else time.time()
    if abs(moment - int(params["created"])) > MAX_SKEW_SECONDS:
        raise SignatureError("signature.stale", f"created is more than {MAX_SKEW_SECONDS} s from now")
    digest = headers.get("content-digest", "").strip()
    if digest != content_digest(message.body):
        raise SignatureError("signature.digest_mismatch", "Content-Digest does not match the body")
    try:
        raw = base64.b64decode(sig["sig"], validate=True)
        key.verify(raw, _base(message, items, parsed["value"]))
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureError("signature.invalid", "the signature does not verify under the registered key") from None
