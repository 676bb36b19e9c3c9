"""An sshd host key's type and size, read from its files on the host.

The public half (``KEY.pub``) is enough and is read first; sshd itself needs only the
private file, so when the ``.pub`` is missing the private key is parsed (unencrypted, as
host keys are). Nothing is kept but the type and the size.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from checks.hosts import Host, HostError


@dataclass(frozen=True)
class HostKeyInfo:
    path: str
    family: str  # rsa, ecdsa, ed25519, dsa
    bits: int
    curve: str = ""  # nistp256 ... for ECDSA

    def __str__(self) -> str:
        kind = f"ecdsa-{self.curve}" if self.curve else self.family
        return f"{self.path}: {kind} {self.bits} bits"


def read_host_key(host: Host, path: str) -> HostKeyInfo:
    """Raises HostError when neither file can be read or holds a key."""
    try:
        text = host.read_bytes(path + ".pub").split()
        key = serialization.load_ssh_public_key(b" ".join(text[:2]))
    except (HostError, ValueError, IndexError, UnsupportedAlgorithm):
        try:
            data = host.read_bytes(path)
            key = _private(data).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise HostError(f"{path}: not a host key ({exc})") from exc
    return _describe(path, key)


def _private(data: bytes):
    if b"OPENSSH PRIVATE KEY" in data:
        return serialization.load_ssh_private_key(data, password=None)
    return serialization.load_pem_private_key(data, password=None)


def _describe(path: str, key: object) -> HostKeyInfo:
    if isinstance(key, rsa.RSAPublicKey):
        return HostKeyInfo(path, "rsa", key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "nistp256", "secp384r1": "nistp384", "secp521r1": "nistp521"}
        return HostKeyInfo(path, "ecdsa", key.key_size, curve.get(key.curve.name, key.curve.name))
    if isinstance(key, ed25519.Ed25519PublicKey):
        return HostKeyInfo(path, "ed25519", 256)
    if isinstance(key, dsa.DSAPublicKey):
        return HostKeyInfo(path, "dsa", key.key_size)
    raise HostError(f"{path}: a key type sshd does not use as a host key")
