"""Listening sockets and processes from the text of ``ss`` and ``ps``, for hosts where psutil
cannot run (it reads this machine's /proc only).

The facts are shaped exactly as ``LocalHost`` gives them from psutil, so a check judges a
remote host as it would judge the same host locally: one socket entry per process holding
it, addresses as psutil prints them, process names extended past the kernel's 15
characters the way psutil does, kernel threads without a command line.
"""

from __future__ import annotations

import re

from checks.hosts import HostError, ListeningSocket, PlannedCommand, ProcessInfo

#: Listening TCP and unbound UDP sockets, numeric, with owners (-p) and uids (-e).
SS_ARGV = ("ss", "-H", "-l", "-t", "-u", "-n", "-p", "-e")

#: Fixed-width columns, because a process name (comm) may contain spaces; args last.
_PS_COLUMNS = (("pid", 12), ("ruid", 12), ("ruser", 64), ("comm", 64))
PS_ARGV = ("ps", "-e", "-ww", "-o", ",".join(f"{n}:{w}=" for n, w in _PS_COLUMNS) + ",args=")
#: What ``listening_sockets()`` and ``processes()`` run on a remote host (``CheckType.commands``).
SOCKETS_COMMAND = PlannedCommand(SS_ARGV)
PROCESSES_COMMAND = PlannedCommand(PS_ARGV)

#: The kernel keeps 15 characters of a process name; psutil completes longer ones.
_COMM_LENGTH = 15
_OWNER = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=\d+\)')
_UID = re.compile(r"(?:^|\s)uid:(\d+)(?:\s|$)")


def parse_ss(text: str) -> list[ListeningSocket]:
    """``ss -Hltunpe`` -> a socket per owning process (or one entry without an owner).

    Owners are left out by ss where the auditing user may not see them, as by psutil.
    ``ss -e`` prints no uid for root's sockets.
    """
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 6 or fields[0] not in ("tcp", "udp"):
            raise HostError(f"ss output line {number} is not a socket: {line[:120]!r}")
        address, port = _split_endpoint(fields[4], number)
        rest = " ".join(fields[6:])
        uid_match = _UID.search(rest)
        uid = int(uid_match.group(1)) if uid_match else 0
        owners = [(name, int(pid)) for name, pid in _OWNER.findall(rest)] or [(None, None)]
        for name, pid in dict.fromkeys(owners):
            found.append(ListeningSocket(fields[0], address, port, pid, name, uid))
    return found


def _split_endpoint(text: str, number: int) -> tuple[str, int]:
    """``0.0.0.0:22``, ``[::1]:631``, ``*:80``, ``127.0.0.53%lo:53`` -> address, port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise HostError(f"ss output line {number}: {text!r} is not address:port")
    host = host.removeprefix("[").removesuffix("]").split("%", 1)[0]
    # ss writes "*" for a dual-stack IPv6 wildcard socket, psutil its address "::"
    return ("::" if host == "*" else host), int(port)


def parse_ps(text: str) -> list[tuple[ProcessInfo, int]]:
    """``PS_ARGV`` output -> (process, real uid), names and command lines as psutil has them."""
    found = []
    offsets = []
    start = 0
    for _, width in _PS_COLUMNS:
        offsets.append((start, start + width))
        start += width + 1
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        pid_text, uid_text, user, comm = (line[a:b].strip() for a, b in offsets)
        args = line[start:]
        if not (pid_text.isdigit() and uid_text.isdigit()):
            raise HostError(f"ps output line {number} is not a process: {line[:120]!r}")
        # ps shows a process without a command line (kernel thread, zombie) as [name]
        cmdline = () if args.startswith(f"[{comm}]") else tuple(args.split(" "))
        name = comm
        if len(comm) >= _COMM_LENGTH and cmdline:
            full = cmdline[0].rsplit("/", 1)[-1]
            name = full if full.startswith(comm) else comm
        found.append((ProcessInfo(int(pid_text), name, cmdline, user), int(uid_text)))
    return found


def names_by_uid(processes: list[tuple[ProcessInfo, int]]) -> dict[int, tuple[str, ...]]:
    """uid -> the names of the processes that user runs (what tells a hidden socket's owner)."""
    seen: dict[int, set[str]] = {}
    for process, uid in processes:
        seen.setdefault(uid, set()).add(process.name)
    return {uid: tuple(sorted(names)) for uid, names in seen.items()}
