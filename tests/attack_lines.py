"""sshd failed-login lines written to a watched auth.log, as an attacked server logs them.

Shared by the flood test and bench/latency.py, so both tools in the bench and the test see
the same lines written the same way. Attackers are numbered addresses of 100.64.0.0/10
(shared address space: never this host's, never the Internet's), so a million distinct
attackers is a range of numbers, and their lines are cheap to make.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

#: Attackers available: every address of 100.64.0.0/10.
MAX_ATTACKERS = 1 << 22


def attacker(number: int) -> str:
    """The ``number``-th address of 100.64.0.0/10 (0 is 100.64.0.0)."""
    if not 0 <= number < MAX_ATTACKERS:
        raise ValueError(f"attacker {number} is outside 100.64.0.0/10")
    return f"100.{64 + (number >> 16)}.{(number >> 8) & 255}.{number & 255}"


def syslog_stamp(when: float | None = None) -> str:
    """``Dec  3 14:51:31``: rsyslog's traditional format, local time (what both tools parse)."""
    return time.strftime("%b %e %H:%M:%S", time.localtime(when))


def failed_login(ip: str, n: int = 0, stamp: str | None = None) -> str:
    """One ``Failed password`` line of Debian's OpenSSH from ``ip``; ``n`` varies the pid,
    user and port as separate connections would."""
    return (
        f"{stamp or syslog_stamp()} web01 sshd[{1000 + n % 30000}]: Failed password for invalid"
        f" user admin{n % 1000} from {ip} port {1024 + n % 60000} ssh2\n"
    )


def flood_lines(first: int, count: int) -> list[str]:
    """One failed login from each of ``count`` distinct attackers, numbered from ``first``."""
    stamp = syslog_stamp()
    return [failed_login(attacker(n), n, stamp) for n in range(first, first + count)]


class AttackLog:
    """A log opened for appending; each ``write`` is one ``write(2)`` of whole lines (as a
    syslog daemon appends), so a follower never sees a line half written."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self.written = 0  # bytes

    def write(self, lines: Iterable[str]) -> None:
        data = memoryview("".join(lines).encode())
        while data:
            done = os.write(self.fd, data)
            data = data[done:]
            self.written += done

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> AttackLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
