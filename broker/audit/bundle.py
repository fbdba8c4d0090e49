"""The audit export bundle: writing one, and verifying one offline.

A bundle is a directory, or the same files in a ``.zip`` or ``.tar`` (``.tar.gz``, ``.tgz``,
``.tar.xz``) archive::

    README.txt                 this layout, for the auditor
    bundle.json                format, origin, tree size, export time (informative only)
    entries.jsonl              line i (0-based) is entry i exactly as hashed: its RFC 8785
                               canonical JSON, which never contains a raw newline
    leaf-hashes.bin            the broker's stored leaf hashes, 32 bytes each, in index order
    checkpoints.jsonl          every signed checkpoint, by size: {"tree_size": N, "note": "…"}
    latest-checkpoint.txt      the latest signed checkpoint note; keep it to check the next export
    verifier-keys.txt          the broker's checkpoint keys (C2SP vkey strings), one per line
    consistency-proofs.jsonl   {"old_size", "tree_size", "hashes": [base64]} for each pair of
                               consecutive checkpoints

Verification trusts nothing in the bundle except what the signatures vouch for: the tree is
rebuilt from ``entries.jsonl`` and must reproduce every signed root, the proofs must verify, and
``leaf-hashes.bin`` only helps to name an alteration. The keys should come from the auditor
(``--key``, e.g. from ``/.well-known/broker-keys`` or ``GET /v1/audit/checkpoint`` history);
keys read from the bundle itself only mean something together with a checkpoint saved earlier,
which must verify with them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from broker.audit.merkle import HASH_SIZE, ProofError
from broker.audit.note import NoteError, Verifier
from broker.audit.verify import (
    CheckpointCandidate,
    EntryScan,
    LeafTree,
    Report,
    prove_inclusion,
    verify_log,
)

FORMAT = "once-only-audit-bundle/1"
ENTRIES = "entries.jsonl"
LEAVES = "leaf-hashes.bin"
CHECKPOINTS = "checkpoints.jsonl"
LATEST = "latest-checkpoint.txt"
KEYS = "verifier-keys.txt"
PROOFS = "consistency-proofs.jsonl"
MANIFEST = "bundle.json"
README = "README.txt"

_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar")


class BundleError(Exception):
    """The bundle cannot be written or read (as opposed to: it reads fine but fails verification)."""


def _archive_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".zip"):
        return ".zip"
    for suffix in _TAR_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


# --- writing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    tree_size: int
    checkpoints: int
    keys: int


def write_bundle(
    out: Path,
    *,
    origin: str,
    entries: Iterator[bytes],
    leaves: Sequence[bytes],
    checkpoints: Sequence[tuple[int, str]],
    vkeys: Sequence[str],
    exported_at: datetime,
) -> ExportSummary:
    """Write a bundle of the log up to its latest checkpoint (``leaves`` has that many hashes).

    Files are written to a temporary location and moved into place at the end, so an interrupted
    export never leaves something that looks like a complete bundle.
    """
    kind = _archive_kind(out)
    if out.exists():
        raise BundleError(f"{out} exists already; choose a new name")
    out.parent.mkdir(parents=True, exist_ok=True)
    tree_size = len(leaves)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
    try:
        written = 0
        with open(staging / ENTRIES, "wb") as handle:
            for body in entries:
                if b"\n" in body:
                    raise BundleError(f"entry {written} contains a newline and is not canonical JSON")
                handle.write(body + b"\n")
                written += 1
        # The entries are exported as they are; verify-bundle reports any mismatch with the tree.
        (staging / LEAVES).write_bytes(b"".join(leaves))
        with open(staging / CHECKPOINTS, "w", encoding="utf-8") as handle:
            for size, note in checkpoints:
                handle.write(json.dumps({"tree_size": size, "note": note}, ensure_ascii=False) + "\n")
        if checkpoints:
            (staging / LATEST).write_text(checkpoints[-1][1], encoding="utf-8")
        (staging / KEYS).write_text("".join(f"{vkey}\n" for vkey in vkeys), encoding="utf-8")
        tree = LeafTree(leaves)
        sizes = [size for size, _note in checkpoints if 0 < size <= tree_size]
        with open(staging / PROOFS, "w", encoding="utf-8") as handle:
            for old, new in zip(sizes, sizes[1:], strict=False):
                hashes = [base64.b64encode(h).decode("ascii") for h in tree.consistency_proof(old, new)]
                handle.write(json.dumps({"old_size": old, "tree_size": new, "hashes": hashes}) + "\n")
        manifest = {
            "format": FORMAT,
            "origin": origin,
            "tree_size": tree_size,
            "entries": written,
            "checkpoints": len(checkpoints),
            "exported_at": exported_at.isoformat(),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (staging / README).write_text(__doc__ or "", encoding="utf-8")
        _publish(staging, out, kind)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportSummary(out, tree_size, len(checkpoints), len(vkeys))


def _tar_writer(path: Path, kind: str) -> tarfile.TarFile:
    if kind in (".tar.gz", ".tgz"):
        return tarfile.open(path, "w:gz")
    if kind == ".tar.xz":
        return tarfile.open(path, "w:xz")
    return tarfile.open(path, "w")


def _publish(staging: Path, out: Path, kind: str | None) -> None:
    names = sorted(p.name for p in staging.iterdir())
    if kind is None:
        os.rename(staging, out)
        return
    partial = out.with_name(f".{out.name}.partial")
    if kind == ".zip":
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for name in names:
                archive.write(staging / name, name)
    else:
        with _tar_writer(partial, kind) as tar:
            for name in names:
                tar.add(staging / name, arcname=name, recursive=False)
    os.replace(partial, out)


# --- reading ---------------------------------------------------------------------------------------


class _Reader:
    """Reads named members of a bundle; never extracts anything to disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stack = ExitStack()
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        if path.is_dir():
            return
        if not path.is_file():
            raise BundleError(f"{path}: no such bundle")
        try:
            if zipfile.is_zipfile(path):
                self._zip = self._stack.enter_context(zipfile.ZipFile(path))
            else:
                self._tar = self._stack.enter_context(tarfile.open(path, "r:*"))  # noqa: SIM115 (the stack closes it)
        except (OSError, zipfile.BadZipFile, tarfile.TarError) as error:
            raise BundleError(f"{path}: not a bundle directory, zip or tar archive ({error})") from error

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stack.close()

    def _member(self, name: str, stack: ExitStack) -> IO[bytes] | None:
        if self._zip is not None:
            try:
                return stack.enter_context(self._zip.open(name))
            except KeyError:
                return None
        if self._tar is not None:
            try:
                member = self._tar.getmember(name)
            except KeyError:
                return None
            handle = self._tar.extractfile(member) if member.isfile() else None
            return stack.enter_context(handle) if handle is not None else None
        file = self.path / name
        return stack.enter_context(open(file, "rb")) if file.is_file() else None

    @contextmanager
    def open(self, name: str, required: bool = True) -> Iterator[IO[bytes] | None]:
        with ExitStack() as stack:
            handle = self._member(name, stack)
            if handle is None and required:
                raise BundleError(f"{self.path}: the bundle has no {name}")
            yield handle

    def read(self, name: str, required: bool = True) -> bytes | None:
        with self.open(name, required) as handle:
            return handle.read() if handle is not None else None

    def lines(self, name: str) -> Iterator[bytes]:
        with self.open(name) as handle:
            assert handle is not None
            yield from handle


