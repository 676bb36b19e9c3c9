"""HTTP basic auth against bcrypt hashes, cheap for the scraper that knows its password.

bcrypt is slow on purpose (about 70 ms at cost 10), so checking it on every scrape of every
target would cost more than the scrape. As the Prometheus exporter toolkit does, a password
that matched once is remembered, here as a keyed hash (HMAC with a key made at start, so a
memory dump shows no fast-to-crack digest) and compared in constant time; one remembered
password per configured user keeps the memory bounded whatever clients send. Failed
attempts are not remembered and their bcrypt runs one at a time, so a client guessing
passwords takes at most one core and never delays a scraper whose password is remembered.
An unknown user is checked against a decoy hash of the same cost, so timing does not tell
which users exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections.abc import Mapping

import bcrypt


class BasicAuth:
    """The users of one web config (user -> bcrypt hash) and what they proved so far."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._key = secrets.token_bytes(32)
        self._proven: dict[str, bytes] = {}  # user -> HMAC of the password that matched
        self._bcrypt = threading.Lock()
        # The hash of a random password nobody knows, at the highest cost in use.
        cost = max((int(hashed[4:6]) for hashed in self._users.values()), default=0)
        self._decoy = (
            bcrypt.hashpw(secrets.token_hex(16).encode(), bcrypt.gensalt(cost)) if cost else b""
        )

    @property
    def required(self) -> bool:
        """False when the config names no users: then everyone may scrape."""
        return bool(self._users)

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value names a user and its right password."""
        credentials = parse_basic(authorization)
        if credentials is None:
            return False
        user, password = credentials
        digest = hmac.new(self._key, password, hashlib.sha256).digest()
        hashed = self._users.get(user)
        proven = self._proven.get(user)
        if hashed is not None and proven is not None and hmac.compare_digest(digest, proven):
            return True
        with self._bcrypt:
            matches = _bcrypt_matches(password, hashed or self._decoy)
        if matches and hashed is not None:
            self._proven[user] = digest
            return True
        return False


def parse_basic(authorization: str | None) -> tuple[str, bytes] | None:
    """(user, password) from ``Basic base64(user:password)``, or None if it is not that."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
        user, sep, password = decoded.partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # longer than bcrypt's 72 bytes: never a match, never truncated
        return False
