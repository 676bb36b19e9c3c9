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
def _paths() -> tuple[frozenset[str], frozenset[str]]:
    """(exact paths, folder prefixes ending in "/") of every product in the data file."""
    document = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    entries = [path.lower() for product in document["products"] for path in product["paths"]]
    folders = frozenset(path for path in entries if path.endswith("/"))
    return frozenset(entries) - folders, folders


def foreign_product(path: str) -> str | None:
    """The listed path or folder a request path (decoded, lower case) names, or None."""
    exact, folders = _paths()
    path = _SLASHES.sub("/", path)
    if path in exact or path + "/" in folders:
        return path
    end = path.find("/", 1)
    while end > 0:
        if path[: end + 1] in folders:
            return path[: end + 1]
        end = path.find("/", end + 1)
    return None
