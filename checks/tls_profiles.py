"""Mozilla's server-side TLS profiles (version 5.7), and why a cipher suite is weak.

Both the Apache configuration checks and the live probes judge suites against one of these
named profiles (the baseline's ``tls_profile`` variable), so a configuration and the server
it runs are held to the same list. Suite names are OpenSSL's, as ``SSLCipherSuite`` and
``openssl ciphers`` write them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


@dataclass(frozen=True)
class Profile:
    name: str
    versions: tuple[str, ...]  # e.g. ("TLSv1.2", "TLSv1.3")
    #: protocol version -> the suites allowed at it (TLS 1.0 to 1.2 share one list)
    suites: dict[str, tuple[str, ...]]
    max_certificate_days: int  # a leaf certificate's whole validity period
    certificate_types: tuple[str, ...]  # "rsa", "ecdsa"
    rsa_bits: int
    ec_bits: int
    #: elliptic curves for the key exchange, and of ECDSA certificate keys (OpenSSL's names)
    curves: tuple[str, ...] = ("X25519", "prime256v1", "secp384r1")
    certificate_curves: tuple[str, ...] = ("prime256v1", "secp384r1")

    def allowed(self, version: str) -> tuple[str, ...]:
        return self.suites.get(version, ())


_INTERMEDIATE_TLS12 = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
)
PROFILES = {
    "intermediate": Profile(
        "intermediate",
        ("TLSv1.2", "TLSv1.3"),
        {"TLSv1.2": _INTERMEDIATE_TLS12, "TLSv1.3": TLS13_SUITES},
        max_certificate_days=366,
        certificate_types=("rsa", "ecdsa"),
        rsa_bits=2048,
        ec_bits=256,
    ),
    "modern": Profile(
        "modern",
        ("TLSv1.3",),
        {"TLSv1.3": TLS13_SUITES},
        max_certificate_days=90,
        certificate_types=("ecdsa",),
        rsa_bits=2048,
        ec_bits=256,
    ),
}
PROFILE_NAMES = tuple(PROFILES)

_FORWARD_SECRET = re.compile(r"^(ECDHE|DHE|EDH)-|^TLS_")
_ANONYMOUS = re.compile(r"^(EXP-|EXP1024-)?(ADH|AECDH)-")
_AEAD = re.compile(r"GCM|CHACHA20|CCM")
#: (label, pattern on the OpenSSL name), worst first: what each weakness is called in evidence.
_WEAKNESSES = (
    ("NULL encryption", re.compile(r"(^|-)NULL-")),
    ("anonymous", _ANONYMOUS),
    ("EXPORT", re.compile(r"^EXP")),
    ("RC4", re.compile(r"RC4")),
    ("DES", re.compile(r"(^|-)DES-CBC-")),
    ("3DES", re.compile(r"DES-CBC3")),
    ("RC2", re.compile(r"RC2")),
    ("IDEA", re.compile(r"IDEA")),
    ("MD5", re.compile(r"MD5$")),
)


def weaknesses(name: str) -> list[str]:
    """Why a suite is weak, by its OpenSSL name (empty for a strong one): the named
    breakages, then 'no forward secrecy' and 'CBC' (not AEAD)."""
    found = [label for label, pattern in _WEAKNESSES if pattern.search(name)]
    if not _FORWARD_SECRET.search(name) and "anonymous" not in found:
        found.append("no forward secrecy")
    if "NULL encryption" not in found and not _AEAD.search(name):
        found.append("not AEAD")
    return found


def describe(name: str, profile: Profile) -> str:
    """``NAME (reasons)``: a suite outside the profile, with what is wrong with it."""
    reasons = weaknesses(name) or [f"not in Mozilla {profile.name}"]
    return f"{name} ({', '.join(reasons)})"
