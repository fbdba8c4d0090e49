"""What the tests' child processes are doing, read from /proc (Linux): which processes a process
started, whether one lives, which signers a broker runs, and who listens on a port."""

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


def listens(pid: int, port: int) -> bool:
    """Whether ``pid`` or one of its children holds a TCP socket listening on ``port``.

    A server that answers on a port is not necessarily the one a test started: another test's
    server may have taken the port between ``free_port()`` and the bind, and the one started
    then exits with "address already in use" while the other answers in its place.
    """
    sockets = _listening_sockets(port)
    for owner in (pid, *children(pid)):
        try:
            descriptors = list(Path(f"/proc/{owner}/fd").iterdir())
        except OSError:
            continue  # gone meanwhile
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in sockets:
                    return True
            except OSError:
                continue  # closed meanwhile
    return False


# /proc/net/tcp{,6}: "sl local_address rem_address st ... inode"; the port in hex, LISTEN is 0A.
_LISTEN = "0A"


def _listening_sockets(port: int) -> set[str]:
    """The ``socket:[inode]`` links of the TCP sockets listening on ``port`` (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue  # no IPv6 here
        for line in lines:
            fields = line.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(f"socket:[{fields[9]}]")
    return found
