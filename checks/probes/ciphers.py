"""Which cipher suites a port accepts at each TLS version, and whether it compresses.

A suite is accepted when the server completes a handshake (``ssl``) or answers a
ClientHello (hand-built) with it. Rather than one handshake per suite, each version is asked
by elimination: offer every candidate, note the one the server picks, offer the rest again,
until the server refuses. A server picks any suite it accepts from what is offered, so the
final refusal proves it accepts none of the remaining ones; the cost is one handshake per
accepted suite plus one, instead of one per suite this machine knows (~130).

- TLS 1.0 to 1.2, suites this machine's OpenSSL knows: real handshakes through ``ssl`` at
  ``@SECLEVEL=0``. PSK and SRP suites are left out: no client can use them without
  credentials, and no server without them accepts them.
- Suites this OpenSSL cannot offer (RC4, export, DES, 3DES, IDEA, RC2, SEED) and every TLS
  1.3 suite (``ssl`` cannot choose those): hand-built ClientHellos (``hello``).

The versions of one port are asked concurrently, all within one budget (``budget``): what
is still open when it runs out is reported undecided, never accepted or refused.
"""

from __future__ import annotations

import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache

from checks.probes import hello
from checks.probes.tls import client_context
from checks.probes.wire import DEFAULT_TIMEOUT, Outcome, ProbeError, Target, connect

VERSIONS = ("TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
#: Time one port may take for all its versions together.
PORT_BUDGET = 10.0
TLS13_CODES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
}
#: Suites that OpenSSL 3 builds drop (their OpenSSL names), asked with hand-built hellos.
LEGACY_CODES = {
    0x0003: "EXP-RC4-MD5",
    0x0004: "RC4-MD5",
    0x0005: "RC4-SHA",
    0x0006: "EXP-RC2-CBC-MD5",
    0x0007: "IDEA-CBC-SHA",
    0x0008: "EXP-DES-CBC-SHA",
    0x0009: "DES-CBC-SHA",
    0x000A: "DES-CBC3-SHA",
    0x000B: "EXP-DH-DSS-DES-CBC-SHA",
    0x000C: "DH-DSS-DES-CBC-SHA",
    0x000D: "DH-DSS-DES-CBC3-SHA",
    0x000E: "EXP-DH-RSA-DES-CBC-SHA",
    0x000F: "DH-RSA-DES-CBC-SHA",
    0x0010: "DH-RSA-DES-CBC3-SHA",
    0x0011: "EXP-EDH-DSS-DES-CBC-SHA",
    0x0012: "EDH-DSS-DES-CBC-SHA",
    0x0013: "EDH-DSS-DES-CBC3-SHA",
    0x0014: "EXP-EDH-RSA-DES-CBC-SHA",
    0x0015: "EDH-RSA-DES-CBC-SHA",
    0x0016: "EDH-RSA-DES-CBC3-SHA",
    0x0017: "EXP-ADH-RC4-MD5",
    0x0018: "ADH-RC4-MD5",
    0x0019: "EXP-ADH-DES-CBC-SHA",
    0x001A: "ADH-DES-CBC-SHA",
    0x001B: "ADH-DES-CBC3-SHA",
    0x0062: "EXP1024-DES-CBC-SHA",
    0x0063: "EXP1024-DHE-DSS-DES-CBC-SHA",
    0x0064: "EXP1024-RC4-SHA",
    0x0065: "EXP1024-DHE-DSS-RC4-SHA",
    0x0066: "DHE-DSS-RC4-SHA",
    0x0096: "SEED-SHA",
    0x0097: "DH-DSS-SEED-SHA",
    0x0098: "DH-RSA-SEED-SHA",
    0x0099: "DHE-DSS-SEED-SHA",
    0x009A: "DHE-RSA-SEED-SHA",
    0x009B: "ADH-SEED-SHA",
    0xC002: "ECDH-ECDSA-RC4-SHA",
    0xC003: "ECDH-ECDSA-DES-CBC3-SHA",
    0xC007: "ECDHE-ECDSA-RC4-SHA",
    0xC008: "ECDHE-ECDSA-DES-CBC3-SHA",
    0xC00C: "ECDH-RSA-RC4-SHA",
    0xC00D: "ECDH-RSA-DES-CBC3-SHA",
    0xC011: "ECDHE-RSA-RC4-SHA",
    0xC012: "ECDHE-RSA-DES-CBC3-SHA",
    0xC016: "AECDH-RC4-SHA",
    0xC017: "AECDH-DES-CBC3-SHA",
}
_EXPORT_ONLY_BEFORE_1_1 = {"TLSv1.1", "TLSv1.2"}  # RFC 4346 forbids export suites from 1.1


@dataclass(frozen=True)
class SuiteScan:
    """What one port accepts: suites per version (in the order found), the versions that
    could not be settled and why, and whether it agreed to TLS compression."""

    target: Target
    accepted: dict[str, tuple[str, ...]]
    undecided: dict[str, str] = field(default_factory=dict)
    compression: bool | None = False


