"""The consent artefact: a compact JWS by the broker's checkpoint key that verifies against the
JWKS, and nothing changed, re-signed or mislabelled does."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey

from broker.consent.artefact import ArtefactError, FixedKeySigner, KeyConsentSigner, checkpoint_jwks, verify
from broker.keys.store import KeyStore

CLAIMS: dict[str, Any] = {
    "iss": "broker.test/once-only",
    "jti": "5b8f7c1e-8f0a-4c39-9d55-0d6f2b1f3a10",
    "sub": "ps1:" + "ab" * 32,
    "requester": "portal",
    "evidence_types": ["urn:de:nachweis:meldebescheinigung"],
    "purpose": "wohngeld",
    "legal_basis": "wogg-23",
    "nbf": 1795770000,
    "exp": 1798362000,
    "valid_from": "2026-11-26T09:00:00Z",
    "valid_until": "2026-12-26T09:00:00Z",
    "max_uses": 2,
    "iat": 1795770000,
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def reason(token: str, jwks: dict[str, Any]) -> str:
    with pytest.raises(ArtefactError) as refused:
        verify(token, jwks)
    return str(refused.value)


def signed_with(key: Ed25519PrivateKey, header: dict[str, Any], claims: dict[str, Any] = CLAIMS) -> str:
    """A JWS made by someone else's code path: any header, the given key."""
    payload = json.dumps(claims).encode()
    with warnings.catch_warnings():
        # joserfc's note that RFC 9864 deprecates the name "EdDSA".
        warnings.simplefilter("ignore", SecurityWarning)
        return jws.serialize_compact(header, payload, OKPKey.import_key(key), algorithms=["EdDSA"])


def test_an_artefact_verifies_and_gives_back_its_claims() -> None:
    signer = FixedKeySigner()
    token = signer.sign(CLAIMS)
    header = json.loads(unb64url(token.split(".")[0]))
    assert header == {"alg": "EdDSA", "kid": signer.kid, "typ": "consent+jwt"}
    assert verify(token, signer.jwks()) == CLAIMS
    # A file saved with a trailing newline verifies too.
    assert verify(token + "\n", signer.jwks()) == CLAIMS


def test_a_modified_payload_does_not_verify() -> None:
    signer = FixedKeySigner()
    header, _payload, signature = signer.sign(CLAIMS).split(".")
    more_uses = b64url(json.dumps({**CLAIMS, "max_uses": 1000}).encode())
    assert reason(f"{header}.{more_uses}.{signature}", signer.jwks()).startswith("bad signature")


def test_a_modified_signature_does_not_verify() -> None:
    signer = FixedKeySigner()
    header, payload, signature = signer.sign(CLAIMS).split(".")
    raw = bytearray(unb64url(signature))
    raw[0] ^= 1
    assert reason(f"{header}.{payload}.{b64url(bytes(raw))}", signer.jwks()).startswith("bad signature")


def test_an_artefact_of_another_key_does_not_verify() -> None:
    broker, forger = FixedKeySigner(), FixedKeySigner()
    assert reason(forger.sign(CLAIMS), broker.jwks()).startswith("unknown key id")
    # Nor does one that names the broker's key id but was signed by another key.
    other = signed_with(Ed25519PrivateKey.generate(), {"alg": "EdDSA", "kid": broker.kid, "typ": "consent+jwt"})
    assert reason(other, broker.jwks()).startswith("bad signature")


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        ({"alg": "EdDSA", "typ": "JWT"}, "wrong type 'JWT'"),
        ({"alg": "EdDSA"}, "wrong header"),
        ({"alg": "EdDSA", "typ": "consent+jwt", "cty": "json"}, "wrong header"),
    ],
)
def test_a_wrongly_labelled_artefact_does_not_verify(header: dict[str, Any], complaint: str) -> None:
    key = Ed25519PrivateKey.generate()
    signer = FixedKeySigner(key)
    token = signed_with(key, {**header, "kid": signer.kid})
    assert complaint in reason(token, signer.jwks())


def test_an_unsigned_or_other_algorithm_artefact_does_not_verify() -> None:
    signer = FixedKeySigner()
    _header, payload, signature = signer.sign(CLAIMS).split(".")
    for alg in ("none", "HS256", "Ed25519"):
        header = b64url(json.dumps({"alg": alg, "kid": signer.kid, "typ": "consent+jwt"}).encode())
        assert f"wrong algorithm '{alg}'" in reason(f"{header}.{payload}.{signature}", signer.jwks())


@pytest.mark.parametrize("token", ["", "not a jws", "a.b", "a.b.c.d", "e30.e30.", "ü.ü.ü"])
def test_malformed_artefacts_are_named_malformed(token: str) -> None:
    assert reason(token, FixedKeySigner().jwks()).startswith(("malformed", "wrong header"))


def test_an_artefact_lacking_a_claim_does_not_verify() -> None:
    signer = FixedKeySigner()
    without_subject = {name: value for name, value in CLAIMS.items() if name != "sub"}
    assert "claims missing: sub" in reason(signer.sign(without_subject), signer.jwks())
    assert "wrong type: max_uses" in reason(signer.sign({**CLAIMS, "max_uses": True}), signer.jwks())


def test_the_broker_signs_with_its_checkpoint_key_listed_in_its_jwks(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys", origin="broker.test/once-only")
    signer = KeyConsentSigner(keys)
    assert signer.issuer == "broker.test/once-only"
    before = signer.sign(CLAIMS)
    active, _ = keys.checkpoint_key()
    assert json.loads(unb64url(before.split(".")[0]))["kid"] == active.kid
    # The JWKS as /.well-known/broker-keys serves it, and the key directory's checkpoint keys.
    assert verify(before, keys.jwks()) == CLAIMS
    assert verify(before, checkpoint_jwks(keys)) == CLAIMS
    # After a rotation the new key signs, and what the retired key signed still verifies.
    keys.rotate()
    after = signer.sign(CLAIMS)
    assert json.loads(unb64url(after.split(".")[0]))["kid"] != active.kid
    assert verify(before, keys.jwks()) == verify(after, keys.jwks()) == CLAIMS


def test_the_request_signing_key_signs_no_consent(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    request_key = keys.request_signing_key()
    jwks = keys.jwks()
    (entry,) = [jwk for jwk in jwks["keys"] if jwk.get("purpose") == "requests"]
    forged = signed_with(request_key, {"alg": "EdDSA", "kid": entry["kid"], "typ": "consent+jwt"})
    assert "not a checkpoint key" in reason(forged, jwks)
