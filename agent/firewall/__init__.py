"""Firewall backends: where ban decisions reach the kernel (nftables, ipset, fail2ban, dry-run).

``BACKENDS`` maps a backend's name (config ``firewall.backend``, ``--backend``) to the module
and class that implement it; a backend is imported only when chosen.
"""

from __future__ import annotations

import importlib
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


def open_firewall(name: str, options: Mapping[str, Any], state_dir: Path) -> Firewall:
    """The backend ``name`` built from its config options (``firewall.<name>:``)."""
    module_name, class_name = BACKENDS[name]
    backend = getattr(importlib.import_module(module_name), class_name)
    return backend.from_options(options, state_dir)
