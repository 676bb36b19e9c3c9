"""What detection hands to the ban logic: one attack signal, naming the address to blame.

An Event is deliberately small and immutable; it is the seam between the detector (which
reads logs) and the jails/bans (which only count and decide), so either side can change
without the other noticing.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

#: Evidence is the log line itself, cut so one giant line cannot bloat reports or state.
EVIDENCE_LIMIT = 512
#: How sure an event is that its line is an attack, surest first. ``certain``: the line is
#: an attack by itself (a SQL injection libinjection and our own markers agree on, a
#: Shellshock or JNDI payload, a scanner naming itself); ``likely``: a heuristic verdict
#: on the line (a traversal-looking path, a command word); ``weak``: no verdict on the line,
#: a signal that counts in bursts (a 404, a failed password). Jails weigh events by it.
CONFIDENCES = ("certain", "likely", "weak")


@dataclass(frozen=True)
class Event:
    """One line that matters: ``rule`` saw ``ip`` do something hostile at ``time``.

    ``time`` is UTC epoch seconds, ``ip`` is normalised (see :func:`normalise_ip`),
    ``source`` is a file path or ``journal:<unit>``, ``line`` the 1-based line number when
    known and ``evidence`` the line, at most :data:`EVIDENCE_LIMIT` characters.
    ``confidence`` is one of :data:`CONFIDENCES`; ``family`` the web-attack family found
    in the line (``sqli``...), None for a rule that names none.
    """

    time: float
    rule: str
    kind: str
    ip: str
    user: str | None
    source: str
    line: int | None
    evidence: str
    confidence: str = "weak"
    family: str | None = None


_NORMALISED: dict[str, str | None] = {}
_NORMALISED_MAX = 65536


def normalise_ip(text: str) -> str | None:
    """Canonical text of an address, or None when ``text`` is not one.

    Strips an IPv6 zone (``%eth0``) and brackets, shows IPv4-mapped IPv6 (``::ffff:1.2.3.4``)
    as IPv4 so one attacker is one key, and rejects anything ``ipaddress`` rejects (host
    names, octets with leading zeros, which inet_aton would read as octal). Results are
    memoised: attack traffic repeats the same few thousand addresses.
    """
    try:
        return _NORMALISED[text]
    except KeyError:
        pass
    value = _normalise(text)
    if len(_NORMALISED) >= _NORMALISED_MAX:
        _NORMALISED.clear()
    _NORMALISED[text] = value
    return value


#: A dotted quad already in canonical form (no leading zeros, octets up to 255): the common
#: case, answered without ipaddress (which takes microseconds per address).
CANONICAL_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)


def _normalise(text: str) -> str | None:
    if CANONICAL_IPV4.fullmatch(text):
        return text
    candidate = text.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    candidate = candidate.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def evidence_of(line: str) -> str:
    """The line as stored in an Event: capped at :data:`EVIDENCE_LIMIT` characters."""
    return line if len(line) <= EVIDENCE_LIMIT else line[:EVIDENCE_LIMIT]
