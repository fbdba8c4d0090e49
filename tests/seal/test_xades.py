import base64
import copy
import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from broker.keys.store import KeyStore
from broker.seal.xades import (
    SealingError,
    SealVerificationError,
    seal_evidence,
    verify_sealed_evidence,
    verify_sealed_evidence_detailed,
)

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
NS = "urn:de:nachweis:meldebescheinigung:1"
NSMAP = {"ds": DS, "xades": XADES, "m": NS}

EVIDENCE = b"""<?xml version="1.0" encoding="UTF-8"?>
<Meldebescheinigung xmlns="urn:de:nachweis:meldebescheinigung:1">
  <Person>
    <Familienname>Mustermann</Familienname>
    <Vorname>Erika</Vorname>
    <Geburtsdatum>1964-08-12</Geburtsdatum>
  </Person>
  <Anschrift><Ort>Schwerin</Ort></Anschrift>
</Meldebescheinigung>"""


def c14n(element: etree._Element) -> bytes:
    return bytes(etree.tostring(element, method="c14n"))


def without_signature(sealed: bytes) -> bytes:
    root = etree.fromstring(sealed)
    root.remove(root.find(f"{{{DS}}}Signature"))
    return c14n(root)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


@pytest.fixture
def stranger(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "stranger-keys", certificate_subject="Once-Only Broker (development)")


@pytest.fixture
def sealed(store: KeyStore) -> bytes:
    return seal_evidence(EVIDENCE, *store.sealing_key())


def trusted(store: KeyStore) -> list:
    return [info.certificate for info in store.sealing_certificates()]


def assert_rejected_or_original(data: bytes, store: KeyStore) -> None:
    try:
        document = verify_sealed_evidence(data, trusted(store))
    except SealVerificationError:
        return
    assert c14n(document) == c14n(etree.fromstring(EVIDENCE))
    assert b"Berlin" not in c14n(document)


def test_round_trip_returns_the_signed_document(store: KeyStore, sealed: bytes) -> None:
    document = verify_sealed_evidence(sealed, trusted(store))
    assert c14n(document) == c14n(etree.fromstring(EVIDENCE))
    assert document.find(f"{{{DS}}}Signature") is None


def test_seal_is_an_enveloped_xades_signature(store: KeyStore, sealed: bytes) -> None:
    _key, certificate = store.sealing_key()
    root = etree.fromstring(sealed)
    assert root.tag == f"{{{NS}}}Meldebescheinigung"
    signatures = root.findall("ds:Signature", NSMAP)
    assert len(signatures) == 1 and root[-1] is signatures[0]
    signature = signatures[0]
    references = signature.findall("ds:SignedInfo/ds:Reference", NSMAP)
    assert references[0].get("URI") == ""
    assert [r.get("Type") for r in references].count("http://uri.etsi.org/01903#SignedProperties") == 1
    properties = signature.find("ds:Object/xades:QualifyingProperties/xades:SignedProperties", NSMAP)
    assert properties is not None
    assert properties.find("xades:SignedSignatureProperties/xades:SigningTime", NSMAP) is not None
    assert properties.find("xades:SignedSignatureProperties/xades:SigningCertificateV2", NSMAP) is not None
    mime = properties.find("xades:SignedDataObjectProperties/xades:DataObjectFormat/xades:MimeType", NSMAP)
    assert mime is not None and mime.text == "application/xml"
    embedded = signature.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NSMAP)
    assert base64.b64decode("".join(embedded.text.split())) == certificate.public_bytes(serialization.Encoding.DER)
    assert signature.find("ds:KeyInfo/ds:KeyValue", NSMAP) is None


def test_detailed_result_names_certificate_and_signing_time(store: KeyStore, sealed: bytes) -> None:
    result = verify_sealed_evidence_detailed(sealed, trusted(store))
    assert result.certificate == store.sealing_key()[1]
    assert result.signing_time is not None
    assert abs(datetime.datetime.now(datetime.UTC) - result.signing_time) < datetime.timedelta(minutes=5)


def test_sealing_an_element_leaves_the_input_untouched(store: KeyStore) -> None:
    element = etree.fromstring(EVIDENCE)
    before = c14n(element)
    sealed = seal_evidence(element, *store.sealing_key())
    assert c14n(element) == before
    assert c14n(verify_sealed_evidence(sealed, trusted(store))) == before


