"""Requests for the files of products a LAPP server never serves (IIS samples, FrontPage
extensions, classic CGI exploits, Java and .NET consoles, appliance panels).

The paths are data, with their sources: ``policies/detect/data/foreign-products.yaml``.
A path is looked up by its folders, so a request costs a few set lookups, not a regex
per product.
"""

from __future__ import annotations

import re
from functools import cache

import yaml

from policies import DETECT_DIR

__all__ = ["DATA", "foreign_product"]

DATA = DETECT_DIR / "data" / "foreign-products.yaml"
_SLASHES = re.compile(r"/{2,}")


@cache
def _paths() -> tuple[frozenset[str], int]:
    """Every listed path without a trailing "/" (each names itself and all under it), and
    the most folders one has: no longer prefix of a request path needs looking up."""
    document = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    listed = frozenset(
        path.lower().rstrip("/") for product in document["products"] for path in product["paths"]
    )
    return listed, max(path.count("/") for path in listed)


def foreign_product(path: str) -> str | None:
    """The listed path a request path (decoded, lower case) is or lies under, or None."""
    listed, depth = _paths()
    path = _SLASHES.sub("/", path)
    end = path.find("/", 1)
    for _ in range(depth):
        if end < 0:
            break
        if path[:end] in listed:
            return path[:end]
        end = path.find("/", end + 1)
    trimmed = path.rstrip("/")
    return trimmed if trimmed in listed else None
