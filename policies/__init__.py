"""The policies and detection rules that ship with lappguard, installed as package data."""

from pathlib import Path

POLICY_DIR = Path(__file__).resolve().parent
DETECT_DIR = POLICY_DIR / "detect"


def builtin_policy(name: str) -> Path:
    """Path of a shipped policy by short name (``lapp-baseline``) or file name."""
    stem = name.removesuffix(".yaml")
    return POLICY_DIR / f"{stem}.yaml"