@dataclass(frozen=True)
class LocalSuite:
    name: str
    code: int
    tls12_only: bool


@cache
def local_suites() -> tuple[LocalSuite, ...]:
    """The TLS 1.0-1.2 suites this machine's OpenSSL can offer, without PSK and SRP."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return tuple(
        LocalSuite(c["name"], c["id"] & 0xFFFF, c["protocol"] == "TLSv1.2")
        for c in context.get_ciphers()
        if c["protocol"] != "TLSv1.3" and not {"psk", "srp"} & set(c["kea"].split("-"))
    )


def scan_suites(
    target: Target,
    server_name: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    budget: float = PORT_BUDGET,
) -> SuiteScan:
    """Every version's accepted suites, asked concurrently within ``budget`` seconds.
    Raises ProbeError when the port cannot be reached at all."""
    with connect(target, timeout):
        pass
    deadline = time.monotonic() + budget
    name = server_name or target.host
    with ThreadPoolExecutor(len(VERSIONS) + 1) as pool:
        jobs = {v: pool.submit(_scan_version, target, v, name, timeout, deadline) for v in VERSIONS}
        compression = pool.submit(_compression, target, name, timeout, deadline)
        results = {version: job.result() for version, job in jobs.items()}
        compressed = compression.result()
    accepted = {v: tuple(found) for v, (found, _) in results.items()}
    undecided = {v: why for v, (_, why) in results.items() if why}
    return SuiteScan(target, accepted, undecided, compressed)


def _scan_version(
    target: Target, version: str, name: str, timeout: float, deadline: float
) -> tuple[list[str], str]:
    """(accepted suite names, why the version is undecided or "")."""
    if version == "TLSv1.3":
        return _eliminate_by_hello(target, version, TLS13_CODES, name, timeout, deadline)
    found, why = _eliminate_by_ssl(target, version, name, timeout, deadline)
    if why:
        return found, why
    local = {suite.code for suite in local_suites()}
    legacy = {
        code: suite
        for code, suite in LEGACY_CODES.items()
        if code not in local and not (version in _EXPORT_ONLY_BEFORE_1_1 and "EXP" in suite)
    }
    more, why = _eliminate_by_hello(target, version, legacy, name, timeout, deadline)
    return found + more, why


def _eliminate_by_ssl(
    target: Target, version: str, name: str, timeout: float, deadline: float
) -> tuple[list[str], str]:
    remaining = [s.name for s in local_suites() if version == "TLSv1.2" or not s.tls12_only]
    found: list[str] = []
    while remaining:
        left = deadline - time.monotonic()
        if left <= 0:
            return found, f"not finished within the {PORT_BUDGET:g}s budget of a port"
        context = client_context(version, False, None)
        context.set_ciphers(":".join(remaining) + ":@SECLEVEL=0")
        try:
            with (
                connect(target, min(timeout, left)) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                chosen = (tls.cipher() or ("",))[0]
        except ssl.SSLError as exc:
            if exc.reason == "NO_PROTOCOLS_AVAILABLE":
                return found, f"this machine's OpenSSL cannot offer {version}"
            return found, ""  # the server refused everything still offered
        except ConnectionError:
            return found, ""
        except (ProbeError, OSError) as exc:
            return found, f"{exc}"
        if chosen not in remaining:
            return found, f"the server chose {chosen!r}, which was not offered"
        found.append(chosen)
        remaining.remove(chosen)
    return found, ""


def _eliminate_by_hello(
    target: Target,
    version: str,
    codes: dict[int, str],
    name: str,
    timeout: float,
    deadline: float,
) -> tuple[list[str], str]:
    remaining = list(codes)
    found: list[str] = []
    while remaining:
        left = deadline - time.monotonic()
        if left <= 0:
            return found, f"not finished within the {PORT_BUDGET:g}s budget of a port"
        answer = hello.ask(target, version, tuple(remaining), name, min(timeout, left))
        if isinstance(answer, Outcome):
            return found, "" if answer.accepted is False else answer.detail
        if answer.suite not in remaining:
            return found, f"the server chose suite 0x{answer.suite:04x}, which was not offered"
        found.append(codes[answer.suite])
        remaining.remove(answer.suite)
    return found, ""


def _compression(target: Target, name: str, timeout: float, deadline: float) -> bool | None:
    """Does the server take DEFLATE when offered (CRIME)? Asked at TLS 1.2 (1.3 has no
    compression) with the suites this machine knows; None when the answer was unclear."""
    codes = tuple(s.code for s in local_suites())
    left = max(deadline - time.monotonic(), 0.001)
    answer = hello.ask(target, "TLSv1.2", codes, name, min(timeout, left), compression=True)
    if isinstance(answer, Outcome):
        return None if answer.accepted is None else False
    return answer.compression != 0
