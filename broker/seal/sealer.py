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
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from broker.keys.store import KeyStore
from broker.logging import get_logger
from broker.problems import Unavailable
from broker.seal import signer as protocol
from broker.seal.xades import SealingError, SealingPrivateKey, seal_evidence
from broker.xml.hardened import XmlLimits

log = get_logger(__name__)

# The broker's checkout or installation: where a signer process imports ``broker`` from.
_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])


class SignerUnavailable(Unavailable):
    """No signer process could seal: it died, could not start, or did not answer in time. The
    environment's failure, not the document's."""

    reason = "seal.unavailable"
    # As with storage: the request's transaction rolled back, nothing was acknowledged, and a
    # failed signer process is started afresh for the next seal.
    answer = "The broker could not seal the evidence; the request was not carried out. Try again later."


class KeySealer:
    """Seals in the calling thread with the key store's current sealing key."""

    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    def seal(self, evidence: bytes | etree._Element) -> bytes:
        private_key, certificate = self._keys.sealing_key()
        return seal_evidence(evidence, private_key, certificate)

    def readiness(self) -> str:
        # Nothing beside the key can fail here, and /readyz checks the key on its own.
        return READY


# A sealer's readiness (/readyz's "seal" check): it seals now.
READY = "ok"
# How long the latest seal's outcome (an exchange's or a probe's) stands for the signers' readiness.
TRUSTED_SECONDS = 2.0
# How long a readiness call waits for another's probe: a sealing signer answers one in milliseconds.
PROBE_WAIT_SECONDS = 1.0
# What a readiness probe seals: a document of no one, never stored or answered.
_PROBE = b'<readiness-probe xmlns="urn:x-once-only:readiness-probe"/>'

# How much larger than the checked document the signer lets it be: a parsed document is sent
# re-encoded as UTF-8 (a Latin-1 character takes two bytes, any character at most four), and the
# sealed answer adds the signature.
_GROWTH = 4
_SIGNATURE_ROOM = 1024 * 1024
# The signer's command: the interpreter of this process, without the working directory on the
# import path (-P); ``broker`` is imported from where this module was.
SIGNER_COMMAND = (sys.executable, "-P", "-m", "broker.seal.signer")


