"""Writing key files so that no other user, no crash and no concurrent process sees half a key.

Files are written to a temporary name (mode 0600 from the start) and fsynced, then published
with ``os.link`` (fails if the target exists, so of two processes creating a file at once the
first one wins and the other loads the winner's) or ``os.replace``; the directory is fsynced
after either so the new name survives a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


def ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask, and a pre-existing directory keeps its mode.
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        os.chmod(path, 0o700)


def create_exclusive(path: Path, data: bytes) -> bool:
    """Publish ``data`` at ``path`` complete or not at all; False if someone else got there first."""
    tmp = _write_temp(path.parent, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(path.parent)
    return True


def replace_atomically(path: Path, data: bytes) -> None:
    tmp = _write_temp(path.parent, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An ``flock`` on ``path`` (created if missing), serialising writers across processes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class LazyPrivateFile(Generic[T]):
    """A file in a private directory that is created on first use and then loaded once.

    ``make`` gives the content of a new file; ``load`` reads the file (whoever created it) into
    the value handed out from then on. Safe to share between threads and processes.
    """

    def __init__(self, path: Path, make: Callable[[], bytes], load: Callable[[Path], T]) -> None:
        self.path = path
        self._make = make
        self._load = load
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                ensure_private_dir(self.path.parent)
                if not self.path.exists():
                    create_exclusive(self.path, self._make())
                self._value = self._load(self.path)
            return self._value


def _write_temp(directory: Path, data: bytes) -> Path:
    tmp = directory / f".tmp-{os.getpid()}-{secrets.token_hex(8)}"
    # O_EXCL with mode 0600 so the secret is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def fsync_path(path: Path) -> None:
    """fsync a file, or a directory (so that a name just published in it survives a crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
