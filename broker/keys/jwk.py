"""Public keys as JSON Web Keys (RFC 7517/7518) and their RFC 7638 thumbprints, the broker's key ids.

A key id is the SHA-256 thumbprint of the members RFC 7638 requires for the key type, so anyone
holding the public key can recompute it. Only the key types the broker signs with are supported:
Ed25519 (checkpoints, requests) and EC P-256/P-384 or RSA (sealing certificates).
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SealingPublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# Curve name -> (JWK "crv", JWS "alg", coordinate length in bytes).
_EC_JWK = {"secp256r1": ("P-256", "ES256", 32), "secp384r1": ("P-384", "ES384", 48)}


class UnsupportedKeyError(ValueError):
    """A key type or curve the broker has no JWK representation for."""


def b64url(data: bytes) -> str:
    """Base64url without padding, as JOSE writes binary values."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(public_key: Ed25519PublicKey | SealingPublicKey) -> dict[str, str]:
    """The members RFC 7638 requires for the key type (and nothing else)."""
    if isinstance(public_key, Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _EC_JWK:
            raise UnsupportedKeyError(f"unsupported EC curve {public_key.curve.name}")
        crv, _alg, size = _EC_JWK[public_key.curve.name]
        numbers = public_key.public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64url(_int_bytes(numbers.x, size)),
            "y": b64url(_int_bytes(numbers.y, size)),
        }
    if isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        return {
            "kty": "RSA",
            "e": b64url(_int_bytes(rsa_numbers.e)),
            "n": b64url(_int_bytes(rsa_numbers.n)),
        }
    raise UnsupportedKeyError(f"unsupported key type {type(public_key).__name__}")


def key_id(public_key: Ed25519PublicKey | SealingPublicKey) -> str:
    """RFC 7638 thumbprint: SHA-256 over the required members, sorted, without whitespace."""
    canonical = json.dumps(public_jwk(public_key), sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def certificate_key_id(certificate: x509.Certificate) -> str:
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise UnsupportedKeyError(f"unsupported certificate key type {type(public_key).__name__}")
    return key_id(public_key)


def jws_alg(public_key: SealingPublicKey) -> str:
    """The JWS algorithm a sealing key signs with (RFC 7518 section 3.1)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return _EC_JWK[public_key.curve.name][1]
    return "RS256"


def _int_bytes(value: int, length: int | None = None) -> bytes:
    # EC coordinates have the curve's fixed length; RSA integers use as few bytes as they need.
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")
