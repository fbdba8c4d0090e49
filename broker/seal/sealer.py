"""The exchange's sealer: the broker's XAdES seal with its current key, and a fake for tests."""

from __future__ import annotations

from lxml import etree

from broker.keys.store import KeyStore
from broker.seal.xades import seal_evidence


class KeySealer:
    """Seals with the key store's current sealing key (read per call: rotation takes effect at once)."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    def seal(self, evidence: bytes | etree._Element) -> bytes:
        private_key, certificate = self._keys.sealing_key()
        return seal_evidence(evidence, private_key, certificate)


class FakeSealer:
    """Marks the evidence instead of signing it: for in-process tests of the lifecycle, not for delivery."""

    MARK = b"<!-- sealed by FakeSealer -->"

    def __init__(self) -> None:
        self.sealed: list[bytes] = []

    def seal(self, evidence: bytes | etree._Element) -> bytes:
        if not isinstance(evidence, bytes):
            evidence = bytes(etree.tostring(evidence, xml_declaration=True, encoding="UTF-8"))
        self.sealed.append(evidence)
        return evidence + self.MARK