class _SignerProcess:
    """One signer process and the pipes to it; used by one thread at a time (the pool sees to it)."""

    def __init__(self, command: Sequence[str], max_bytes: int) -> None:
        self._command = [*command, "--max-bytes", str(max_bytes * _GROWTH)]
        self._max_answer = max_bytes * _GROWTH + _SIGNATURE_ROOM
        self._process: subprocess.Popen[bytes] | None = None
        # The certificate whose key the signer holds. The key store hands out the same objects
        # until its keys change, so identity tells whether the signer needs the key sent anew.
        self._certificate: x509.Certificate | None = None

    def start(self) -> None:
        """Start the process unless it runs (again, if it has died since)."""
        if self._process is not None and self._process.poll() is None:
            return
        self.stop()
        # None of the broker's settings (a database password, the OIDC client secret): a signer
        # needs none of them.
        env = {name: value for name, value in os.environ.items() if not name.startswith("BROKER_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (_IMPORT_ROOT, os.environ.get("PYTHONPATH"))))
        try:
            self._process = subprocess.Popen(
                self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env
            )
        except OSError as error:  # no process to be had (EAGAIN, ENOMEM, EMFILE): the environment's
            raise SignerUnavailable(f"a signer process could not start: {error}") from error
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
        self.signal_kill()
        self.stop()

    def signal_kill(self) -> None:
        """SIGKILL only, leaving the pipes to the thread that uses them (it then fails and stops it)."""
        process = self._process
        if process is not None:
            process.kill()

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
        answers = process.stdout.fileno()

        def read(size: int) -> bytes:
            self._wait(answers, select.POLLIN, deadline)
            return os.read(answers, size)

        try:
            self._write(process.stdin.fileno(), request, deadline)
            self._certificate = certificate
            status = protocol.read_exactly(read, 1)
            if status not in (protocol.SEALED, protocol.REFUSED):
                raise SignerUnavailable(f"the signer process answered an unknown status {status!r}")
            length = protocol.read_length(read)
            if length > self._max_answer:
                raise SignerUnavailable(f"the signer process announced an answer of {length} bytes")
            payload = protocol.read_exactly(read, length)
        except (OSError, ValueError) as error:
            raise SignerUnavailable(f"the signer process failed: {error}") from error
        if status == protocol.REFUSED:
            raise SealingError(payload.decode("utf-8", "replace"))
        return payload

    # Every wait on the pipes is bounded by the deadline: a signer that hangs, even half-way
    # through a frame or on a pipe it no longer empties, must not hang its caller.

    @classmethod
    def _write(cls, fd: int, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            cls._wait(fd, select.POLLOUT, deadline)
            # At most PIPE_BUF bytes once the pipe is writable: a write that cannot block.
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

    A call waits for a free signer, then gives it ``timeout_seconds`` for the seal; a signer that
    dies, answers nonsense or takes longer is killed, the call fails with
    :class:`SignerUnavailable`, and the next call starts that signer afresh. A document the signer
    refuses raises :class:`~broker.seal.xades.SealingError`, as :class:`KeySealer` does. After
    :meth:`close`, every call fails with :class:`SignerUnavailable`. :meth:`readiness` tells
    whether the signers seal, for /readyz.
    """

    def __init__(
        self,
        keys: KeyStore,
        processes: int,
        limits: XmlLimits,
        timeout_seconds: float,
        command: Sequence[str] = SIGNER_COMMAND,
        on_failure: Callable[[], None] = lambda: None,
        trust_seconds: float = TRUSTED_SECONDS,
    ) -> None:
        if processes < 1:
            raise ValueError("a ProcessSealer needs at least one process")
        self._keys = keys
        self._timeout = timeout_seconds
        # Told of each seal a signer failed (not of documents refused, nor of seals after close()).
        self._on_failure = on_failure
        self._signers = [_SignerProcess(command, limits.max_bytes) for _ in range(processes)]
        # A signer is used only by the thread that took it from here, and only that thread
        # closes its pipes (or close(), once it holds it): a pipe's number is never reused under a call.
        self._idle: queue.SimpleQueue[_SignerProcess] = queue.SimpleQueue()
        for signer in self._signers:
            self._idle.put(signer)
        self._closed = False
        # The latest seal's outcome and when (monotonic), None before the first: readiness()
        # believes a recent one and proves anything older with a probe seal of its own.
        self._latest: tuple[bool, float] | None = None
        self._trust_seconds = trust_seconds
        self._probing = threading.Lock()

    def start(self) -> None:
        """Start the processes now (each takes a moment to import) rather than at the first seal."""
        for signer in self._signers:
            signer.start()

    def close(self) -> None:
        """Stop the signers: each once its call (if any) has ended, or killed after the timeout."""
        self._closed = True
        stopped = 0
        with contextlib.suppress(queue.Empty):
            while stopped < len(self._signers):
                self._idle.get(timeout=self._timeout).stop()
                stopped += 1
        if stopped < len(self._signers):
            # Still busy after the timeout: their callers fail, and stop them when they do.
            for signer in self._signers:
                signer.signal_kill()

    def seal(self, evidence: bytes | etree._Element) -> bytes:
        private_key, certificate = self._keys.sealing_key()
        if not isinstance(evidence, bytes):
            evidence = bytes(etree.tostring(evidence, encoding="UTF-8"))
        if self._closed:
            raise SignerUnavailable("the signer processes are stopping")
        try:
            signer = self._idle.get(timeout=self._timeout)
        except queue.Empty:
            if self._closed:  # close() took the signers meanwhile: not a signer's failure
                raise SignerUnavailable("the signer processes are stopping") from None
            self._failed()
            raise SignerUnavailable(f"no signer process was free within {self._timeout:g} s") from None
        try:
            if self._closed:
                raise SignerUnavailable("the signer processes are stopping")
            # The seal's own time starts now: a wait for a free signer does not shorten it.
            sealed = signer.seal(evidence, private_key, certificate, time.monotonic() + self._timeout)
        except SealingError:
            raise  # the document's fault; the signer answered and is in step
        except BaseException as error:
            # Whatever broke off the call may have left a frame half-written or unanswered.
            signer.kill()
            if isinstance(error, SignerUnavailable) and not self._closed:
                self._failed()
            raise
        finally:
            self._idle.put(signer)
        self._latest = (True, time.monotonic())
        return sealed

    def _failed(self) -> None:
        self._latest = (False, time.monotonic())
        self._on_failure()

    def readiness(self) -> str:
        """What the latest seal said, while it is younger than ``trust_seconds``: ``ok`` if it
        succeeded, ``unavailable`` if it failed. Otherwise a probe document is sealed now, bounded as
        any seal: ``ok`` if that works, else ``unavailable``. A call that finds another's probe under
        way waits for it up to ``PROBE_WAIT_SECONDS`` and answers its outcome; a probe that takes
        longer means the signers do not seal now: ``unavailable`` (``starting`` before the first
        seal). ``stopped`` after :meth:`close`.

        Under load the exchanges' own seals answer, and no probe competes with them for a signer;
        however often /readyz is asked, at most one probe runs per ``trust_seconds``, whatever it
        met (a probe that meets a broken signer starts a new process). A failed seal does not make
        the process unready for good: a process taken out of service gets no exchange that could
        prove the signers sealing again, so the probe does.
        """
        if self._closed:
            return "stopped"
        if (state := self._recent()) is not None:
            return state
        if not self._probing.acquire(timeout=PROBE_WAIT_SECONDS):
            return "starting" if self._latest is None else "unavailable"
        try:
            if (state := self._recent()) is not None:  # the probe it waited for, or an exchange's seal
                return state
            self.seal(_PROBE)
        except Exception as error:  # noqa: BLE001 - whatever stops the probe (the key too: /readyz's keys check names it)
            # Recorded whatever it was (a refusal, the key store's error), so that the next probe
            # waits its turn too.
            self._latest = (False, time.monotonic())
            log.warning("seal_probe_failed", error_type=type(error).__name__)
            return "stopped" if self._closed else "unavailable"
        finally:
            self._probing.release()
        return "stopped" if self._closed else READY

    def _recent(self) -> str | None:
        """The latest seal's outcome as a readiness state, if it is younger than ``trust_seconds``."""
        latest = self._latest
        if latest is None or time.monotonic() - latest[1] >= self._trust_seconds:
            return None
        return READY if latest[0] else "unavailable"


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

    def readiness(self) -> str:
        return READY
