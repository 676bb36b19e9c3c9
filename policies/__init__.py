"""The policies and detection rules that ship with lappguard, installed as package data."""

import os
from pathlib import Path

POLICY_DIR = Path(__file__).resolve().parent
DETECT_DIR = POLICY_DIR / "detect"


def builtin_policy(name: str) -> Path:
    """Path of a shipped policy by short name (``lapp-baseline``) or file name."""
    stem = name.removesuffix(".yaml")
    return POLICY_DIR / f"{stem}.yaml"


def policy_path(name: str) -> Path:
    """A policy file path as given, or the file of a shipped policy by name."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and (path.exists() or os.sep in name):
        return path
    shipped = builtin_policy(name)
    return shipped if shipped.exists() else path
