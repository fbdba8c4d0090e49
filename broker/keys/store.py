"""The broker's key material, generated on first use and kept on disk.

Layout of ``keys_dir`` (directories 0700, files 0600)::

    manifest.json            which key ids exist and which one is active, per purpose
    checkpoint/<kid>.pem     Ed25519 private keys that sign log checkpoints (PKCS#8 PEM)
    sealing/<kid>.key.pem    EC P-256 private keys that seal evidence (PKCS#8 PEM)
    sealing/<kid>.crt.pem    the self-signed X.509 certificate of each sealing key
    pseudonym.key            32 random bytes, the HMAC key for subject pseudonyms
    request-signing.pem      Ed25519 key signing the broker's requests to remote authorities
    callback.key             32 random bytes; each requester's callback HMAC secret derives from it

Key ids (``kid``) are RFC 7638 JWK thumbprints (:mod:`broker.keys.jwk`) of the public key, so
anyone holding the public key can recompute them; the key id a C2SP signed note uses is a
different thing and is derived by the signed-note code from the raw public key.

Rotation (:meth:`KeyStore.rotate`) adds a new checkpoint key and a new sealing key/certificate
and marks the previous ones *retired*. Retired keys never sign again but stay in the store and
in the JWKS, because old checkpoints and old sealed evidence must remain verifiable. In the
JWKS every key keeps ``"use": "sig"`` (retired keys still verify signatures) and carries a
private member ``"status": "active" | "retired"``; RFC 7517 section 4 lets a JWK carry extra
members and obliges consumers to ignore ones they do not understand, so generic JWKS clients
keep working while auditors can tell which key signs today. Active keys are listed first.

The pseudonym secret is never rotated: a new secret would give every citizen a new pseudonym
and break the link between their old and new log entries.

Concurrency: files are published whole (:mod:`broker.keys.files`) with ``os.link``, which fails
if the target exists, so of two processes initialising at once the first one wins and the
other discards its keys and loads the winner's; the manifest is replaced on rotation under an
``flock`` on ``.lock``. Readers re-read the manifest when it changed on disk, so a rotation in
one process is picked up by the others without a restart. A store that has loaded its keys
never makes new ones and never takes up another broker's: should the directory lose its keys,
hold others or become unreadable (a damaged manifest or key file), it goes on with the keys it
loaded (:attr:`KeyStore.replaced`, :attr:`KeyStore.unreadable`, /readyz).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from broker.keys.files import (
    LazyPrivateFile,
    create_exclusive,
    ensure_private_dir,
    exclusive_lock,
    replace_atomically,
)
from broker.keys.jwk import UnsupportedKeyError, b64url, certificate_key_id, jws_alg, key_id, public_jwk
from broker.logging import get_logger
from broker.seal.xades import SealingPrivateKey

DEFAULT_ORIGIN = "broker.example/once-only"
DEFAULT_CERTIFICATE_SUBJECT = "Once-Only Broker (development)"
CERTIFICATE_VALIDITY = datetime.timedelta(days=730)

log = get_logger(__name__)

_MANIFEST = "manifest.json"
_PSEUDONYM_SECRET = "pseudonym.key"
_REQUEST_KEY = "request-signing.pem"
_CALLBACK_SECRET = "callback.key"
_LOCK = ".lock"
_MANIFEST_FORMAT = 1


class KeyStoreError(Exception):
    """The key directory is inconsistent or unusable."""


@dataclass(frozen=True)
class CheckpointPublicKey:
    kid: str
    # The signed-note key name: the broker's origin.
    name: str
    public_key: Ed25519PublicKey
    active: bool
    created: datetime.datetime


@dataclass(frozen=True)
class SealingCertificate:
    kid: str
    certificate: x509.Certificate
    active: bool
    created: datetime.datetime


@dataclass(frozen=True)
class Rotation:
    checkpoint_kid: str
    sealing_kid: str
    retired_checkpoint_kid: str
    retired_sealing_kid: str


def _continues(loaded: _State, found: _State) -> bool:
    """Whether ``found`` is ``loaded`` or a rotation of it: it still holds the active keys of ``loaded``."""
    return loaded.active_checkpoint in found.checkpoint and loaded.active_sealing in found.sealing


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


# --- the store ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    kid: str
    active: bool
    created: datetime.datetime


@dataclass(frozen=True)
class _State:
    checkpoint: dict[str, tuple[_Entry, Ed25519PrivateKey]]
    sealing: dict[str, tuple[_Entry, SealingPrivateKey, x509.Certificate]]
    active_checkpoint: str
    active_sealing: str


class KeyStore:
    """Key material for one broker, rooted at ``keys_dir``. Safe to share between threads."""

    def __init__(
        self,
        keys_dir: Path | str,
        *,
        origin: str = DEFAULT_ORIGIN,
        certificate_subject: str = DEFAULT_CERTIFICATE_SUBJECT,
    ) -> None:
        self.keys_dir = Path(keys_dir)
        self.origin = origin
        self.certificate_subject = certificate_subject
        self._lock = threading.Lock()
        self._state: _State | None = None
        self._manifest_stamp: tuple[int, int, int] | None = None
        self._replaced = False
        # Why the directory could not be read when its manifest last changed; None when it could.
        self._unreadable: str | None = None
        self._pseudonym_secret = LazyPrivateFile(self.keys_dir / _PSEUDONYM_SECRET, _new_secret, _load_pseudonym_secret)
        self._request_key = LazyPrivateFile(self.keys_dir / _REQUEST_KEY, _new_request_key, _load_request_key)
        self._callback_secret = LazyPrivateFile(self.keys_dir / _CALLBACK_SECRET, _new_secret, Path.read_bytes)

    # public API ---------------------------------------------------------------------------

    @property
    def initialised(self) -> bool:
        """Whether keys exist already; lets read-only callers avoid generating keys as a side effect."""
        return (self.keys_dir / _MANIFEST).is_file()

    @property
    def replaced(self) -> bool:
        """Whether the directory held other keys than this store's when it last read the manifest
        (not a rotation: the keys it signs with are gone from it); it goes on with its own meanwhile."""
        return self._replaced

    @property
    def unreadable(self) -> bool:
        """Whether the manifest, or a key it names, could not be read when the manifest last
        changed on disk; the store goes on with the keys it loaded and reads again at the next change."""
        return self._unreadable is not None

    @property
    def has_pseudonym_secret(self) -> bool:
        """Whether the pseudonym secret exists; reading it through :meth:`pseudonym_secret` would make one."""
        return self._pseudonym_secret.path.is_file()

    def checkpoint_key(self) -> tuple[CheckpointPublicKey, Ed25519PrivateKey]:
        state = self._current()
        entry, private_key = state.checkpoint[state.active_checkpoint]
        return self._checkpoint_info(entry, private_key), private_key

    def checkpoint_public_keys(self) -> list[CheckpointPublicKey]:
        """Active key first, then retired keys, newest first."""
        state = self._current()
        return [self._checkpoint_info(entry, key) for entry, key in _ordered(state.checkpoint.values())]

    def sealing_key(self) -> tuple[SealingPrivateKey, x509.Certificate]:
        state = self._current()
        _entry, private_key, certificate = state.sealing[state.active_sealing]
        return private_key, certificate

    def sealing_certificates(self) -> list[SealingCertificate]:
        """Active certificate first, then retired ones, newest first."""
        state = self._current()
        return [
            SealingCertificate(entry.kid, certificate, entry.active, entry.created)
            for entry, _key, certificate in _ordered(state.sealing.values())
        ]

    def pseudonym_secret(self) -> bytes:
        return self._pseudonym_secret.get()

    def request_signing_key(self) -> Ed25519PrivateKey:
        """The Ed25519 key the broker signs its requests to remote authorities with.

        Kept apart from the checkpoint keys so that a signature on a request can never be
        mistaken for one on a checkpoint. Created on first use; not rotated by :meth:`rotate`
        (authorities pin it from the JWKS, where it has ``"purpose": "requests"``).
        """
        return self._request_key.get()

    def callback_secret(self) -> bytes:
        """32 random bytes from which each requester's callback HMAC secret is derived."""
        return self._callback_secret.get()

    def jwks(self) -> dict[str, Any]:
        keys: list[dict[str, Any]] = []
        for info in self.checkpoint_public_keys():
            keys.append(
                {
                    **public_jwk(info.public_key),
                    "kid": info.kid,
                    "use": "sig",
                    "alg": "EdDSA",
                    "status": "active" if info.active else "retired",
                }
            )
        for cert_info in self.sealing_certificates():
            public_key = cert_info.certificate.public_key()
            assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
            der = cert_info.certificate.public_bytes(serialization.Encoding.DER)
            keys.append(
                {
                    **public_jwk(public_key),
                    "kid": cert_info.kid,
                    "use": "sig",
                    "alg": jws_alg(public_key),
                    # RFC 7517 4.7: x5c is standard base64 (with padding), not base64url.
                    "x5c": [base64.b64encode(der).decode("ascii")],
                    "x5t#S256": b64url(hashlib.sha256(der).digest()),
                    "status": "active" if cert_info.active else "retired",
                }
            )
        if self._request_key.path.is_file():
            request_key = self.request_signing_key().public_key()
            keys.append(
                {
                    **public_jwk(request_key),
                    "kid": key_id(request_key),
                    "use": "sig",
                    "alg": "EdDSA",
                    "status": "active",
                    "purpose": "requests",
                }
            )
        return {"keys": keys}

    def rotate(self) -> Rotation:
        """New checkpoint and sealing keys become active; the previous ones are kept as retired."""
        self._current()  # a store is initialised before it can rotate
        with self._lock, exclusive_lock(self.keys_dir / _LOCK):
            manifest = self._read_manifest()
            old_checkpoint = _active_kid(manifest, "checkpoint")
            old_sealing = _active_kid(manifest, "sealing")
            checkpoint_kid = self._write_checkpoint_key(Ed25519PrivateKey.generate())
            sealing_kid = self._write_sealing_key(*self._new_sealing_key())
            created = _now().isoformat()
            for purpose, kid in (("checkpoint", checkpoint_kid), ("sealing", sealing_kid)):
                for record in manifest[purpose]:
                    if record["status"] == "active":
                        record["status"] = "retired"
                        record["retired"] = created
                manifest[purpose].append({"kid": kid, "status": "active", "created": created})
            replace_atomically(self.keys_dir / _MANIFEST, _dump(manifest))
            self._state = None
        return Rotation(checkpoint_kid, sealing_kid, old_checkpoint, old_sealing)

    # loading and initialisation -------------------------------------------------------------

    def _current(self) -> _State:
        with self._lock:
            stamp = self._stamp()
            if stamp is None and self._state is not None:
                # The keys were loaded and the directory has lost them since (a volume unmounted,
                # the directory replaced by an empty one): go on with the loaded keys. New ones
                # would sign checkpoints that fork the log (broker/keys/fingerprints.py).
                return self._state
            if stamp is None:
                self._initialise()
                stamp = self._stamp()
            if self._state is not None and stamp == self._manifest_stamp:
                return self._state
            try:
                state = self._load()
            except KeyStoreError as error:
                if self._state is None:
                    raise
                # Damaged since the keys were loaded (a disk error, an edit by hand): as with a lost
                # directory, go on with the loaded keys rather than fail every seal and checkpoint.
                self._manifest_stamp = stamp
                if self._unreadable is None:
                    log.warning("keys_unreadable", keys_dir=str(self.keys_dir), error=str(error))
                self._unreadable = str(error)
                return self._state
            self._unreadable = None
            self._manifest_stamp = stamp
            # A rotation keeps the keys it retires; a manifest without the keys this store signs
            # with is another broker's directory: go on with the loaded keys.
            self._replaced = self._state is not None and not _continues(self._state, state)
            if self._state is None or not self._replaced:
                self._state = state
            return self._state

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = (self.keys_dir / _MANIFEST).stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _initialise(self) -> None:
        for directory in (self.keys_dir, self.keys_dir / "checkpoint", self.keys_dir / "sealing"):
            ensure_private_dir(directory)
        checkpoint_kid = self._write_checkpoint_key(Ed25519PrivateKey.generate())
        sealing_kid = self._write_sealing_key(*self._new_sealing_key())
        created = _now().isoformat()
        manifest = {
            "format": _MANIFEST_FORMAT,
            "checkpoint": [{"kid": checkpoint_kid, "status": "active", "created": created}],
            "sealing": [{"kid": sealing_kid, "status": "active", "created": created}],
        }
        if not create_exclusive(self.keys_dir / _MANIFEST, _dump(manifest)):
            # Another process initialised the store at the same moment and won: use its keys.
            (self.keys_dir / "checkpoint" / f"{checkpoint_kid}.pem").unlink(missing_ok=True)
            (self.keys_dir / "sealing" / f"{sealing_kid}.key.pem").unlink(missing_ok=True)
            (self.keys_dir / "sealing" / f"{sealing_kid}.crt.pem").unlink(missing_ok=True)

    def _read_manifest(self) -> dict[str, Any]:
        path = self.keys_dir / _MANIFEST
        try:
            manifest = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"cannot read {path}: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != _MANIFEST_FORMAT:
            raise KeyStoreError(f"{path}: unknown manifest format")
        for purpose in ("checkpoint", "sealing"):
            _active_kid(manifest, purpose)
        return manifest

    def _load(self) -> _State:
        manifest = self._read_manifest()
        checkpoint: dict[str, tuple[_Entry, Ed25519PrivateKey]] = {}
        for record in manifest["checkpoint"]:
            entry = _entry(record)
            key = _load_private_key(self.keys_dir / "checkpoint" / f"{entry.kid}.pem")
            if not isinstance(key, Ed25519PrivateKey) or key_id(key.public_key()) != entry.kid:
                raise KeyStoreError(f"checkpoint key {entry.kid} is not the Ed25519 key the manifest names")
            checkpoint[entry.kid] = (entry, key)
        sealing: dict[str, tuple[_Entry, SealingPrivateKey, x509.Certificate]] = {}
        for record in manifest["sealing"]:
            entry = _entry(record)
            sealing_key = _load_private_key(self.keys_dir / "sealing" / f"{entry.kid}.key.pem")
            cert_path = self.keys_dir / "sealing" / f"{entry.kid}.crt.pem"
            try:
                certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            except (OSError, ValueError) as exc:
                raise KeyStoreError(f"cannot load {cert_path}: {exc}") from exc
            try:
                matches = isinstance(sealing_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) and (
                    key_id(sealing_key.public_key()) == entry.kid == certificate_key_id(certificate)
                )
            except UnsupportedKeyError as exc:
                raise KeyStoreError(f"sealing key {entry.kid}: {exc}") from exc
            if not matches:
                raise KeyStoreError(f"sealing key {entry.kid} does not match its id or certificate")
            sealing[entry.kid] = (entry, sealing_key, certificate)
        return _State(
            checkpoint=checkpoint,
            sealing=sealing,
            active_checkpoint=_active_kid(manifest, "checkpoint"),
            active_sealing=_active_kid(manifest, "sealing"),
        )

    def _new_sealing_key(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        private_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.certificate_subject)])
        now = _now()
        public_key = private_key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            # A little slack so a verifier whose clock is slightly behind still accepts it.
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + CERTIFICATE_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(private_key, hashes.SHA256())
        )
        return private_key, certificate

    def _write_checkpoint_key(self, private_key: Ed25519PrivateKey) -> str:
        kid = key_id(private_key.public_key())
        create_exclusive(self.keys_dir / "checkpoint" / f"{kid}.pem", _pem(private_key))
        return kid

    def _write_sealing_key(self, private_key: SealingPrivateKey, certificate: x509.Certificate) -> str:
        kid = key_id(private_key.public_key())
        directory = self.keys_dir / "sealing"
        # Certificate first: a key file without certificate would be unusable, the reverse harmless.
        create_exclusive(directory / f"{kid}.crt.pem", certificate.public_bytes(serialization.Encoding.PEM))
        create_exclusive(directory / f"{kid}.key.pem", _pem(private_key))
        return kid

    def _checkpoint_info(self, entry: _Entry, private_key: Ed25519PrivateKey) -> CheckpointPublicKey:
        return CheckpointPublicKey(entry.kid, self.origin, private_key.public_key(), entry.active, entry.created)


