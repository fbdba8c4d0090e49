"""The consent artefact: the broker's signed statement that a citizen granted a consent.

When the citizen grants a consent request, the broker signs a compact JWS (RFC 7515) with its
active checkpoint key (Ed25519, ``alg`` EdDSA of RFC 8037), whose public key is in the JWKS at
``/.well-known/broker-keys`` under the same ``kid``. The requester receives it with the consent
and the citizen can download it; anyone holding the JWKS can check it offline
(``broker consent verify FILE``).

Protected header, exactly: ``{"alg": "EdDSA", "kid": <checkpoint key id>, "typ": "consent+jwt"}``.
Claims (JSON object): ``iss`` (the broker's origin, as its checkpoints name it), ``jti`` (the
consent id), ``sub`` (the subject's pseudonym, never a name), ``requester`` (the requesting
client's name), ``evidence_types``, ``purpose`` and ``legal_basis`` (registry ids; the latter
may be null), ``nbf``/``exp`` (validity as NumericDate) with ``valid_from``/``valid_until``
(RFC 3339, the exact moments), ``max_uses`` (null: unlimited) and ``iat`` (when the citizen
granted it).

An artefact proves the grant, not that the consent still holds: a revocation after it was
issued is known only to the broker, which checks every use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import OKPKey

from broker.clock import as_utc
from broker.db.models import Consent
from broker.keys.jwk import key_id, public_jwk
from broker.keys.store import KeyStore

ALG = "EdDSA"
TYP = "consent+jwt"
HEADER_NAMES = frozenset({"alg", "kid", "typ"})

# claim → the JSON types it may have (a verifier refuses an artefact missing one or mistyped).
CLAIMS: dict[str, tuple[type, ...]] = {
    "iss": (str,),
    "jti": (str,),
    "sub": (str,),
    "requester": (str,),
    "evidence_types": (list,),
    "purpose": (str,),
    "legal_basis": (str, type(None)),
    "nbf": (int,),
    "exp": (int,),
    "valid_from": (str,),
    "valid_until": (str,),
    "max_uses": (int, type(None)),
    "iat": (int,),
}


class ArtefactError(ValueError):
    """An artefact that does not verify; the message names what is wrong."""


class ConsentSigner(Protocol):
    """Signs consent artefacts (the real one with the broker's checkpoint key, tests' with a fixed key)."""

    @property
    def issuer(self) -> str:
        """The ``iss`` of the artefacts: the broker's origin."""
        ...

    def sign(self, claims: Mapping[str, Any]) -> str:
        """The compact JWS of these claims."""
        ...


class _EdDSAOnly(jws.JWSRegistry):
    """A JWS registry that allows EdDSA and nothing else.

    joserfc warns on every use of "EdDSA" because RFC 9864 deprecates the polymorphic name in
    favour of "Ed25519"; the broker's JWKS names its checkpoint keys "EdDSA" and RFC 8037
    verifiers expect it, so artefacts keep it, without a warning per signature.
    """

    def get_alg(self, name: str) -> JWSAlgModel:
        if name != ALG:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


_REGISTRY = _EdDSAOnly()


