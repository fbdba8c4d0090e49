"""C2SP signed notes (Ed25519) and tlog checkpoints, free of any I/O.

Formats: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint. Key strings use
the Go sumdb/note encodings so keys interoperate with existing tooling:
verifier key ``<name>+<hex key id>+<base64(0x01 || public key)>`` and signer key
``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

ED25519_TYPE = 0x01
KEY_ID_SIZE = 4
ED25519_SIGNATURE_SIZE = 64
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
# The spec makes verifiers accept at least 16; a cap bounds the work an attacker can cause.
MAX_SIGNATURES = 100
_SIGNER_KEY_PREFIX = "PRIVATE+KEY+"
_ROOT_SIZE = 32
_MAX_TREE_SIZE = 2**64 - 1
_TREE_SIZE_RE = re.compile(r"0|[1-9][0-9]*")


class NoteError(ValueError):
    """A note, key string or signature is malformed or does not verify."""


class CheckpointError(NoteError):
    """A checkpoint body is malformed."""


def _has_control_chars(text: str) -> bool:
    return any(ch < " " and ch != "\n" for ch in text)


def check_key_name(name: str) -> None:
    if not name:
        raise NoteError("key name is empty")
    if any(ch.isspace() or ch == "+" or ch < " " for ch in name):
        raise NoteError(f"key name {name!r} contains whitespace, '+' or a control character")


def _b64decode_canonical(value: str, what: str) -> bytes:
    """Decode standard base64, accepting only the one canonical spelling of each byte string.

    Rejecting alternative spellings (stray padding bits, missing padding) keeps notes and
    checkpoints byte-for-byte unique, so two encodings of the same value cannot both circulate.
    """
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != value:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    check_key_name(name)
    material = name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + _public_bytes(public_key)
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 note key: its name, key ID and public key."""

    name: str
    public_key: Ed25519PublicKey = field(compare=False, repr=False)
    key_id: bytes = field(init=False)
    _public_raw: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))
        object.__setattr__(self, "_public_raw", _public_bytes(self.public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise NoteError("verifier key must have the form <name>+<hex key id>+<base64 key>")
        name, id_hex, key_b64 = parts
        check_key_name(name)
        public = _decode_typed_key(key_b64, "verifier key")
        try:
            verifier = cls(name, Ed25519PublicKey.from_public_bytes(public))
        except ValueError as exc:
            raise NoteError(f"verifier key for {name!r} is not a valid Ed25519 public key") from exc
        _check_key_id(id_hex, verifier.key_id, name)
        return verifier

    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64encode(bytes([ED25519_TYPE]) + self._public_raw)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def _decode_typed_key(key_b64: str, what: str) -> bytes:
    raw = _b64decode_canonical(key_b64, what)
    if not raw or raw[0] != ED25519_TYPE:
        raise NoteError(f"{what} is not an Ed25519 (type 0x01) key")
    if len(raw) != 33:
        raise NoteError(f"{what} must hold 32 key bytes, got {len(raw) - 1}")
    return raw[1:]


def _check_key_id(id_hex: str, expected: bytes, name: str) -> None:
    if not re.fullmatch(r"[0-9a-fA-F]{8}", id_hex):
        raise NoteError(f"key id {id_hex!r} must be 8 hex digits")
    if bytes.fromhex(id_hex) != expected:
        raise NoteError(f"key id {id_hex} does not match the key for {name!r}")


def format_vkey(name: str, public_key: Ed25519PublicKey) -> str:
    return Verifier(name, public_key).vkey()


def format_signer_key(name: str, private_key: Ed25519PrivateKey) -> str:
    seed = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    kid = key_id(name, private_key.public_key())
    return f"{_SIGNER_KEY_PREFIX}{name}+{kid.hex()}+{_b64encode(bytes([ED25519_TYPE]) + seed)}"


def parse_signer_key(skey: str) -> tuple[str, Ed25519PrivateKey]:
    if not skey.startswith(_SIGNER_KEY_PREFIX):
        raise NoteError(f"signer key must start with {_SIGNER_KEY_PREFIX!r}")
    parts = skey[len(_SIGNER_KEY_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise NoteError("signer key must have the form PRIVATE+KEY+<name>+<hex key id>+<base64 seed>")
    name, id_hex, key_b64 = parts
    check_key_name(name)
    private_key = Ed25519PrivateKey.from_private_bytes(_decode_typed_key(key_b64, "signer key"))
    _check_key_id(id_hex, key_id(name, private_key.public_key()), name)
    return name, private_key


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``body`` with one Ed25519 key; return the complete signed note."""
    check_key_name(name)
    _check_text(body, "note body")
    if not body.endswith("\n"):
        raise NoteError("note body must end with a newline")
    signature = private_key.sign(body.encode("utf-8"))
    kid = key_id(name, private_key.public_key())
    return f"{body}\n{SIGNATURE_PREFIX}{name} {_b64encode(kid + signature)}\n"


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not valid UTF-8") from exc
    if _has_control_chars(text):
        raise NoteError(f"{what} contains control characters other than newline")


@dataclass(frozen=True)
class _SignatureLine:
    name: str
    key_id: bytes
    signature: bytes


def _parse_signature_line(line: str) -> _SignatureLine:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError(f"signature line does not start with an em dash and a space: {line[:40]!r}")
    name, sep, sig_b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not sep or " " in sig_b64:
        raise NoteError(f"signature line must be '— <name> <base64>': {line[:40]!r}")
    check_key_name(name)
    raw = _b64decode_canonical(sig_b64, f"signature by {name!r}")
    if len(raw) <= KEY_ID_SIZE:
        raise NoteError(f"signature by {name!r} is too short")
    return _SignatureLine(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])


def _index_verifiers(verifiers: Iterable[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    index: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        known = index.setdefault(slot, verifier)
        if known != verifier:
            raise NoteError(f"ambiguous verifiers for {verifier.name}+{verifier.key_id.hex()}")
    return index


def _split_note(text: str | bytes) -> tuple[str, list[_SignatureLine]]:
    """Parse a signed note into its body and signature lines, without verifying anything."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("note is not valid UTF-8") from exc
    _check_text(text, "note")
    # Bodies may contain blank lines; signature lines never do, so the last one separates them.
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line separating the body from the signatures")
    body, signature_block = text[: split + 1], text[split + 2 :]
    if not signature_block:
        raise NoteError("note has no signature lines")
    if not signature_block.endswith("\n"):
        raise NoteError("note does not end with a newline")
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than the limit of {MAX_SIGNATURES}")
    return body, [_parse_signature_line(line) for line in lines]


def note_signers(text: str | bytes) -> list[tuple[str, bytes]]:
    """(key name, key ID) of every signature line, *unverified*.

    Only for diagnostics: it lets an auditor's tool say whether a note that failed
    :func:`open_note` carries a bad signature by a known key or a signature by a foreign one.
    """
    _body, signatures = _split_note(text)
    return [(sig.name, sig.key_id) for sig in signatures]


def open_note(text: str | bytes, verifiers: Iterable[Verifier]) -> tuple[str, list[str]]:
    """Parse and verify a signed note; return its body and the names of the keys that signed it.

    Lines from unknown keys are ignored, as the spec requires, but a line from a known key that
    does not verify rejects the whole note, and at least one known key must have signed.
    """
    body, signatures = _split_note(text)

    known = _index_verifiers(verifiers)
    message = body.encode("utf-8")
    verified: list[str] = []
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(message, sig.signature):
            raise NoteError(f"signature by {sig.name}+{sig.key_id.hex()} does not verify")
        if sig.name not in verified:
            verified.append(sig.name)
    if not verified:
        raise NoteError("note has no signature from a known key")
    return body, verified


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint note body: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for what, line in [("origin", self.origin), *(("extension line", e) for e in self.extensions)]:
            if not line:
                raise CheckpointError(f"checkpoint {what} is empty")
            if "\n" in line or _has_control_chars(line):
                raise CheckpointError(f"checkpoint {what} contains a newline or control character")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint tree size {self.size} is out of range")
        if len(self.root) != _ROOT_SIZE:
            raise CheckpointError(f"checkpoint root hash must be {_ROOT_SIZE} bytes, got {len(self.root)}")

    def body(self) -> str:
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint body does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(f"checkpoint body has {len(lines)} lines, needs at least 3")
        origin, size_text, root_text, *extensions = lines
        if not _TREE_SIZE_RE.fullmatch(size_text):
            raise CheckpointError(f"checkpoint tree size {size_text[:30]!r} is not a canonical decimal")
        try:
            root = _b64decode_canonical(root_text, "checkpoint root hash")
        except NoteError as exc:
            raise CheckpointError(str(exc)) from exc
        return cls(origin, int(size_text), root, tuple(extensions))


def open_checkpoint(text: str | bytes, verifiers: Iterable[Verifier]) -> tuple[Checkpoint, list[str]]:
    """Verify a signed checkpoint note and parse its body."""
    body, names = open_note(text, verifiers)
    return Checkpoint.parse(body), names
