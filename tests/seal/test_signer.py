"""The signer process's protocol, in process: frames in, frames out (broker/seal/signer.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from broker.keys.store import KeyStore
from broker.seal import signer
from broker.seal.xades import verify_sealed_evidence
from broker.xml.hardened import XmlLimits
from tests.seal.test_xades import EVIDENCE, c14n, trusted

LIMITS = XmlLimits(max_bytes=64 * 1024)


def key_frame(store: KeyStore) -> bytes:
    key, certificate = store.sealing_key()
    der_key = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return signer.frame(signer.KEY, der_key, certificate.public_bytes(serialization.Encoding.DER))


def answers_to(requests: bytes) -> list[tuple[bytes, bytes]]:
    """What the signer writes for ``requests``, frame by frame."""
    out = io.BytesIO()
    signer.serve(io.BytesIO(requests), out, LIMITS)
    out.seek(0)
    frames = []
    while status := out.read(1):
        frames.append((status, signer.read_part(out.read)))
    return frames


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


def test_a_seal_after_the_key_is_the_broker_seal(store: KeyStore) -> None:
    [(status, sealed)] = answers_to(key_frame(store) + signer.frame(signer.SEAL, EVIDENCE))
    assert status == signer.SEALED
    assert c14n(verify_sealed_evidence(sealed, trusted(store))) == c14n(etree.fromstring(EVIDENCE))


def test_the_key_stays_for_the_following_seals(store: KeyStore) -> None:
    seal = signer.frame(signer.SEAL, EVIDENCE)
    answers = answers_to(key_frame(store) + seal + seal)
    assert [status for status, _ in answers] == [signer.SEALED, signer.SEALED]
    for _, sealed in answers:
        verify_sealed_evidence(sealed, trusted(store))


def test_a_new_key_frame_replaces_the_key(store: KeyStore, tmp_path: Path) -> None:
    other = KeyStore(tmp_path / "other-keys")
    seal = signer.frame(signer.SEAL, EVIDENCE)
    [(_, first), (_, second)] = answers_to(key_frame(store) + seal + key_frame(other) + seal)
    verify_sealed_evidence(first, trusted(store))
    verify_sealed_evidence(second, trusted(other))
    with pytest.raises(Exception, match="not one of the broker's certificates"):
        verify_sealed_evidence(second, trusted(store))


def test_a_seal_before_any_key_is_refused_not_fatal(store: KeyStore) -> None:
    seal = signer.frame(signer.SEAL, EVIDENCE)
    answers = answers_to(seal + key_frame(store) + seal)
    assert answers[0] == (signer.REFUSED, b"the signer process was given no key")
    assert answers[1][0] == signer.SEALED


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (b"<not-xml", b"xml.malformed"),
        (b"<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>", b"xml.doctype_forbidden"),
        (b"<a>" + b"x" * LIMITS.max_bytes + b"</a>", b"xml.too_large"),
        (
            EVIDENCE.replace(
                b"</Meldebescheinigung>",
                b"<Signature xmlns='http://www.w3.org/2000/09/xmldsig#'/></Meldebescheinigung>",
            ),
            b"already carries a ds:Signature",
        ),
    ],
    ids=["malformed", "doctype", "too-large", "already-signed"],
)
def test_a_document_it_cannot_seal_is_refused_with_the_reason(store: KeyStore, document: bytes, why: bytes) -> None:
    seal = signer.frame(signer.SEAL, document)
    [(status, message), (after, _)] = answers_to(key_frame(store) + seal + signer.frame(signer.SEAL, EVIDENCE))
    assert status == signer.REFUSED and why in message
    assert after == signer.SEALED  # and it goes on


def test_an_unknown_frame_ends_the_signer(store: KeyStore) -> None:
    with pytest.raises(ValueError, match="unknown frame"):
        answers_to(b"X" + signer.LENGTH.pack(0))


def test_a_frame_cut_short_ends_the_signer(store: KeyStore) -> None:
    with pytest.raises(ValueError, match="closed in the middle of a frame"):
        answers_to(signer.frame(signer.SEAL, EVIDENCE)[:-5])
