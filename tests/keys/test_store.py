import base64
import hashlib
import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.keys.jwk import key_id
from broker.keys.store import KeyStore, KeyStoreError
from broker.ops.service import keys_state


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


def test_first_use_generates_and_reload_returns_the_same_keys(keys_dir: Path) -> None:
    store = KeyStore(keys_dir)
    assert not store.initialised
    info, private_key = store.checkpoint_key()
    sealing_key, certificate = store.sealing_key()
    secret = store.pseudonym_secret()
    assert store.initialised
    assert len(secret) == 32

    again = KeyStore(keys_dir)
    info2, private_key2 = again.checkpoint_key()
    sealing_key2, certificate2 = again.sealing_key()
    assert info2.kid == info.kid
    assert _raw(private_key2.public_key()) == _raw(private_key.public_key())
    assert certificate2 == certificate
    assert isinstance(sealing_key, ec.EllipticCurvePrivateKey)
    assert isinstance(sealing_key2, ec.EllipticCurvePrivateKey)
    assert sealing_key2.private_numbers() == sealing_key.private_numbers()
    assert again.pseudonym_secret() == secret


def test_key_files_and_directories_are_private(keys_dir: Path) -> None:
    store = KeyStore(keys_dir)
    store.checkpoint_key()
    store.pseudonym_secret()
    store.rotate()
    directories = [keys_dir, *(p for p in keys_dir.rglob("*") if p.is_dir())]
    files = [p for p in keys_dir.rglob("*") if p.is_file()]
    assert {p.name for p in directories} >= {"keys", "checkpoint", "sealing"}
    assert all(_mode(p) == 0o700 for p in directories), {p: oct(_mode(p)) for p in directories}
    assert len(files) >= 8
    assert all(_mode(p) == 0o600 for p in files), {p: oct(_mode(p)) for p in files}
    assert not [p for p in files if p.name.startswith(".tmp-")]


def test_existing_world_readable_directory_is_tightened(keys_dir: Path) -> None:
    keys_dir.mkdir(mode=0o755)
    keys_dir.chmod(0o755)
    KeyStore(keys_dir).checkpoint_key()
    assert _mode(keys_dir) == 0o700


def test_sealing_certificate_is_self_signed_for_two_years(keys_dir: Path) -> None:
    private_key, certificate = KeyStore(keys_dir).sealing_key()
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    assert certificate.subject == certificate.issuer
    assert certificate.subject.rfc4514_string() == "CN=Once-Only Broker (development)"
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert 729 <= lifetime.days <= 731
    certificate.verify_directly_issued_by(certificate)
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_origin_names_the_checkpoint_key(keys_dir: Path) -> None:
    info, _key = KeyStore(keys_dir, origin="mv.example/broker").checkpoint_key()
    assert info.name == "mv.example/broker"
    assert info.active


