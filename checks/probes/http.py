"""What a plain-HTTP port answers to ``GET /``: the status and where it redirects to."""

from __future__ import annotations

from dataclasses import dataclass

from checks.probes.wire import DEFAULT_TIMEOUT, BoundedReader, ProbeError, Target, connect

#: Headers past this are not read: a status line and Location come first in practice.
MAX_HEAD = 16384


@dataclass(frozen=True)
class HTTPAnswer:
    status: int
    location: str | None

    @property
    def redirects_to_https(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and bool(
            self.location and self.location.lower().startswith("https://")
        )


def probe_http(target: Target, host: str, timeout: float = DEFAULT_TIMEOUT) -> HTTPAnswer:
    """Raises ProbeError when the port cannot be reached or does not answer in HTTP."""
    request = (
        f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lappguard\r\nConnection: close\r\n\r\n"
    )
    with connect(target, timeout) as sock:
        try:
            sock.sendall(request.encode("ascii"))
            head = _read_head(BoundedReader(sock, timeout))
        except TimeoutError as exc:
            raise ProbeError(f"{target}: no HTTP answer within {timeout:g}s") from exc
        except OSError as exc:
            raise ProbeError(f"{target}: connection closed ({exc.strerror or exc})") from exc
    lines = head.decode("iso-8859-1").split("\r\n")
    words = lines[0].split(" ", 2)
    if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
        raise ProbeError(f"{target}: not an HTTP answer: {lines[0][:80]!r}")
    location = None
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "location":
            location = value.strip()
    return HTTPAnswer(int(words[1]), location)


def _read_head(reader: BoundedReader) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
        chunk = reader.read(1)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0]
