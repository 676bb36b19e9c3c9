"""Firewall backends: where ban decisions reach the kernel (nftables, ipset, fail2ban, dry-run).

``BACKENDS`` maps a backend's name (config ``firewall.backend``, ``--backend``) to the module
and class that implement it; a backend is imported only when chosen.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.firewall.base import Entry, Firewall, FirewallError, Network

BACKENDS: dict[str, tuple[str, str]] = {
    "nftables": ("agent.firewall.nftables", "NftablesFirewall"),
    "ipset": ("agent.firewall.ipset", "IpsetFirewall"),
    "fail2ban": ("agent.firewall.fail2ban", "Fail2banFirewall"),
    "dry-run": ("agent.firewall.dryrun", "DryRunFirewall"),
}

__all__ = ["BACKENDS", "Entry", "Firewall", "FirewallError", "Network", "open_firewall"]


def backend_class(name: str) -> type[Firewall]:
    module_name, class_name = BACKENDS[name]
    return getattr(importlib.import_module(module_name), class_name)


def open_firewall(name: str, options: Mapping[str, Any], state_dir: Path) -> Firewall:
    """The backend ``name`` built from its config options (``firewall.<name>:``); the
    backend fills in the defaults of options the config does not set."""
    return backend_class(name).from_options(options, state_dir)


def choose_backend(name: str) -> tuple[str, str | None]:
    """The backend to use for a configured name, and a warning when it is not a real one:
    ``auto`` is nftables where the nft tool exists, else dry-run (which bans nothing)."""
    if name != "auto":
        return name, None
    search = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    if shutil.which("nft", path=search):
        return "nftables", None
    return "dry-run", "nft not found: bans are only RECORDED (dry-run), nothing is blocked"
