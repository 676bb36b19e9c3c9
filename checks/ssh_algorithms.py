"""What is known about each SSH algorithm: broken (``fail``), weak (``warn``) or sound (``ok``).

The knowledge is ours, kept in step with ssh-audit's judgement of the same names: the test
suite runs ssh-audit against real servers and requires the same level for every algorithm
they offer, and compares this table with ssh-audit's own. Which algorithms a server may
offer at all is a policy decision and lives in the policy (``allowed`` lists), not here.

Levels depend on context in two places, as in ssh-audit: RSA and ECDSA host keys by their
size, and the Terrapin attack (CVE-2023-48795), which makes chacha20-poly1305 (and CBC
ciphers paired with encrypt-then-MAC MACs) weak when the server does not offer the strict
key exchange marker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

KINDS = ("kex", "key", "enc", "mac")
#: How the kinds are called in sshd_config and in evidence.
KIND_NAMES = {"kex": "key exchange", "key": "host key", "enc": "cipher", "mac": "MAC"}

#: Names in a KEXINIT kex list that are flags, not key exchanges.
MARKERS = frozenset(
    {"ext-info-s", "ext-info-c", "kex-strict-s-v00@openssh.com", "kex-strict-c-v00@openssh.com"}
)
STRICT_KEX = "kex-strict-s-v00@openssh.com"

NSA_CURVE = "NIST P-curve (suspected of an NSA backdoor)"
NOT_PQ = "no protection against post-quantum attacks"
SHA1 = "broken SHA-1 hash"
MD5 = "broken MD5 hash"
E_AND_M = "encrypt-and-MAC mode"
TAG_64 = "small 64-bit tag"
CBC = "weak CBC cipher mode"
RNDSIG = "a weak random number generator at signing reveals the key"
TERRAPIN = "vulnerable to the Terrapin attack (CVE-2023-48795) without strict key exchange"

#: name -> (reasons it is broken, reasons it is weak), per kind.
_TABLE: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "kex": {
        "mlkem768x25519-sha256": ((), ()),
        "sntrup761x25519-sha512": ((), ()),
        "sntrup761x25519-sha512@openssh.com": ((), ()),
        "curve25519-sha256": ((), (NOT_PQ,)),
        "curve25519-sha256@libssh.org": ((), (NOT_PQ,)),
        "curve448-sha512": ((), (NOT_PQ,)),
        "diffie-hellman-group-exchange-sha256": ((), (NOT_PQ,)),
        "diffie-hellman-group16-sha512": ((), (NOT_PQ,)),
        "diffie-hellman-group18-sha512": ((), (NOT_PQ,)),
        "diffie-hellman-group14-sha256": ((), ("2048-bit group: 112-bit strength", NOT_PQ)),
        "diffie-hellman-group14-sha1": ((SHA1,), ("2048-bit group: 112-bit strength", NOT_PQ)),
        "diffie-hellman-group1-sha1": (
            ("1024-bit group", "Logjam attack", SHA1),
            (NOT_PQ,),
        ),
        "diffie-hellman-group-exchange-sha1": ((SHA1,), (NOT_PQ,)),
        "ecdh-sha2-nistp256": ((NSA_CURVE,), (NOT_PQ,)),
        "ecdh-sha2-nistp384": ((NSA_CURVE,), (NOT_PQ,)),
        "ecdh-sha2-nistp521": ((NSA_CURVE,), (NOT_PQ,)),
    },
    "key": {
        "ssh-ed25519": ((), ()),
        "ssh-ed25519-cert-v01@openssh.com": ((), ()),
        "sk-ssh-ed25519@openssh.com": ((), ()),
        "sk-ssh-ed25519-cert-v01@openssh.com": ((), ()),
        "rsa-sha2-256": ((), ()),
        "rsa-sha2-512": ((), ()),
        "rsa-sha2-256-cert-v01@openssh.com": ((), ()),
        "rsa-sha2-512-cert-v01@openssh.com": ((), ()),
        "ssh-rsa": ((SHA1,), ()),
        "ssh-rsa-cert-v01@openssh.com": ((SHA1,), ()),
        "ssh-dss": (("1024-bit DSA",), (RNDSIG,)),
        "ecdsa-sha2-nistp256": ((NSA_CURVE,), (RNDSIG,)),
        "ecdsa-sha2-nistp384": ((NSA_CURVE,), (RNDSIG,)),
        "ecdsa-sha2-nistp521": ((NSA_CURVE,), (RNDSIG,)),
        "ecdsa-sha2-nistp256-cert-v01@openssh.com": ((NSA_CURVE,), (RNDSIG,)),
        "sk-ecdsa-sha2-nistp256@openssh.com": ((NSA_CURVE,), (RNDSIG,)),
        "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": ((NSA_CURVE,), (RNDSIG,)),
    },
    "enc": {
        "chacha20-poly1305@openssh.com": ((), ()),
        "aes256-gcm@openssh.com": ((), ()),
        "aes128-gcm@openssh.com": ((), ()),
        "aes256-ctr": ((), ()),
        "aes192-ctr": ((), ()),
        "aes128-ctr": ((), ()),
        "aes256-cbc": ((), (CBC,)),
        "aes192-cbc": ((), (CBC,)),
        "aes128-cbc": ((), (CBC,)),
        "3des-cbc": (("broken 3DES cipher",), (CBC, "small 64-bit block")),
        "none": (("no encryption",), ()),
    },
    "mac": {
        "hmac-sha2-256-etm@openssh.com": ((), ()),
        "hmac-sha2-512-etm@openssh.com": ((), ()),
        "umac-128-etm@openssh.com": ((), ()),
        "umac-64-etm@openssh.com": ((), (TAG_64,)),
        "hmac-sha2-256": ((), (E_AND_M,)),
        "hmac-sha2-512": ((), (E_AND_M,)),
        "umac-128@openssh.com": ((), (E_AND_M,)),
        "umac-64@openssh.com": ((), (E_AND_M, TAG_64)),
        "hmac-sha1-etm@openssh.com": ((SHA1,), ()),
        "hmac-sha1": ((SHA1,), (E_AND_M,)),
        "hmac-sha1-96": ((SHA1,), (E_AND_M,)),
        "hmac-md5-etm@openssh.com": ((MD5,), ()),
        "hmac-md5": ((MD5,), (E_AND_M,)),
        "none": (("no integrity",), ()),
    },
}

#: Host-key algorithm -> the key type whose size matters, with (fail below, warn below) bits.
_SIZED = {
    "rsa": (2048, 3072),
    "ecdsa": (224, 256),
}


@dataclass(frozen=True)
class Judgement:
    """One algorithm as a server offers it."""

    kind: str
    name: str
    level: str  # "fail", "warn" or "ok"
    reasons: tuple[str, ...] = ()

    def __str__(self) -> str:
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return f"{self.name}: {self.level}{why}"


def known(kind: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Every algorithm of a kind this table judges (for the tests that compare it)."""
    return dict(_TABLE[kind])


