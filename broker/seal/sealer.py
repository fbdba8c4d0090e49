"""The exchange's sealer: the broker's XAdES seal with its current key, and a fake for tests.

:class:`ProcessSealer` (the default) seals in signer processes beside the serving process
(:mod:`broker.seal.signer`); :class:`KeySealer` seals in the calling thread
(``BROKER_SEAL_PROCESSES=0``). Both seal with the key store's current sealing key, read per call,
so that a rotation takes effect at once.

Why processes: the seal is the most CPU-hungry step of an exchange (signxml builds and
canonicalises the signature in Python, about a quarter of the exchange's instructions), and a
serving process runs its Python on one core at a time. While a signer seals, the serving process
goes on with other requests (the calling thread waits on a pipe, without the GIL).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from broker.keys.store import KeyStore, SealingPrivateKey
from broker.seal import signer as protocol
from broker.seal.xades import SealingError, seal_evidence
from broker.xml.hardened import XmlLimits

# The broker's checkout or installation: where a signer process imports ``broker`` from.
_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])


class SignerUnavailable(Exception):
    """No signer process could seal: it died, could not start, or did not answer in time. The
    environment's failure, not the document's (broker.problems answers 503 seal.unavailable)."""


class KeySealer:
    """Seals in the calling thread with the key store's current sealing key."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    def seal(self, evidence: bytes | etree._Element) -> bytes:
        private_key, certificate = self._keys.sealing_key()
        return seal_evidence(evidence, private_key, certificate)


class _SignerProcess:
    """One signer process and the pipes to it; used by one thread at a time (the pool sees to it)."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._process: subprocess.Popen[bytes] | None = None
        # The certificate whose key the signer holds. The key store hands out the same objects
        # until its keys change, so identity tells whether the signer needs the key sent anew.
        self._certificate: x509.Certificate | None = None

    def start(self) -> None:
        """Start the process unless it runs (again, if it has died since)."""
        if self._process is not None and self._process.poll() is None:
            return
        self.stop()
        path = os.environ.get("PYTHONPATH")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "broker.seal.signer", "--max-bytes", str(self._max_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (_IMPORT_ROOT, path)))},
        )
        self._certificate = None

    def stop(self) -> None:
        """Close its input (it exits), wait briefly, kill it if it has not."""
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(OSError):  # a broken pipe: the signer is gone already
            process.stdin.close()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
        self.stop()

    def seal(self, evidence: bytes, key: SealingPrivateKey, certificate: x509.Certificate, deadline: float) -> bytes:
        self.start()
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        request = protocol.frame(protocol.SEAL, evidence)
        if certificate is not self._certificate:
            der_key = key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            der_certificate = certificate.public_bytes(serialization.Encoding.DER)
            request = protocol.frame(protocol.KEY, der_key, der_certificate) + request
        try:
            self._write(process.stdin.fileno(), request, deadline)
            self._certificate = certificate
            self._wait(process.stdout.fileno(), select.POLLIN, deadline)
            status = protocol.read_exactly(process.stdout, 1)
            payload = protocol.read_part(process.stdout)
        except (OSError, ValueError) as error:
            raise SignerUnavailable(f"the signer process failed: {error}") from error
        if status == protocol.SEALED:
            return payload
        if status == protocol.REFUSED:
            raise SealingError(payload.decode("utf-8", "replace"))
        raise SignerUnavailable(f"the signer process answered an unknown status {status!r}")

    @classmethod
    def _write(cls, fd: int, data: bytes, deadline: float) -> None:
        # A signer that hangs must not hang its caller: not even on a pipe it no longer empties.
        view = memoryview(data)
        while view:
            cls._wait(fd, select.POLLOUT, deadline)
            view = view[os.write(fd, view[: select.PIPE_BUF]) :]

    @staticmethod
    def _wait(fd: int, event: int, deadline: float) -> None:
        poller = select.poll()
        poller.register(fd, event)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise SignerUnavailable("the signer process did not answer in time")


class ProcessSealer:
    """Seals in ``processes`` signer processes with the key store's current sealing key.

    A call waits for a free signer; a signer that dies, answers nonsense or takes longer than
    ``timeout_seconds`` is killed, the call fails with :class:`SignerUnavailable`, and the next
    call starts that signer afresh. A document the signer refuses raises
    :class:`~broker.seal.xades.SealingError`, as :class:`KeySealer` does.
    """

    def __init__(self, keys: KeyStore, processes: int, limits: XmlLimits, timeout_seconds: float) -> None:
        if processes < 1:
            raise ValueError("a ProcessSealer needs at least one process")
        self._keys = keys
        self._timeout = timeout_seconds
        self._signers = [_SignerProcess(limits.max_bytes) for _ in range(processes)]
        self._idle: queue.SimpleQueue[_SignerProcess] = queue.SimpleQueue()
        for signer in self._signers:
            self._idle.put(signer)

    def start(self) -> None:
        """Start the processes now (each takes a moment to import) rather than at the first seal."""
        for signer in self._signers:
            signer.start()

    def close(self) -> None:
        for signer in self._signers:
            signer.stop()

    def seal(self, evidence: bytes | etree._Element) -> bytes:
        private_key, certificate = self._keys.sealing_key()
        if not isinstance(evidence, bytes):
            evidence = bytes(etree.tostring(evidence, encoding="UTF-8"))
        deadline = time.monotonic() + self._timeout
        try:
            signer = self._idle.get(timeout=self._timeout)
        except queue.Empty:
            raise SignerUnavailable(f"no signer process was free within {self._timeout:g} s") from None
        try:
            return signer.seal(evidence, private_key, certificate, deadline)
        except SealingError:
            raise  # the document's fault; the signer answered and is in step
        except BaseException:
            # Whatever broke off the call may have left a frame half-written or unanswered.
            signer.kill()
            raise
        finally:
            self._idle.put(signer)


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
