"""Importing a schema set from a directory or zip file into a catalogue directory.

A schema set arrives as untrusted as any download, so its names and sizes are checked before
anything is written, and it is staged in a hidden directory (which the catalogue ignores) until
it compiles: a live catalogue directory never holds a half-imported or broken set.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from broker.xml.catalogue._catalogue import SchemaCatalogue, SchemaEntry
from broker.xml.catalogue._index import MAX_SCHEMA_FILES, SCHEMA_FILE_LIMITS, CatalogueError, xsd_files

MAX_IMPORT_BYTES = 256 * 1024 * 1024


def import_schemas(
    src: Path, dest_dir: Path, *, context_dirs: Sequence[Path] = (), name: str | None = None
) -> list[SchemaEntry]:
    """Copy the ``.xsd`` files of a directory or zip into ``dest_dir/<name>`` after checking
    that they compile together with ``context_dirs``; return their catalogue entries.

    Only ``.xsd`` files are taken; symlinks, absolute or ``..`` names, oversized files and
    oversized sets are refused, and nothing lands in ``dest_dir`` unless the set compiles.
    """
    src = Path(src)
    target = Path(dest_dir) / (name or src.stem)
    if target.exists():
        raise CatalogueError(f"{target} already exists; remove it to import again")
    files = _read_zip(src) if src.is_file() else _read_dir(src)
    if not files:
        raise CatalogueError(f"{src}: no .xsd files found")
    Path(dest_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=dest_dir))
    try:
        for relative, content in files.items():
            path = staging.joinpath(*relative.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        root = staging.resolve()
        catalogue = SchemaCatalogue([staging, *context_dirs])
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [
        SchemaEntry(
            e.namespace,
            e.root_elements,
            target.resolve() / e.file.relative_to(root),
            e.declared_version,
            e.uses_xsd11,
            e.engine,
        )
        for e in catalogue.entries()
        if e.file.is_relative_to(root)
    ]


def _read_dir(src: Path) -> dict[str, bytes]:
    if not src.is_dir():
        raise CatalogueError(f"{src}: neither a directory nor a zip file")
    result: dict[str, bytes] = {}
    total = 0
    for path in xsd_files(src):
        if path.is_symlink():  # os.walk does not enter linked directories; linked files are refused
            raise CatalogueError(f"{path}: symbolic links are not imported")
        size = path.stat().st_size
        total += size
        _check_sizes(path.name, size, total, len(result) + 1)
        result[path.relative_to(src).as_posix()] = path.read_bytes()
    return result


def _read_zip(src: Path) -> dict[str, bytes]:
    if not zipfile.is_zipfile(src):
        raise CatalogueError(f"{src}: neither a directory nor a zip file")
    result: dict[str, bytes] = {}
    total = 0
    try:
        with zipfile.ZipFile(src) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.lower().endswith(".xsd"):
                    continue
                relative = _safe_member_name(info)
                if relative is None:
                    continue
                _check_sizes(info.filename, info.file_size, total + info.file_size, len(result) + 1)
                with archive.open(info) as member:
                    # Never trust the declared size: read at most one byte past the limit.
                    content = member.read(SCHEMA_FILE_LIMITS.max_bytes + 1)
                total += len(content)
                _check_sizes(info.filename, len(content), total, len(result) + 1)
                result[relative] = content
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise CatalogueError(f"{src}: unreadable zip file: {exc}") from None
    return result


def _safe_member_name(info: zipfile.ZipInfo) -> str | None:
    """The member's relative path, or CatalogueError for names that could escape the target."""
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if (
        name.startswith(("/", "\\"))
        or "\\" in name
        or (len(name) > 1 and name[1] == ":")
        or ".." in parts
        or "\x00" in name
    ):
        raise CatalogueError(f"zip member {name!r} has an unsafe path")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise CatalogueError(f"zip member {name!r} is a symbolic link")
    parts = [p for p in parts if p not in ("", ".")]
    if any(p.startswith(".") for p in parts):
        return None  # hidden files would be invisible to the catalogue anyway
    return "/".join(parts)


def _check_sizes(name: str, size: int, total: int, count: int) -> None:
    if size > SCHEMA_FILE_LIMITS.max_bytes:
        raise CatalogueError(f"{name}: larger than {SCHEMA_FILE_LIMITS.max_bytes} bytes")
    if total > MAX_IMPORT_BYTES:
        raise CatalogueError(f"schema set larger than {MAX_IMPORT_BYTES} bytes")
    if count > MAX_SCHEMA_FILES:
        raise CatalogueError(f"more than {MAX_SCHEMA_FILES} schema files")
