"""Real commands run inside throw-away Linux namespaces, so tests never touch the host.

``NamespacedHost`` is this machine (files as usual) whose commands go through an argv
prefix: ``ip netns exec NAME`` (a fresh network namespace: its own, empty firewall) or
``unshare --mount`` with a private /run (sshd -T wants /run/sshd, which only a running
sshd service creates). The programs themselves are the real ones.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from checks.hosts import DEFAULT_COMMAND_TIMEOUT, CommandResult, LocalHost

#: sshd -T in its own mount namespace, with an empty tmpfs on /run holding /run/sshd.
PRIVATE_RUN = (
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "/bin/sh",
    "-c",
    'mount -t tmpfs tmpfs /run && mkdir /run/sshd && exec "$@"',
    "sh",
)


class NamespacedHost(LocalHost):
    """The live local host, its commands run through ``prefix`` (a namespace wrapper)."""

    def __init__(self, prefix: Sequence[str]):
        super().__init__()
        self.prefix = tuple(prefix)

    def run(self, argv: Sequence[str], timeout: float = DEFAULT_COMMAND_TIMEOUT) -> CommandResult:
        program = argv[0] if "/" in argv[0] else self.which(argv[0]) or argv[0]
        done = super().run([*self.prefix, program, *argv[1:]], timeout)
        return CommandResult(tuple(argv), done.exit_code, done.stdout, done.stderr)


@contextmanager
def network_namespace() -> Iterator[str]:
    """A fresh network namespace (no interfaces up, no firewall rules), deleted afterwards."""
    name = f"lappguard_test_{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def in_namespace(name: str, *argv: str, stdin: str | None = None) -> str:
    """Run a command inside the namespace (test setup); its stdout."""
    done = subprocess.run(
        ["ip", "netns", "exec", name, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout
