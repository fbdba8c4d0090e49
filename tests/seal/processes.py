"""The signer processes a process has started, found in /proc (Linux), for the tests that stop or kill them."""

from __future__ import annotations

import os
from pathlib import Path

from tests.faults import wait_for


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
    """The live ``broker.seal.signer`` children of ``parent``.

    A child whose ``exec`` is still under way shows no arguments yet: ``Popen`` returns once the
    new program has replaced the old, before the kernel has laid out its arguments (and
    environment). Under load that window is wide, so this waits until every child shows its own.
    """
    arguments: dict[int, list[bytes]] = {}

    def settled() -> bool:
        arguments.clear()
        arguments.update((pid, _arguments(pid)) for pid in children(parent))
        return all(arguments.values())

    wait_for(settled, 10, f"the children of {parent} to finish starting their programs")
    return [pid for pid, words in arguments.items() if b"broker.seal.signer" in words]


def _arguments(pid: int) -> list[bytes]:
    """The command line of ``pid``; empty while its ``exec`` is under way (or once it is gone)."""
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []  # gone meanwhile: no longer among the children either
    return command_line.split(b"\0") if command_line else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text()
    return state[state.rindex(")") + 2] != "Z"