def _ordered(items: Any) -> list[Any]:
    # Items come in manifest order (oldest first) and start with their _Entry; creation times
    # are only second-precise, so the manifest order, not the time, decides "newest".
    return sorted(reversed(list(items)), key=lambda item: not item[0].active)


def _active_kid(manifest: dict[str, Any], purpose: str) -> str:
    records = manifest.get(purpose)
    if not isinstance(records, list):
        raise KeyStoreError(f"manifest has no {purpose} keys")
    active = [r["kid"] for r in records if isinstance(r, dict) and r.get("status") == "active"]
    if len(active) != 1:
        raise KeyStoreError(f"manifest must name exactly one active {purpose} key, found {len(active)}")
    return str(active[0])


def _entry(record: dict[str, Any]) -> _Entry:
    try:
        return _Entry(
            kid=str(record["kid"]),
            active=record["status"] == "active",
            created=datetime.datetime.fromisoformat(record["created"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyStoreError(f"bad manifest record {record!r}") from exc


def _load_private_key(path: Path) -> Any:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyStoreError(f"cannot load {path}: {exc}") from exc


def _pem(private_key: Ed25519PrivateKey | SealingPrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _dump(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _new_secret() -> bytes:
    return secrets.token_bytes(32)


def _load_pseudonym_secret(path: Path) -> bytes:
    secret = path.read_bytes()
    if len(secret) != 32:
        raise KeyStoreError(f"{path} must hold exactly 32 bytes, found {len(secret)}")
    return secret


def _new_request_key() -> bytes:
    return _pem(Ed25519PrivateKey.generate())


def _load_request_key(path: Path) -> Ed25519PrivateKey:
    key = _load_private_key(path)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyStoreError(f"{path} must hold an Ed25519 private key")
    return key
