"""What an HTTP or HTTPS port answers to ``GET``: the status and the response headers."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from checks.probes.wire import DEFAULT_TIMEOUT, BoundedReader, ProbeError, Target, connect

#: Headers past this are not read: a status line and Location come first in practice.
MAX_HEAD = 16384


@dataclass(frozen=True)
class HTTPAnswer:
    status: int
    headers: tuple[tuple[str, str], ...] = ()  # (name as sent, value), in order

    def header(self, name: str) -> str | None:
        """The first value of a header, by case-insensitive name."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)

    @property
    def location(self) -> str | None:
        return self.header("Location")

    @property
    def redirects_to_https(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and bool(
            self.location and self.location.lower().startswith("https://")
        )


def probe_http(
    target: Target,
    host: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    tls: bool = False,
    path: str = "/",
) -> HTTPAnswer:
    """``GET path`` with ``Host: host`` (over TLS with SNI ``host`` when ``tls``; the
    certificate is not verified: we look at headers, not trust). Raises ProbeError when the
    port cannot be reached or does not answer in HTTP."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lappguard\r\nConnection: close\r\n\r\n"
    )
    with connect(target, timeout) as raw:
        try:
            sock = _wrap(raw, host) if tls else raw
            sock.sendall(request.encode("ascii"))
            head = _read_head(BoundedReader(sock, timeout))
        except TimeoutError as exc:
            raise ProbeError(f"{target}: no HTTP answer within {timeout:g}s") from exc
        except ssl.SSLError as exc:
            raise ProbeError(f"{target}: TLS handshake failed ({exc.reason or exc})") from exc
        except OSError as exc:
            raise ProbeError(f"{target}: connection closed ({exc.strerror or exc})") from exc
    lines = head.decode("iso-8859-1").split("\r\n")
    words = lines[0].split(" ", 2)
    if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
        raise ProbeError(f"{target}: not an HTTP answer: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return HTTPAnswer(int(words[1]), tuple(headers))


def _wrap(raw: socket.socket, host: str) -> ssl.SSLSocket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(raw, server_hostname=host)


def _read_head(reader: BoundedReader) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
        chunk = reader.read(1)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0]
