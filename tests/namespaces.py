"""Real commands run inside throw-away Linux namespaces, so tests never touch the host.

``NamespacedHost`` is this machine (files as usual) whose commands go through an argv
prefix: ``ip netns exec NAME`` (a fresh network namespace: its own, empty firewall) or
``unshare --mount`` with a private /run (sshd -T wants /run/sshd, which only a running
sshd service creates). The programs themselves are the real ones.
"""

from __future__ import annotations

import ctypes
import ipaddress
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Pair:
    """Two network namespaces joined by a veth pair: a "server" and an "attacker".

    Addresses exist only inside the namespaces: IPv4 in 10.x, IPv6 in a ULA /64.
    """

    server: str
    attacker: str
    server_v4: str
    attacker_v4: str
    server_v6: str
    attacker_v6: str


@contextmanager
def namespace_pair() -> Iterator[Pair]:
    """A server and an attacker namespace on one veth link, both deleted afterwards."""
    tag = uuid.uuid4().hex[:6]
    octet = int(tag[:2], 16) % 250 + 1
    pair = Pair(
        server=f"lg_srv_{tag}",
        attacker=f"lg_att_{tag}",
        server_v4=f"10.{octet}.0.1",
        attacker_v4=f"10.{octet}.0.2",
        server_v6=str(ipaddress.ip_address(f"fd00:{tag[:4]}::1")),  # canonical, as tools
        attacker_v6=str(ipaddress.ip_address(f"fd00:{tag[:4]}::2")),  # print addresses
    )
    for name in (pair.server, pair.attacker):
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(
            ["ip", "link", "add", f"v{tag}s", "netns", pair.server, "type", "veth",
             "peer", "name", f"v{tag}a", "netns", pair.attacker],
            check=True,
        )  # fmt: skip
        for name, link, v4, v6 in (
            (pair.server, f"v{tag}s", pair.server_v4, pair.server_v6),
            (pair.attacker, f"v{tag}a", pair.attacker_v4, pair.attacker_v6),
        ):
            in_namespace(name, "ip", "addr", "add", f"{v4}/24", "dev", link)
            in_namespace(name, "ip", "addr", "add", f"{v6}/64", "dev", link, "nodad")
            in_namespace(name, "ip", "link", "set", link, "up")
            in_namespace(name, "ip", "link", "set", "lo", "up")
        yield pair
    finally:
        for name in (pair.server, pair.attacker):
            subprocess.run(["ip", "netns", "delete", name], check=False)


_CLONE_NEWNET = 0x40000000


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Move the calling thread into a network namespace for the block, then back.

    Only the calling thread moves (setns(2) on a network namespace is per thread): the
    code under test, its in-process libnftables calls and the commands it starts run in the
    namespace, while the rest of the test process stays where it was.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net", "rb") as home, open(f"/run/netns/{name}", "rb") as ns:
        if libc.setns(ns.fileno(), _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name} failed")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test's namespace failed")


def can_connect(namespace: str, address: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connection from inside ``namespace`` to address:port completes."""
    script = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port}), timeout={timeout}).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", script],
        capture_output=True,
        timeout=timeout + 10,
    )
    return done.returncode == 0
