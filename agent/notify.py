"""sd_notify: tell systemd we are ready, what we are doing, and that we are alive.

The protocol is a datagram of ``KEY=VALUE`` lines to the socket named in
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). With no socket (run by
hand, or ``Type=simple``) every call does nothing, so the daemon never needs to know how it
was started. ``$WATCHDOG_USEC`` gives the watchdog period; we ping at half of it.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and (not pid or pid == str(os.getpid()))
        #: Seconds between WATCHDOG=1 pings, or None when systemd does not watch us.
        self.watchdog_interval = int(usec) / 2e6 if watched and int(usec) > 0 else None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, **fields: str) -> None:
        """Send ``KEY=VALUE`` lines without ever blocking: a message systemd cannot take now
        (its queue full, or gone at shutdown) is dropped, the daemon's loop never waits."""
        if not self._address:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode("utf-8", "replace"), socket.MSG_DONTWAIT, self._address)
        except OSError:
            pass

    def ready(self, status: str) -> None:
        self.send(READY="1", STATUS=status, MAINPID=str(os.getpid()))

    def status(self, text: str) -> None:
        self.send(STATUS=text)

    def watchdog(self) -> None:
        self.send(WATCHDOG="1")

    def reloading(self) -> None:
        self.send(RELOADING="1", STATUS="reloading configuration")

    def stopping(self) -> None:
        self.send(STOPPING="1", STATUS="stopping")