def _sign(claims: Mapping[str, Any], kid: str, private_key: Ed25519PrivateKey) -> str:
    header = {"alg": ALG, "kid": kid, "typ": TYP}
    payload = json.dumps(dict(claims), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return jws.serialize_compact(header, payload.encode("utf-8"), OKPKey.import_key(private_key), registry=_REGISTRY)


class KeyConsentSigner:
    """The real signer: the key store's active checkpoint key, read at each signature so that a
    rotation (in any process) is followed at once."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    @property
    def issuer(self) -> str:
        return self._keys.origin

    def sign(self, claims: Mapping[str, Any]) -> str:
        info, private_key = self._keys.checkpoint_key()
        return _sign(claims, info.kid, private_key)


class FixedKeySigner:
    """A signer with a key of its own, for tests; :meth:`jwks` publishes its public key."""

    def __init__(self, private_key: Ed25519PrivateKey | None = None, issuer: str = "broker.test/once-only") -> None:
        self._private_key = private_key or Ed25519PrivateKey.generate()
        self._issuer = issuer
        self.kid = key_id(self._private_key.public_key())

    @property
    def issuer(self) -> str:
        return self._issuer

    def sign(self, claims: Mapping[str, Any]) -> str:
        return _sign(claims, self.kid, self._private_key)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**public_jwk(self._private_key.public_key()), "kid": self.kid, "alg": ALG, "use": "sig"}]}


def checkpoint_jwks(keys: KeyStore) -> dict[str, Any]:
    """The JWKS of a key store's checkpoint keys (active and retired): what artefacts verify against."""
    return {
        "keys": [{**public_jwk(info.public_key), "kid": info.kid} for info in keys.checkpoint_public_keys()],
    }


def _numeric_date(moment: datetime) -> int:
    return int(as_utc(moment).timestamp())


def _rfc3339(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def consent_claims(consent: Consent, requester: str, issuer: str, granted_at: datetime) -> dict[str, Any]:
    """The claims of a granted consent's artefact (registry ids and the pseudonym only)."""
    return {
        "iss": issuer,
        "jti": consent.id,
        "sub": consent.subject_pseudonym,
        "requester": requester,
        "evidence_types": list(consent.evidence_types),
        "purpose": consent.purpose,
        "legal_basis": consent.legal_basis,
        "nbf": _numeric_date(consent.valid_from),
        "exp": _numeric_date(consent.valid_until),
        "valid_from": _rfc3339(consent.valid_from),
        "valid_until": _rfc3339(consent.valid_until),
        "max_uses": consent.max_uses,
        "iat": _numeric_date(granted_at),
    }


def verify(token: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The claims of a consent artefact whose signature a key of ``jwks`` verifies.

    Raises :class:`ArtefactError` naming what is wrong: malformed, wrong header (alg, typ, extra
    parameters), unknown key id, a key that is no checkpoint key, bad signature, missing claims.
    """
    try:
        signed = jws.extract_compact(token.strip().encode("ascii"), registry=_REGISTRY)
    except (JoseError, ValueError, RecursionError) as error:
        raise ArtefactError(f"malformed artefact: not a compact JWS ({error})") from None
    header = signed.headers()
    if not isinstance(header, dict):
        raise ArtefactError("malformed artefact: the header is not a JSON object")
    if set(header) != HEADER_NAMES:
        raise ArtefactError(f"wrong header: expected exactly {sorted(HEADER_NAMES)}, found {sorted(header)}")
    if header["alg"] != ALG:
        raise ArtefactError(f"wrong algorithm {header['alg']!r}: consent artefacts are signed with {ALG}")
    if header["typ"] != TYP:
        raise ArtefactError(f"wrong type {header['typ']!r}: expected {TYP!r}")
    key = _verification_key(jwks, header["kid"])
    try:
        valid = jws.validate_compact(signed, key, registry=_REGISTRY)
    except JoseError as error:
        raise ArtefactError(f"cannot check the signature: {error}") from None
    if not valid:
        raise ArtefactError(f"bad signature: the artefact is not what key {header['kid']} signed")
    return _claims(signed.payload)


def _verification_key(jwks: Mapping[str, Any], kid: Any) -> OKPKey:
    if not isinstance(kid, str) or not kid:
        raise ArtefactError("malformed artefact: the header names no key id")
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        raise ArtefactError('the JWKS has no "keys" list')
    found = [jwk for jwk in keys if isinstance(jwk, dict) and jwk.get("kid") == kid]
    if not found:
        raise ArtefactError(f"unknown key id {kid}: not in the JWKS")
    jwk = found[0]
    # The request-signing key is in the JWKS too ("purpose": "requests"); what it signed is a
    # request to an authority, never a consent.
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "purpose" in jwk:
        raise ArtefactError(f"key {kid} is not a checkpoint key (Ed25519) of the broker")
    x = jwk.get("x")
    if not isinstance(x, str):
        raise ArtefactError(f"key {kid} in the JWKS is unusable: no public key (x)")
    try:
        return OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": x})
    except (JoseError, ValueError, TypeError) as error:
        raise ArtefactError(f"key {kid} in the JWKS is unusable: {error}") from None


def _claims(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        raise ArtefactError("malformed artefact: the payload is not JSON") from None
    if not isinstance(claims, dict):
        raise ArtefactError("malformed artefact: the payload is not a JSON object")
    missing = [name for name in CLAIMS if name not in claims]
    if missing:
        raise ArtefactError(f"malformed artefact: claims missing: {', '.join(missing)}")
    # bool is an int in Python, never a count or a moment here.
    wrong = [
        name for name, types in CLAIMS.items() if not isinstance(claims[name], types) or isinstance(claims[name], bool)
    ]
    if wrong or not all(isinstance(t, str) for t in claims["evidence_types"]):
        raise ArtefactError(f"malformed artefact: claims of the wrong type: {', '.join(wrong) or 'evidence_types'}")
    return claims