def _json_lines(reader: _Reader, name: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(reader.lines(name), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise BundleError(f"{name} line {number} is not JSON: {error}") from error
        if not isinstance(value, dict):
            raise BundleError(f"{name} line {number} is not a JSON object")
        yield value


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise BundleError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BundleError(f"{what} is not valid base64") from error


@dataclass(frozen=True)
class ExchangeInclusion:
    index: int
    event: str
    tree_size: int
    proof_length: int
    error: str | None = None


@dataclass
class BundleVerification:
    report: Report
    keys_from_bundle: bool
    exchanges: dict[str, list[ExchangeInclusion]] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        proven = all(found and all(i.error is None for i in found) for found in self.exchanges.values())
        return self.report.intact and proven


def read_verifiers(vkeys: Sequence[str]) -> list[Verifier]:
    """Verifier keys from strings; one string may hold several, whitespace-separated (as /v1/audit/keys lists them)."""
    verifiers = []
    for vkey in (key for text in vkeys for key in text.split()):
        try:
            verifiers.append(Verifier.from_vkey(vkey))
        except NoteError as error:
            raise BundleError(f"verifier key {vkey[:60]!r}: {error}") from error
    return verifiers


def verify_bundle(
    path: Path,
    *,
    vkeys: Sequence[str] = (),
    trusted: Sequence[str] = (),
    exchanges: Sequence[str] = (),
) -> BundleVerification:
    """Verify a bundle offline (see the module docstring); prove inclusion of the given exchanges."""
    with _Reader(path) as reader:
        manifest_raw = reader.read(MANIFEST, required=False)
        manifest: dict[str, Any] = json.loads(manifest_raw) if manifest_raw else {}
        origin = manifest.get("origin") if isinstance(manifest.get("origin"), str) else None
        keys_from_bundle = not vkeys
        if keys_from_bundle:
            vkeys = [line.decode("utf-8", "replace") for line in reader.lines(KEYS) if line.strip()]
        verifiers = read_verifiers(vkeys)
        if not verifiers:
            raise BundleError("no verifier keys: pass --key or include verifier-keys.txt")

        candidates: list[CheckpointCandidate] = []
        for number, item in enumerate(_json_lines(reader, CHECKPOINTS), 1):
            note, size = item.get("note"), item.get("tree_size")
            if not isinstance(note, str) or not isinstance(size, int):
                raise BundleError(f"{CHECKPOINTS} line {number} needs a tree_size and a note")
            candidates.append((size, None, note))

        proofs: dict[tuple[int, int], list[bytes]] = {}
        for number, item in enumerate(_json_lines(reader, PROOFS), 1):
            old, new, hashes = item.get("old_size"), item.get("tree_size"), item.get("hashes")
            if not isinstance(old, int) or not isinstance(new, int) or not isinstance(hashes, list):
                raise BundleError(f"{PROOFS} line {number} is not a consistency proof")
            proofs[(old, new)] = [_b64(h, f"{PROOFS} line {number}") for h in hashes]

        wanted: dict[str, list[tuple[int, str]]] = {exchange: [] for exchange in exchanges}
        markers = {exchange: json.dumps(exchange).encode() for exchange in exchanges}
        scan = EntryScan()
        for index, line in enumerate(reader.lines(ENTRIES)):
            body = line[:-1] if line.endswith(b"\n") else line
            scan.add(body)
            for exchange, marker in markers.items():
                # Cheap test first: parsing a million entries would dominate the run time.
                if marker in body:
                    _note_exchange(body, index, exchange, wanted)

        leaves_raw = reader.read(LEAVES, required=False)

    def reference() -> list[bytes]:
        if not leaves_raw or len(leaves_raw) % HASH_SIZE:
            return []
        return [leaves_raw[i : i + HASH_SIZE] for i in range(0, len(leaves_raw), HASH_SIZE)]

    report = verify_log(
        candidates,
        scan,
        verifiers,
        origin=origin,
        reference=reference,
        proofs=proofs,
        trusted=trusted,
    )
    result = BundleVerification(report, keys_from_bundle)
    for exchange, indices in wanted.items():
        result.exchanges[exchange] = [_prove(report, index, event) for index, event in indices]
    return result


def _note_exchange(body: bytes, index: int, exchange: str, wanted: dict[str, list[tuple[int, str]]]) -> None:
    try:
        entry = json.loads(body)
    except ValueError:
        return
    if isinstance(entry, dict) and entry.get("exchange") == exchange:
        wanted[exchange].append((index, str(entry.get("event"))))


def _prove(report: Report, index: int, event: str) -> ExchangeInclusion:
    latest, tree = report.latest, report.tree
    if latest is None or tree is None:
        return ExchangeInclusion(index, event, 0, 0, "the bundle has no valid signed checkpoint")
    if index >= latest.size:
        return ExchangeInclusion(index, event, latest.size, 0, "the entry is in no signed checkpoint")
    try:
        proof = prove_inclusion(tree, latest, index)
    except (ProofError, KeyError) as error:
        return ExchangeInclusion(index, event, latest.size, 0, f"inclusion does not verify: {error}")
    return ExchangeInclusion(index, event, latest.size, len(proof))
