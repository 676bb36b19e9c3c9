"""The areas a check ID names (``LAPP-SSH-001`` is in SSH) and how reports spell them.

The display name is what the text report prints as a heading, so ``--only Apache`` selects
what a reader sees under "Apache".
"""

from __future__ import annotations

from checks.policy import AREAS

DISPLAY_NAMES = {
    "SSH": "SSH",
    "TLS": "TLS",
    "WEB": "Apache",
    "PHP": "PHP",
    "PG": "PostgreSQL",
    "PATCH": "Patching",
    "SVC": "Services",
    "AUTH": "Accounts",
    "FW": "Firewall and blocking",
    "BAK": "Backups",
}


def display_name(area: str) -> str:
    return DISPLAY_NAMES.get(area, area)


def area_order(area: str) -> int:
    """Reports list areas in the order of ``AREAS``; unknown ones last."""
    return AREAS.index(area) if area in AREAS else len(AREAS)


def described(area: str) -> str:
    """``WEB (Apache)``; ``SSH`` when both names are the same."""
    name = display_name(area)
    return area if name == area else f"{area} ({name})"
