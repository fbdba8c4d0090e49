"""Sealing evidence with the broker's key: an enveloped XAdES-B-B signature (via signxml).

The seal is one ``ds:Signature``, the last child of the evidence document's root, with three
references: the whole document (``URI=""``, enveloped-signature transform), the XAdES
``SignedProperties`` (signing time, SigningCertificateV2, DataObjectFormat) and the
``KeyInfo`` carrying the broker's certificate.

Verification pins the broker's certificates (active and retired) instead of trusting whatever
certificate the document brings, and hands back only what signxml reports as signed
(``signed_xml``, re-parsed from the canonical bytes that were digested), never the received
tree. Whatever an attacker wraps around, beside or into the document, the caller sees the
bytes the broker signed or an error; that is the defence against signature wrapping.
Additionally the signature must sit directly under the root, be the only one there, and its
document reference must cover the root itself.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.xades import (
    XAdESDataObjectFormat,
    XAdESSignatureConfiguration,
    XAdESSigner,
    XAdESVerifier,
    XAdESVerifyResult,
)

from broker.xml.hardened import XmlIntakeError, parse_xml

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
_DS_SIGNATURE = f"{{{DS_NS}}}Signature"

_DATA_OBJECT_FORMAT = XAdESDataObjectFormat(
    Description="Evidence sealed by the Once-Only evidence broker", MimeType="application/xml"
)
# Exactly our three references, signature directly under the root.
_VERIFY_CONFIG = XAdESSignatureConfiguration(location="./", expect_references=3)


# The keys the seal signs with: ECDSA (the broker's own) or RSA (an imported one).
SealingPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class SealingError(Exception):
    """The evidence cannot be sealed."""


class SealVerificationError(Exception):
    """The seal is missing, broken, or not made by a trusted broker key."""


@dataclass(frozen=True)
class VerifiedEvidence:
    # The signed content only (signature removed), never the received tree.
    document: etree._Element
    certificate: x509.Certificate
    # As claimed by the signer inside SignedProperties; XAdES-B-B carries no timestamp token.
    signing_time: datetime.datetime | None


def _parse_xml(data: bytes) -> etree._Element:
    # The one hardened door: a DOCTYPE (which could declare IDs or entities that change what a
    # reference means) is refused there, as are entities, XInclude and oversized documents.
    try:
        return parse_xml(data)
    except XmlIntakeError as exc:
        raise ValueError(f"{exc.reason}: {exc.detail}") from exc


def _signature_method(private_key: SealingPrivateKey) -> SignatureMethod:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return SignatureMethod.RSA_SHA256
    by_curve = {"secp256r1": SignatureMethod.ECDSA_SHA256, "secp384r1": SignatureMethod.ECDSA_SHA384}
    try:
        return by_curve[private_key.curve.name]
    except KeyError:
        raise SealingError(f"unsupported sealing curve {private_key.curve.name}") from None


def seal_evidence(
    evidence: bytes | etree._Element,
    private_key: SealingPrivateKey,
    certificate: x509.Certificate,
) -> bytes:
    """Return the evidence document with the broker's enveloped XAdES-B-B signature appended."""
    if isinstance(evidence, bytes):
        try:
            root = _parse_xml(evidence)
        except ValueError as exc:
            raise SealingError(str(exc)) from exc
    else:
        root = evidence
    if root.tag == _DS_SIGNATURE or root.find(_DS_SIGNATURE) is not None:
        # The verifier insists on exactly one signature under the root; refuse to make it ambiguous.
        raise SealingError("evidence already carries a ds:Signature at its root")
    signer = XAdESSigner(
        data_object_format=_DATA_OBJECT_FORMAT,
        signature_algorithm=_signature_method(private_key),
        digest_algorithm=DigestAlgorithm.SHA256,
        # signxml digests SignedProperties/KeyInfo (references without transforms) with this
        # algorithm, and its verifier assumes C14N 1.1 for them, so anything else breaks verification.
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1,
    )
    try:
        # KeyValue next to the certificate would be a second, redundant statement of the key.
        signed = signer.sign(root, key=private_key, cert=[certificate], always_add_key_value=False)
    except (SignXMLException, ValueError) as exc:
        raise SealingError(f"signing failed: {exc}") from exc
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def verify_sealed_evidence(data: bytes, trusted_certificates: Sequence[x509.Certificate]) -> etree._Element:
    """Verify the broker's seal; return only the signed document (without its signature)."""
    return verify_sealed_evidence_detailed(data, trusted_certificates).document


def verify_sealed_evidence_detailed(data: bytes, trusted_certificates: Sequence[x509.Certificate]) -> VerifiedEvidence:
    try:
        root = _parse_xml(data)
    except ValueError as exc:
        raise SealVerificationError(str(exc)) from exc
    signatures = root.findall(_DS_SIGNATURE)
    if not signatures:
        raise SealVerificationError("no ds:Signature directly under the document root")
    if len(signatures) > 1:
        raise SealVerificationError("more than one ds:Signature under the document root")

    candidates = _trusted_signers(signatures[0], trusted_certificates)
    if not candidates:
        raise SealVerificationError("signing certificate is not one of the broker's certificates")
    failures: list[str] = []
    for certificate in candidates:
        try:
            results = XAdESVerifier().verify(root, x509_cert=certificate, expect_config=_VERIFY_CONFIG)
        except (SignXMLException, ValueError) as exc:
            failures.append(str(exc) or type(exc).__name__)
            continue
        document = results[0].signed_xml
        _check_document_reference(results[0].signature_xml, root)
        if document is None or document.tag != root.tag:
            raise SealVerificationError("the signature does not cover the evidence document")
        return VerifiedEvidence(document, certificate, _signing_time(results))
    raise SealVerificationError("signature check failed: " + "; ".join(failures))


def _trusted_signers(
    signature: etree._Element, trusted_certificates: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """The pinned certificates that also appear in the signature's KeyInfo.

    The KeyInfo certificate only picks which pinned certificate to try; the signature is then
    checked against the pinned one, so a forged KeyInfo gains nothing. It makes "signed by
    someone else" a clear error instead of N failed verifications.
    """
    embedded: set[bytes] = set()
    for node in signature.iterfind(f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate"):
        try:
            embedded.add(base64.b64decode("".join((node.text or "").split()), validate=True))
        except (binascii.Error, ValueError):
            continue
    return [cert for cert in trusted_certificates if cert.public_bytes(serialization.Encoding.DER) in embedded]


def _check_document_reference(signature: etree._Element, root: etree._Element) -> None:
    # signature_xml's SignedInfo is the one whose signature value just verified.
    first = signature.find(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference")
    uri = first.get("URI") if first is not None else None
    root_id = root.get("Id", root.get("ID"))
    if uri != "" and not (root_id is not None and uri == f"#{root_id}"):
        raise SealVerificationError("the signature's document reference does not cover the root element")


def _signing_time(results: Sequence[object]) -> datetime.datetime | None:
    for result in results:
        if isinstance(result, XAdESVerifyResult):
            node = result.signed_properties.find(f"{{{XADES_NS}}}SigningTime")
            if node is not None and node.text:
                try:
                    return datetime.datetime.fromisoformat(node.text.strip())
                except ValueError:
                    return None
    return None
