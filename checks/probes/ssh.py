"""Which authentication methods an SSH server offers, asked the way a client learns them.

We complete the key exchange with paramiko and ask for the ``none`` method as a user that
does not exist; the server's refusal lists the methods it would accept (RFC 4252 5.2). No
password or key is ever sent, and the host key is neither checked nor stored anywhere: this
is a probe, not a login, so no known_hosts file is read or written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from checks.probes.wire import DEFAULT_TIMEOUT, ProbeError, Target, connect

if TYPE_CHECKING:
    import paramiko

PROBE_USER = "lappguard-probe"

# paramiko logs a traceback for every server that hangs up or is not SSH; the probe already
# reports that as a ProbeError, so its transport logs go to a channel of ours that stays quiet.
_LOG_CHANNEL = f"{__name__}.paramiko"
logging.getLogger(_LOG_CHANNEL).addHandler(logging.NullHandler())
logging.getLogger(_LOG_CHANNEL).propagate = False


@dataclass(frozen=True)
class SSHAuthProbe:
    target: Target
    banner: str  # the server's identification string, e.g. SSH-2.0-OpenSSH_9.2p1 Debian-2
    #: Methods offered, in the server's order; ("none",) when it let us in with no credentials.
    methods: tuple[str, ...]

    @property
    def accepts_none(self) -> bool:
        return self.methods == ("none",)


@contextmanager
def probe_transport(target: Target, timeout: float) -> Iterator[paramiko.Transport]:
    """A client transport to ``target`` that logs to our quiet channel, every wait
    bounded, closed on exit. paramiko's failures leave it as ProbeError naming the target."""
    import paramiko  # 0.1 s to import: paid only by audits that probe an sshd

    sock = connect(target, timeout)
    transport = paramiko.Transport(sock)
    transport.set_log_channel(_LOG_CHANNEL)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    try:
        yield transport
    except paramiko.SSHException as exc:  # covers protocol errors and auth timeouts
        raise ProbeError(f"{target}: {exc}") from exc
    except (EOFError, OSError) as exc:
        raise ProbeError(f"{target}: connection lost ({exc or type(exc).__name__})") from exc
    finally:
        transport.close()
        sock.close()


def probe_ssh_auth(target: Target, timeout: float = DEFAULT_TIMEOUT) -> SSHAuthProbe:
    """Raises ProbeError when the port cannot be reached or does not speak SSH."""
    import paramiko

    with probe_transport(target, timeout) as transport:
        transport.start_client(timeout=timeout)
        banner = transport.remote_version
        try:
            transport.auth_none(PROBE_USER)
        except paramiko.BadAuthenticationType as exc:
            return SSHAuthProbe(target, banner, tuple(exc.allowed_types))
        return SSHAuthProbe(target, banner, ("none",))
