"""A signer process: seals evidence documents for the broker that started it (``python -m broker.seal.signer``).

The broker's :class:`~broker.seal.sealer.ProcessSealer` starts signer processes and talks to each
over its standard input and output. A signer is a pure sealing engine: it holds no key store and
reads no key file; the broker sends it the sealing key to use whenever that changes (after a
rotation), so which key seals stays decided in one place, :class:`~broker.keys.store.KeyStore`.

Frames, lengths as 4-byte big-endian unsigned integers:

- to the signer: ``K`` + length + the private key (PKCS#8 DER) + length + its certificate (DER):
  seal with this key from now on (no answer); or ``S`` + length + an evidence document: seal it;
- from the signer: ``0`` + length + the sealed document, or ``1`` + length + why it could not be
  sealed (UTF-8; a :class:`~broker.seal.xades.SealingError`'s message).

A signer exits when its standard input closes: when the broker stops it, or when the broker is
gone (kill -9 included), since nothing else holds that pipe's writing end.
"""

from __future__ import annotations

import argparse
import signal
import struct
import sys
from collections.abc import Callable
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from broker.seal.xades import SealingError, SealingPrivateKey, seal_evidence
from broker.xml.hardened import XmlIntakeError, XmlLimits, parse_xml

LENGTH = struct.Struct(">I")
KEY, SEAL = b"K", b"S"
SEALED, REFUSED = b"0", b"1"


def frame(kind: bytes, *parts: bytes) -> bytes:
    return kind + b"".join(LENGTH.pack(len(part)) + part for part in parts)


def read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    """``size`` bytes from ``read`` (which may return fewer at a time); ValueError at end of input."""
    chunks: list[bytes] = []
    while size:
        chunk = read(size)
        if not chunk:
            raise ValueError("the pipe closed in the middle of a frame")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_length(read: Callable[[int], bytes]) -> int:
    (length,) = LENGTH.unpack(read_exactly(read, LENGTH.size))
    return int(length)


def read_part(read: Callable[[int], bytes]) -> bytes:
    return read_exactly(read, read_length(read))


def _seal(
    evidence: bytes, key: SealingPrivateKey | None, certificate: x509.Certificate | None, limits: XmlLimits
) -> bytes:
    if key is None or certificate is None:
        return frame(REFUSED, b"the signer process was given no key")
    try:
        try:
            root = parse_xml(evidence, limits)
        except XmlIntakeError as error:
            raise SealingError(f"{error.reason}: {error.detail}") from error
        return frame(SEALED, seal_evidence(root, key, certificate))
    except SealingError as error:
        return frame(REFUSED, str(error).encode())
    except Exception as error:  # an answer, not a dead signer: the broker then restarts nothing
        # The type only: a library's message might quote the document.
        return frame(REFUSED, f"unexpected {type(error).__name__}".encode())


def serve(requests: IO[bytes], answers: IO[bytes], limits: XmlLimits) -> None:
    """Answer the frames on ``requests`` until it ends."""
    key: SealingPrivateKey | None = None
    certificate: x509.Certificate | None = None
    while kind := requests.read(1):
        if kind == KEY:
            loaded = serialization.load_der_private_key(read_part(requests.read), password=None)
            if not isinstance(loaded, SealingPrivateKey):
                raise ValueError(f"not a sealing key: {type(loaded).__name__}")
            key, certificate = loaded, x509.load_der_x509_certificate(read_part(requests.read))
        elif kind == SEAL:
            answers.write(_seal(read_part(requests.read), key, certificate, limits))
            answers.flush()
        else:
            raise ValueError(f"unknown frame {kind!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-bytes", type=int, required=True, help="the largest document to parse")
    args = parser.parse_args()
    # The broker decides when its signers end, by closing their input, after its last seal: a
    # Ctrl-C in its terminal or a SIGTERM to its process group (systemd's stop) must not end them
    # while it still finishes requests.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer, XmlLimits(max_bytes=args.max_bytes))


if __name__ == "__main__":
    main()
