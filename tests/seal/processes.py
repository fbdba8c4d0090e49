"""The signer processes a process has started, found in /proc (Linux), for the tests that stop or kill them."""

from __future__ import annotations

import os
from pathlib import Path


def children(parent: int) -> list[int]:
    """The live child processes of ``parent``, whatever they run."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            # Field 3 is the state (Z: exited, not yet reaped), field 4 the parent's pid.
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == parent and fields[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def signer_pids(parent: int) -> list[int]:
    """The live ``broker.seal.signer`` children of ``parent``."""
    return [pid for pid in children(parent) if b"broker.seal.signer" in _arguments(pid)]


def _arguments(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []  # gone meanwhile


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text()
    return state[state.rindex(")") + 2] != "Z"