def test_evidence_with_root_id_is_sealed_and_verified(store: KeyStore) -> None:
    evidence = EVIDENCE.replace(b"<Meldebescheinigung ", b'<Meldebescheinigung Id="ev-1" ')
    sealed = seal_evidence(evidence, *store.sealing_key())
    assert c14n(verify_sealed_evidence(sealed, trusted(store))) == c14n(etree.fromstring(evidence))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<Ort>Schwerin</Ort>", b"<Ort>Berlin</Ort>"),
        (b"<Vorname>Erika</Vorname>", b"<Vorname>Erika</Vorname><Vorname>Maria</Vorname>"),
        (b"1964-08-12</Geburtsdatum>", b"1964-08-13</Geburtsdatum>"),
    ],
)
def test_tampered_content_is_rejected(store: KeyStore, sealed: bytes, old: bytes, new: bytes) -> None:
    assert old in sealed
    with pytest.raises(SealVerificationError):
        verify_sealed_evidence(sealed.replace(old, new), trusted(store))


def test_tampered_signed_properties_are_rejected(store: KeyStore, sealed: bytes) -> None:
    root = etree.fromstring(sealed)
    signing_time = root.find(".//xades:SigningTime", NSMAP)
    signing_time.text = "2001-01-01T00:00:00+00:00"
    with pytest.raises(SealVerificationError):
        verify_sealed_evidence(etree.tostring(root), trusted(store))


def test_seal_by_an_untrusted_key_is_rejected(store: KeyStore, stranger: KeyStore) -> None:
    forged = seal_evidence(EVIDENCE, *stranger.sealing_key())
    assert verify_sealed_evidence(forged, trusted(stranger)) is not None
    with pytest.raises(SealVerificationError, match="not one of the broker's certificates"):
        verify_sealed_evidence(forged, trusted(store))


def test_untrusted_key_with_the_brokers_certificate_in_keyinfo_is_rejected(store: KeyStore, stranger: KeyStore) -> None:
    forged = etree.fromstring(seal_evidence(EVIDENCE, *stranger.sealing_key()))
    broker_der = store.sealing_key()[1].public_bytes(serialization.Encoding.DER)
    forged.find(".//ds:X509Certificate", NSMAP).text = base64.b64encode(broker_der).decode()
    with pytest.raises(SealVerificationError):
        verify_sealed_evidence(etree.tostring(forged), trusted(store))


def test_no_signature_is_rejected(store: KeyStore) -> None:
    with pytest.raises(SealVerificationError, match="no ds:Signature"):
        verify_sealed_evidence(EVIDENCE, trusted(store))


def test_two_signatures_under_the_root_are_rejected(store: KeyStore, sealed: bytes) -> None:
    root = etree.fromstring(sealed)
    root.append(copy.deepcopy(root.find("ds:Signature", NSMAP)))
    with pytest.raises(SealVerificationError, match="more than one"):
        verify_sealed_evidence(etree.tostring(root), trusted(store))


def test_sealing_refuses_an_already_signed_root(store: KeyStore, sealed: bytes) -> None:
    with pytest.raises(SealingError):
        seal_evidence(sealed, *store.sealing_key())


@pytest.mark.parametrize(
    "hostile",
    [
        b"<Meldebescheinigung",
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><m>&x;</m>',
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><m>&b;</m>',
    ],
)
def test_hostile_or_malformed_input_is_a_verification_error(store: KeyStore, hostile: bytes) -> None:
    with pytest.raises(SealVerificationError):
        verify_sealed_evidence(hostile, trusted(store))
    with pytest.raises(SealingError):
        seal_evidence(hostile, *store.sealing_key())


# --- signature wrapping ---------------------------------------------------------------------


def forged_root() -> etree._Element:
    return etree.fromstring(EVIDENCE.replace(b"Schwerin", b"Berlin"))


def test_wrapping_the_signed_document_in_a_new_root_is_rejected(store: KeyStore, sealed: bytes) -> None:
    # Naive consumers read the first Meldebescheinigung; the signed one sits second.
    wrapper = etree.Element("{urn:attacker}Envelope")
    wrapper.append(forged_root())
    wrapper.append(etree.fromstring(sealed))
    assert_rejected_or_original(etree.tostring(wrapper), store)
    with pytest.raises(SealVerificationError):
        verify_sealed_evidence(etree.tostring(wrapper), trusted(store))