def key_family(algorithm: str) -> str:
    """``rsa``, ``ecdsa``, ``ed25519`` or ``dsa``: the key type behind a host-key algorithm."""
    base = algorithm.removeprefix("sk-")
    if base.startswith(("rsa-sha2-", "ssh-rsa")):
        return "rsa"
    if base.startswith("ecdsa-"):
        return "ecdsa"
    if base.startswith("ssh-ed25519"):
        return "ed25519"
    return "dsa" if base.startswith("ssh-dss") else base


def judge(
    kind: str,
    name: str,
    offered: Iterable[str] = (),
    strict_kex: bool = True,
    bits: int | None = None,
) -> Judgement:
    """The level of ``name``, offered among ``offered`` (all kinds' names together).

    ``strict_kex``: the server offers the strict key exchange marker (Terrapin fixed).
    ``bits``: a host key's size, where it is known.
    """
    if kind == "kex" and name in MARKERS:
        return Judgement(kind, name, "ok", ("marker, not a key exchange",))
    entry = _TABLE[kind].get(name)
    if entry is None:
        return Judgement(kind, name, "fail", ("unknown algorithm",))
    fails, warns = list(entry[0]), list(entry[1])
    if kind == "key" and bits is not None and key_family(name) in _SIZED:
        fail_below, warn_below = _SIZED[key_family(name)]
        if bits < fail_below:
            fails.append(f"{bits}-bit key")
        elif bits < warn_below:
            warns.append(f"{bits}-bit key")
    if not strict_kex and _terrapin_prone(kind, name, set(offered)):
        warns.append(TERRAPIN)
    level = "fail" if fails else "warn" if warns else "ok"
    return Judgement(kind, name, level, tuple(fails + warns))


def _terrapin_prone(kind: str, name: str, offered: set[str]) -> bool:
    """chacha20-poly1305 always; CBC ciphers and -etm MACs when both kinds are offered."""
    if kind == "enc" and name.startswith("chacha20-poly1305"):
        return True
    cbc = any(n.endswith("-cbc") for n in offered)
    etm = any(n.endswith("-etm@openssh.com") for n in offered)
    if kind == "enc" and name.endswith("-cbc"):
        return etm
    return kind == "mac" and name.endswith("-etm@openssh.com") and cbc
