"""What an SSH server offers before anyone logs in: its KEXINIT lists and host-key sizes.

The server sends SSH_MSG_KEXINIT (RFC 4253 7.1) right after the version exchange, unasked
and in clear, so reading it needs no SSH library and no algorithm in common with the
server: we send our version line, read the server's, then read one binary packet. Every
length is checked before it is trusted. Host-key sizes (RSA) are not in KEXINIT: paramiko
completes one key exchange that asks for an RSA host key and reads its size. No
credential is ever sent.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from checks.probes.wire import DEFAULT_TIMEOUT, BoundedReader, ProbeError, Target, connect

CLIENT_VERSION = b"SSH-2.0-lappguard_probe\r\n"
MSG_KEXINIT = 20
#: RFC 4253 6.1: implementations must handle packets of 35000 bytes; KEXINIT is far smaller.
MAX_PACKET = 35000
#: RFC 4253 4.2: lines before the version line are allowed, at most 255 bytes each.
MAX_PRE_VERSION_LINES = 64
_LISTS = (
    "kex",
    "key",
    "enc_c2s",
    "enc",
    "mac_c2s",
    "mac",
    "compression_c2s",
    "compression",
    "languages_c2s",
    "languages",
)


@dataclass(frozen=True)
class ServerKexInit:
    """The server's offer, server-to-client lists (OpenSSH offers the same both ways)."""

    target: Target
    banner: str
    kex: tuple[str, ...]
    key: tuple[str, ...]
    enc: tuple[str, ...]
    mac: tuple[str, ...]
    compression: tuple[str, ...]

    def offered(self, kind: str) -> tuple[str, ...]:
        return getattr(self, kind)


def read_kexinit(target: Target, timeout: float = DEFAULT_TIMEOUT) -> ServerKexInit:
    """The server's KEXINIT; raises ProbeError when the port does not speak SSH-2."""
    try:
        with connect(target, timeout) as sock:
            sock.sendall(CLIENT_VERSION)
            reader = BoundedReader(sock, timeout)
            banner = _version_line(reader, target)
            payload = _packet(reader, target)
    except TimeoutError as exc:
        raise ProbeError(f"{target}: no KEXINIT within {timeout:g}s") from exc
    except OSError as exc:
        raise ProbeError(f"{target}: connection lost ({exc.strerror or exc})") from exc
    lists = _name_lists(payload, target)
    return ServerKexInit(
        target,
        banner,
        kex=lists["kex"],
        key=lists["key"],
        enc=lists["enc"],
        mac=lists["mac"],
        compression=lists["compression"],
    )


def _version_line(reader: BoundedReader, target: Target) -> str:
    for _ in range(MAX_PRE_VERSION_LINES):
        line = bytearray()
        while not line.endswith(b"\n"):
            byte = reader.read(1)
            if not byte:
                raise ProbeError(f"{target}: closed before sending an SSH version line")
            line += byte
            if len(line) > 255:
                raise ProbeError(f"{target}: not SSH (a line longer than 255 bytes)")
        text = line.decode("ascii", errors="replace").rstrip("\r\n")
        if text.startswith("SSH-"):
            if not text.startswith(("SSH-2.0-", "SSH-1.99-")):
                raise ProbeError(f"{target}: speaks no SSH-2 ({text})")
            return text
    raise ProbeError(f"{target}: no SSH version line")


def _packet(reader: BoundedReader, target: Target) -> bytes:
    head = reader.read(5)
    if len(head) < 5:
        raise ProbeError(f"{target}: closed before sending KEXINIT")
    length, padding = struct.unpack(">IB", head)
    if not padding + 1 <= length <= MAX_PACKET:
        raise ProbeError(f"{target}: not an SSH packet (length {length})")
    body = reader.read(length - 1)
    if len(body) < length - 1:
        raise ProbeError(f"{target}: KEXINIT cut short")
    payload = body[: length - 1 - padding]
    if not payload or payload[0] != MSG_KEXINIT:
        raise ProbeError(f"{target}: the first packet is not KEXINIT")
    return payload


def _name_lists(payload: bytes, target: Target) -> dict[str, tuple[str, ...]]:
    at = 1 + 16  # message number, cookie
    lists = {}
    for name in _LISTS:
        if at + 4 > len(payload):
            raise ProbeError(f"{target}: KEXINIT cut short")
        (size,) = struct.unpack_from(">I", payload, at)
        text = payload[at + 4 : at + 4 + size]
        if len(text) < size:
            raise ProbeError(f"{target}: KEXINIT cut short")
        lists[name] = tuple(n for n in text.decode("ascii", errors="replace").split(",") if n)
        at += 4 + size
    return lists


def rsa_host_key_bits(
    target: Target, algorithms: tuple[str, ...], timeout: float = DEFAULT_TIMEOUT
) -> int:
    """The size of the server's RSA host key, by a key exchange that asks for it with one
    of ``algorithms`` (RSA signature names the server offers). Raises ProbeError."""
    from checks.probes.ssh import probe_transport  # paramiko: paid only by probing audits

    with probe_transport(target, timeout) as transport:
        options = transport.get_security_options()
        usable = [a for a in algorithms if a in options.key_types]
        if not usable:
            raise ProbeError(f"{target}: no RSA signature algorithm in common")
        options.key_types = usable
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key().get_bits()