def test_signature_moved_onto_forged_content_with_original_hidden_in_object(store: KeyStore, sealed: bytes) -> None:
    original = etree.fromstring(sealed)
    signature = original.find("ds:Signature", NSMAP)
    original.remove(signature)
    forged = forged_root()
    forged.append(signature)
    hidden = etree.SubElement(signature, f"{{{DS}}}Object")
    hidden.append(original)
    data = etree.tostring(forged)
    assert_rejected_or_original(data, store)


def test_forged_root_pointing_at_the_signed_element_by_id(store: KeyStore) -> None:
    # With an Id on the evidence root the reference is "#ev-1"; the attacker keeps that element
    # intact but nests it under a forged root that now carries the signature.
    evidence = EVIDENCE.replace(b"<Meldebescheinigung ", b'<Meldebescheinigung Id="ev-1" ')
    original = etree.fromstring(seal_evidence(evidence, *store.sealing_key()))
    signature = original.find("ds:Signature", NSMAP)
    original.remove(signature)
    forged = forged_root()
    forged.append(signature)
    forged.append(original)
    data = etree.tostring(forged)
    try:
        document = verify_sealed_evidence(data, trusted(store))
    except SealVerificationError:
        return
    assert b"Berlin" not in c14n(document)
    assert c14n(document) == c14n(etree.fromstring(evidence))


def test_only_signed_content_is_returned_even_without_the_root_reference_check(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Defence in depth: with the root-reference check switched off, signxml accepts the nested
    # "#ev-1" layout, and what comes back must still be the signed element, not the forged root.
    monkeypatch.setattr("broker.seal.xades._check_document_reference", lambda signature, root: None)
    evidence = EVIDENCE.replace(b"<Meldebescheinigung ", b'<Meldebescheinigung Id="ev-1" ')
    original = etree.fromstring(seal_evidence(evidence, *store.sealing_key()))
    signature = original.find("ds:Signature", NSMAP)
    original.remove(signature)
    forged = forged_root()
    forged.append(signature)
    forged.append(original)
    document = verify_sealed_evidence(etree.tostring(forged), trusted(store))
    assert b"Berlin" not in c14n(document)
    assert c14n(document) == c14n(etree.fromstring(evidence))


def test_duplicate_id_with_forged_element_first(store: KeyStore) -> None:
    evidence = EVIDENCE.replace(b"<Meldebescheinigung ", b'<Meldebescheinigung Id="ev-1" ')
    sealed = etree.fromstring(seal_evidence(evidence, *store.sealing_key()))
    forged = forged_root()
    forged.set("Id", "ev-1")
    sealed.insert(0, forged)  # an element with the same Id, earlier in document order
    data = etree.tostring(sealed)
    try:
        document = verify_sealed_evidence(data, trusted(store))
    except SealVerificationError:
        return
    assert b"Berlin" not in c14n(document)


def test_result_is_a_fresh_tree_not_the_received_one(store: KeyStore, sealed: bytes) -> None:
    # Appending unsigned content after the signature must not show up in what the caller gets.
    root = etree.fromstring(sealed)
    etree.SubElement(root, f"{{{NS}}}Anmerkung").text = "Berlin"
    with pytest.raises(SealVerificationError):
        verify_sealed_evidence(etree.tostring(root), trusted(store))
    document = verify_sealed_evidence(sealed, trusted(store))
    assert document.getparent() is None
    assert document.find(f"{{{DS}}}Signature") is None


# --- key rotation ---------------------------------------------------------------------------


def test_evidence_sealed_by_a_retired_key_still_verifies(store: KeyStore) -> None:
    old_key, old_cert = store.sealing_key()
    sealed_before = seal_evidence(EVIDENCE, old_key, old_cert)
    store.rotate()
    new_key, new_cert = store.sealing_key()
    assert new_cert != old_cert
    sealed_after = seal_evidence(EVIDENCE, new_key, new_cert)

    certificates = trusted(store)
    assert len(certificates) == 2
    assert verify_sealed_evidence_detailed(sealed_before, certificates).certificate == old_cert
    assert verify_sealed_evidence_detailed(sealed_after, certificates).certificate == new_cert
    # Pinning only the new certificate rejects the old seal: trust comes from the pinned list.
    with pytest.raises(SealVerificationError):
        verify_sealed_evidence(sealed_before, [new_cert])
