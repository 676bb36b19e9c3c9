"""Apache access-log lines -> HttpRequest, driven by the site's own LogFormat string.

One regex is compiled per LogFormat, so a line costs one ``match`` plus light field work.
The client address comes only from the ``%a``/``%h`` position; a forwarded-for header is
believed only when that peer is a trusted proxy, so a client cannot name someone else's IP,
and a hop it cannot read (``unknown``, an obfuscated name, garbage) names no one: neither
the client, whom it hides, nor the proxy, which only passed the request on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.detect.events import normalise_ip
from agent.detect.logformats import clf_time

__all__ = ["COMBINED", "COMMON", "VHOST_COMBINED", "AccessLogParser", "HttpRequest"]

#: Debian's apache2.conf nicknames, spelled as Apache stores them (quotes unescaped).
COMBINED = '%h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"'
VHOST_COMBINED = '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"'
COMMON = '%h %l %u %t "%r" %>s %O'

#: Headers whose value is a client list that a trusted proxy appends to.
FORWARDED_HEADERS = frozenset({"x-forwarded-for", "x-real-ip", "x-client-ip"})


@dataclass(frozen=True)
class HttpRequest:
    """One logged request. Text fields hold what the client sent (Apache's log escaping
    undone, URL encoding kept); a header that was absent or logged as ``-`` is ``""``.
    ``client_ip`` is None when a trusted proxy forwarded for a client it did not name."""

    client_ip: str | None
    time: float | None
    method: str
    target: str
    protocol: str
    status: int | None
    size: int | None
    user_agent: str
    referer: str
    vhost: str | None
    request_line: str
    location: str | None


# One directive: %[conditions][<|>][{arg}][conditions]letter  (mod_log_config syntax).
_DIRECTIVE = re.compile(r"%([!<>,0-9]*)(?:\{([^}]*)\})?[!<>,0-9]*(\^t[io]|[a-zA-Z%])")

# Field shapes. Apache escapes '"' and '\' inside every logged string, so a quoted field
# ends at the first unescaped quote and attacker text cannot spill into the next field.
_QUOTED_BODY = r'(?:[^"\\]++|\\.)*+'
_TOKEN = r"\S+"
_NUMBER = r"-|\d+"
_FREE = r".*?"
_CLF_TIME = r"\[[^\]]{0,64}\]"

_NUMERIC = frozenset("bBDIkOpsST")  # %p: a port, always digits
_TOKENS = frozenset("aAhHlLmPvVX")
_UNESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "v": "\v"}
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True)
class _Field:
    """One directive of the format: its letter, its ``{argument}`` and how it is logged."""

    letter: str
    arg: str
    quoted: bool


class AccessLogParser:
    """Parses access-log lines written with one Apache LogFormat.

    ``trusted_proxies`` are CIDRs whose forwarded-for header is believed: when the peer is
    one of them, the client is the right-most untrusted address of that header.
    """

    def __init__(self, log_format: str = COMBINED, trusted_proxies: Sequence[str] = ()) -> None:
        self.log_format = log_format
        self._trusted = tuple(ipaddress.ip_network(c, strict=False) for c in trusted_proxies)
        fields, pattern = _compile(_unescape_config(log_format))
        self._regex = re.compile(pattern, re.DOTALL)
        self._peer = _pick(fields, ("a", ""), ("h", ""), ("a", "c"), ("h", "c"))
        if self._peer is None:
            raise ValueError(f"LogFormat {log_format!r} logs no client address (%h or %a)")
        self._forwarded = _pick_header(fields, "i", FORWARDED_HEADERS)
        self._time = _pick(fields, ("t", None))
        self._time_arg = fields[self._time - 1].arg if self._time is not None else ""
        self._request = _pick(fields, ("r", ""))
        self._method = _pick(fields, ("m", ""))
        self._path = _pick(fields, ("U", ""))
        self._query = _pick(fields, ("q", ""))
        self._protocol = _pick(fields, ("H", ""))
        self._status = _pick(fields, ("s", ""))
        self._size = _pick(fields, ("O", ""), ("b", ""), ("B", ""))
        self._user_agent = _pick_header(fields, "i", {"user-agent"})
        self._referer = _pick_header(fields, "i", {"referer"})
        self._vhost = _pick(fields, ("v", ""), ("V", ""))
        self._location = _pick_header(fields, "o", {"location"})
        self._last_clf: tuple[str, float | None] = ("", None)

    def parse(self, line: str) -> HttpRequest | None:
        """The request a line records, or None when the line is not of this format."""
        match = self._regex.match(line.rstrip("\r\n"))
        if match is None:
            return None
        group = match.group
        client = _address(group(self._peer))
        if client is None:
            return None
        if self._forwarded is not None and self._trusted:
            client = self._resolve_forwarded(client, group(self._forwarded))
        request_line = _text(group, self._request)
        if self._request is not None:
            method, target, protocol = _split_request(request_line)
        else:
            method = _text(group, self._method)
            target = _text(group, self._path) + _text(group, self._query)
            protocol = _text(group, self._protocol)
        vhost = _text(group, self._vhost)
        location = _text(group, self._location)
        return HttpRequest(
            client_ip=client,
            time=self._parse_time(group(self._time)) if self._time is not None else None,
            method=method,
            target=target,
            protocol=protocol,
            status=_number(group, self._status),
            size=_number(group, self._size),
            user_agent=_text(group, self._user_agent),
            referer=_text(group, self._referer),
            vhost=vhost or None,
            request_line=request_line,
            location=location or None,
        )

    def _resolve_forwarded(self, peer: str, header: str | None) -> str | None:
        """Walk the header right to left past trusted hops to the first untrusted one;
        None at a hop that is not an address (see the module docstring)."""
        if not header or header == "-" or not self._is_trusted(peer):
            return peer
        client = peer
        for item in reversed(header.split(",")):
            address = _forwarded_hop(item)
            if address is None:
                return None
            client = address
            if not self._is_trusted(address):
                break
        return client

    def _is_trusted(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip.version == net.version and ip in net for net in self._trusted)

    def _parse_time(self, text: str | None) -> float | None:
        if not text or text == "-":
            return None
        if self._time_arg == "":
            if text != self._last_clf[0]:
                self._last_clf = (text, clf_time(text))
            return self._last_clf[1]
        unit = self._time_arg.removeprefix("begin:").removeprefix("end:")
        scale = {"sec": 1.0, "msec": 1e3, "usec": 1e6}.get(unit)
        if scale is None or not text.isdigit():
            return None  # strftime layouts are in the server's local time zone: unknown here
        return int(text) / scale


def _unescape_config(log_format: str) -> str:
    """Undo the config-file escaping of a LogFormat argument (``\\"`` and C escapes)."""
    if "\\" not in log_format:
        return log_format
    return _UNESCAPE.sub(lambda m: _SIMPLE_ESCAPES.get(m.group(1), m.group(1)), log_format)


def _compile(log_format: str) -> tuple[list[_Field], str]:
    """The regex for a LogFormat: one numbered group per directive, literals escaped."""
    fields: list[_Field] = []
    parts = ["^"]
    position = 0
    for directive in _DIRECTIVE.finditer(log_format):
        literal = log_format[position : directive.start()]
        position = directive.end()
        letter, arg = directive.group(3), directive.group(2) or ""
        if letter == "%":
            parts.append(re.escape(literal + "%"))
            continue
        parts.append(re.escape(literal))
        quoted = literal.endswith('"') and log_format[position : position + 1] == '"'
        if letter == "s" and "<" in directive.group(1):
            arg = "<"  # %<s is the original status of an internal redirect: not the answer
        fields.append(_Field(letter, arg, quoted))
        parts.append(f"({_shape(fields[-1])})")
    parts.append(re.escape(log_format[position:]))
    parts.append(r"\Z")
    return fields, "".join(parts)


def _shape(field: _Field) -> str:
    if field.quoted:
        return _QUOTED_BODY
    if field.letter == "t":
        return _CLF_TIME if field.arg == "" else _FREE
    if field.letter in _NUMERIC:
        return _NUMBER
    if field.letter in _TOKENS:
        return _TOKEN
    return _FREE


def _pick(fields: list[_Field], *wanted: tuple[str, str | None]) -> int | None:
    """Group number of the first field matching (letter, arg) in order of preference;
    an arg of None accepts any argument."""
    for letter, arg in wanted:
        for index, field in enumerate(fields):
            if field.letter == letter and (arg is None or field.arg == arg):
                return index + 1
    return None


def _pick_header(fields: list[_Field], letter: str, names: set[str] | frozenset[str]) -> int | None:
    for index, field in enumerate(fields):
        if field.letter == letter and field.arg.lower() in names:
            return index + 1
    return None


def _text(group, index: int | None) -> str:
    """A logged string with Apache's escaping (``\\"``, ``\\\\``, ``\\xhh``) undone."""
    if index is None:
        return ""
    value = group(index)
    if value is None or value == "-":
        return ""
    if "\\" in value:
        return _UNESCAPE.sub(_unescape_one, value)
    return value


def _unescape_one(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) == 3:
        return chr(int(code[1:], 16))
    return _SIMPLE_ESCAPES.get(code, code)


def _number(group, index: int | None) -> int | None:
    if index is None:
        return None
    value = group(index)
    return int(value) if value and value.isdigit() else None


def _split_request(line: str) -> tuple[str, str, str]:
    """(method, target, protocol); all empty when the line is not an HTTP request
    (``-`` for a connection that sent nothing, TLS bytes sent to a plain-HTTP port)."""
    parts = line.split(" ")
    if len(parts) < 2 or not _METHOD.fullmatch(parts[0]):
        return "", "", ""
    if len(parts) >= 3 and parts[-1].startswith("HTTP/"):
        return parts[0], " ".join(parts[1:-1]), parts[-1]
    return parts[0], " ".join(parts[1:]), ""


def _address(text: str | None) -> str | None:
    return normalise_ip(text) if text else None


def _forwarded_hop(item: str) -> str | None:
    """The address of one X-Forwarded-For entry: ``1.2.3.4``, ``1.2.3.4:port``, ``v6``,
    ``[v6]`` or ``[v6]:port`` (as proxies write them); None for anything else."""
    item = item.strip()
    if item.startswith("["):
        close = item.find("]")
        port = item[close + 1 :]
        if close == -1 or (port and not (port[0] == ":" and _is_port(port[1:]))):
            return None
        return _address(item[1:close])
    if item.count(":") == 1:  # an IPv6 address has two colons at least
        host, port = item.split(":")
        return _address(host) if _is_port(port) and "." in host else None
    return _address(item)


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5
