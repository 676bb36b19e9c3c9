"""Debian version numbers compared exactly as dpkg compares them (lib/dpkg/version.c).

``[epoch:]upstream[-revision]``: epochs compare as numbers; upstream and revision compare
by alternating runs of non-digits (letters before other characters, ``~`` before
everything, even the end) and digit runs (as numbers). So ``1.0~rc1 < 1.0 < 1.0+deb12u1``.
"""

from __future__ import annotations

import functools


def compare(a: str, b: str) -> int:
    """<0, 0 or >0 as version ``a`` is older than, equal to or newer than ``b``."""
    epoch_a, upstream_a, revision_a = _split(a)
    epoch_b, upstream_b, revision_b = _split(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    return _verrevcmp(upstream_a, upstream_b) or _verrevcmp(revision_a, revision_b)


#: ``sorted(versions, key=version_key)`` sorts oldest first.
version_key = functools.cmp_to_key(compare)


def _split(version: str) -> tuple[int, str, str]:
    """(epoch, upstream, revision) as dpkg's parseversion() splits a version."""
    version = version.strip()
    epoch_text, colon, rest = version.partition(":")
    epoch = int(epoch_text) if colon and epoch_text.isdigit() else 0
    if not colon:
        rest = version
    upstream, hyphen, revision = rest.rpartition("-")
    return (epoch, upstream, revision) if hyphen else (epoch, rest, "")


def _digit(char: str) -> bool:
    return "0" <= char <= "9"  # ASCII only, as dpkg's c_isdigit()


def _order(char: str) -> int:
    """dpkg's order(): digits 0, letters their code, ``~`` -1, anything else code + 256."""
    if _digit(char):
        return 0
    if ("a" <= char <= "z") or ("A" <= char <= "Z"):
        return ord(char)
    if char == "~":
        return -1
    return ord(char) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _digit(a[i])) or (j < len(b) and not _digit(b[j])):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_diff = 0
        while i < len(a) and _digit(a[i]) and j < len(b) and _digit(b[j]):
            first_diff = first_diff or ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and _digit(a[i]):
            return 1
        if j < len(b) and _digit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0
