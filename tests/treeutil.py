"""Build host trees for ``--root`` style tests: files, modes and symlinks from one dict."""

from __future__ import annotations

import os
from pathlib import Path

from checks.hosts import CachedHost, LocalHost
from checks.types.base import CheckContext


def make_tree(
    root: Path,
    files: dict[str, str | bytes],
    modes: dict[str, int] | None = None,
    links: dict[str, str] | None = None,
) -> Path:
    """Write ``files`` (host path -> content) under root, then chmod ``modes`` and add ``links``."""
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    for path, mode in (modes or {}).items():
        os.chmod(root / path.lstrip("/"), mode)
    for path, destination in (links or {}).items():
        link = root / path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(destination)
    return root


def context(root: Path | None = None, variables: dict | None = None, clock=None) -> CheckContext:
    host = CachedHost(LocalHost(root=str(root) if root else None))
    ctx = CheckContext(host, dict(variables or {}))
    if clock is not None:
        ctx.clock = clock
    return ctx


def dpkg_status(*packages: str) -> str:
    """A dpkg status file listing ``packages`` as installed (plus one removed, for realism)."""
    stanzas = [
        f"Package: {name}\nStatus: install ok installed\nVersion: 1.0-1\n" for name in packages
    ]
    stanzas.append("Package: gone\nStatus: deinstall ok config-files\nVersion: 0.9\n")
    return "\n".join(stanzas)