def test_key_id_is_the_rfc7638_thumbprint_rfc8037_vector() -> None:
    # RFC 8037 appendix A.3: the thumbprint of the appendix A.2 Ed25519 public key.
    public_key = Ed25519PublicKey.from_public_bytes(_b64url_decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"))
    assert key_id(public_key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rotate_keeps_retired_keys_and_activates_new_ones(keys_dir: Path) -> None:
    store = KeyStore(keys_dir)
    old_info, _ = store.checkpoint_key()
    _, old_cert = store.sealing_key()
    secret = store.pseudonym_secret()

    rotation = store.rotate()

    new_info, _ = store.checkpoint_key()
    _, new_cert = store.sealing_key()
    assert rotation.retired_checkpoint_kid == old_info.kid
    assert rotation.checkpoint_kid == new_info.kid != old_info.kid
    assert new_cert != old_cert
    assert store.pseudonym_secret() == secret

    checkpoint_keys = store.checkpoint_public_keys()
    assert [(k.kid, k.active) for k in checkpoint_keys] == [(new_info.kid, True), (old_info.kid, False)]
    certificates = store.sealing_certificates()
    assert [(c.certificate, c.active) for c in certificates] == [(new_cert, True), (old_cert, False)]

    store.rotate()
    assert [k.active for k in store.checkpoint_public_keys()] == [True, False, False]
    assert store.checkpoint_public_keys()[1].kid == new_info.kid  # newest retired key comes next


def test_rotation_is_seen_by_another_store_on_the_same_directory(keys_dir: Path) -> None:
    serving = KeyStore(keys_dir)
    before, _ = serving.checkpoint_key()
    KeyStore(keys_dir).rotate()
    after, _ = serving.checkpoint_key()
    assert after.kid != before.kid
    assert len(serving.checkpoint_public_keys()) == 2
    assert not serving.replaced


def test_a_loaded_store_keeps_its_keys_when_the_directory_loses_or_swaps_them(keys_dir: Path) -> None:
    # Under load: tests/chaos/test_keys_mismatch.py.
    serving = KeyStore(keys_dir)
    before, _ = serving.checkpoint_key()
    keys_dir.rename(keys_dir.with_name("away"))
    keys_dir.mkdir()
    assert serving.checkpoint_key()[0].kid == before.kid
    assert list(keys_dir.iterdir()) == []  # no keys made
    keys_dir.rmdir()
    KeyStore(keys_dir).checkpoint_key()  # another broker's keys
    assert serving.checkpoint_key()[0].kid == before.kid and serving.replaced
    keys_dir.rename(keys_dir.with_name("other"))
    keys_dir.with_name("away").rename(keys_dir)
    assert serving.checkpoint_key()[0].kid == before.kid and not serving.replaced


@pytest.mark.parametrize("damage", ["manifest garbage", "manifest cut short", "key file garbage"])
def test_a_loaded_store_keeps_its_keys_when_the_directory_becomes_unreadable(keys_dir: Path, damage: str) -> None:
    serving = KeyStore(keys_dir)
    before, _ = serving.checkpoint_key()
    sealing_before = serving.sealing_key()[1]
    manifest = keys_dir / "manifest.json"
    intact = manifest.read_bytes()
    if damage == "key file garbage":
        # A rotation elsewhere names a new key whose file is damaged: the manifest changed, so the
        # store reads again, and fails.
        KeyStore(keys_dir).rotate()
        [new_key] = [k for k in (keys_dir / "checkpoint").iterdir() if k.stem != before.kid]
        whole_key = new_key.read_bytes()
        new_key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    else:
        manifest.write_bytes(b"\x00garbage" if damage == "manifest garbage" else intact[: len(intact) // 2])
    # Every seal and checkpoint goes on with the loaded keys; the store says it could not read.
    assert serving.checkpoint_key()[0].kid == before.kid
    assert serving.sealing_key()[1] == sealing_before
    assert serving.unreadable and not serving.replaced
    assert keys_state(serving) == "unreadable"
    # Mended: read again at the next change, and no longer unreadable.
    if damage == "key file garbage":
        new_key.write_bytes(whole_key)
        os.utime(manifest)  # the store reads again when the manifest changes
        assert serving.checkpoint_key()[0].kid == new_key.stem  # the rotation takes effect now
    else:
        manifest.write_bytes(intact)
        assert serving.checkpoint_key()[0].kid == before.kid
    assert not serving.unreadable and keys_state(serving) == "ok"


def test_a_store_that_never_loaded_its_keys_refuses_an_unreadable_directory(keys_dir: Path) -> None:
    KeyStore(keys_dir).checkpoint_key()
    (keys_dir / "manifest.json").write_bytes(b"{")
    with pytest.raises(KeyStoreError, match="cannot read"):
        KeyStore(keys_dir).checkpoint_key()


def test_rotate_on_an_empty_directory_initialises_first(keys_dir: Path) -> None:
    rotation = KeyStore(keys_dir).rotate()
    assert rotation.retired_checkpoint_kid != rotation.checkpoint_kid
    assert len(KeyStore(keys_dir).sealing_certificates()) == 2


def test_jwks_shape(keys_dir: Path) -> None:
    store = KeyStore(keys_dir)
    store.rotate()
    jwks = store.jwks()
    assert list(jwks) == ["keys"]
    json.dumps(jwks)  # served as-is by the HTTP layer

    okp = [k for k in jwks["keys"] if k["kty"] == "OKP"]
    ec_keys = [k for k in jwks["keys"] if k["kty"] == "EC"]
    assert len(okp) == 2 and len(ec_keys) == 2 and len(jwks["keys"]) == 4
    assert [k["status"] for k in okp] == ["active", "retired"]
    assert [k["status"] for k in ec_keys] == ["active", "retired"]

    for jwk, info in zip(okp, store.checkpoint_public_keys(), strict=True):
        assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg", "status"}
        assert (jwk["crv"], jwk["use"], jwk["alg"]) == ("Ed25519", "sig", "EdDSA")
        assert "=" not in jwk["x"]
        assert _b64url_decode(jwk["x"]) == _raw(info.public_key)
        thumbprint_input = json.dumps(
            {"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]}, separators=(",", ":"), sort_keys=True
        )
        expected_kid = base64.urlsafe_b64encode(hashlib.sha256(thumbprint_input.encode()).digest())
        assert jwk["kid"] == info.kid == expected_kid.decode().rstrip("=")

    for jwk, cert_info in zip(ec_keys, store.sealing_certificates(), strict=True):
        assert set(jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg", "x5c", "x5t#S256", "status"}
        assert (jwk["crv"], jwk["use"], jwk["alg"]) == ("P-256", "sig", "ES256")
        assert jwk["kid"] == cert_info.kid
        # x5c is standard base64 (RFC 7517 4.7), decoding strictly to the certificate's DER.
        der = base64.b64decode(jwk["x5c"][0], validate=True)
        assert x509.load_der_x509_certificate(der) == cert_info.certificate
        public_key = cert_info.certificate.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        numbers = public_key.public_numbers()
        assert _b64url_decode(jwk["x"]) == numbers.x.to_bytes(32, "big")
        assert _b64url_decode(jwk["y"]) == numbers.y.to_bytes(32, "big")
        assert _b64url_decode(jwk["x5t#S256"]) == hashlib.sha256(der).digest()


def test_losing_an_initialisation_race_adopts_the_winners_keys(keys_dir: Path) -> None:
    winner = KeyStore(keys_dir)
    winner_info, _ = winner.checkpoint_key()
    loser = KeyStore(keys_dir)
    # What a process does when it saw no manifest, generated keys, and then found itself second.
    loser._initialise()
    loser_info, _ = loser.checkpoint_key()
    assert loser_info.kid == winner_info.kid
    assert len(list((keys_dir / "checkpoint").iterdir())) == 1
    assert len(list((keys_dir / "sealing").iterdir())) == 2


def _initialise_in_child(keys_dir: str) -> tuple[str, str, bytes]:
    store = KeyStore(Path(keys_dir))
    info, _ = store.checkpoint_key()
    return info.kid, store.sealing_certificates()[0].kid, store.pseudonym_secret()


def test_processes_initialising_at_once_agree(keys_dir: Path) -> None:
    context = multiprocessing.get_context("fork")
    with context.Pool(6) as pool:
        results = pool.map(_initialise_in_child, [str(keys_dir)] * 12)
    assert len(set(results)) == 1
    assert len(list((keys_dir / "checkpoint").iterdir())) == 1
    assert len(list((keys_dir / "sealing").iterdir())) == 2


def test_manifest_naming_a_missing_key_is_an_error(keys_dir: Path) -> None:
    store = KeyStore(keys_dir)
    info, _ = store.checkpoint_key()
    (keys_dir / "checkpoint" / f"{info.kid}.pem").unlink()
    with pytest.raises(KeyStoreError):
        KeyStore(keys_dir).checkpoint_key()


def test_corrupt_manifest_is_an_error(keys_dir: Path) -> None:
    KeyStore(keys_dir).checkpoint_key()
    (keys_dir / "manifest.json").write_text("{not json")
    with pytest.raises(KeyStoreError):
        KeyStore(keys_dir).sealing_key()


def test_short_pseudonym_secret_is_an_error(keys_dir: Path) -> None:
    keys_dir.mkdir(mode=0o700)
    (keys_dir / "pseudonym.key").write_bytes(b"too short")
    with pytest.raises(KeyStoreError):
        KeyStore(keys_dir).pseudonym_secret()
