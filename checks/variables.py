"""Policy variables in words: how a value reads in a title or report, how a user sets one."""

from __future__ import annotations

import ipaddress
from typing import Any

_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def as_text(kind: str, value: Any) -> str:
    """A value as a person would write it: ``4``, ``26h``, ``10.0.0.0/8,192.0.2.0/24``."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(as_text(kind, item) for item in value)
    if kind == "duration" and isinstance(value, int | float):
        return duration_text(float(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def duration_text(seconds: float) -> str:
    """``93600`` -> ``26h``: the largest unit that divides it, as the policy author wrote it."""
    if seconds <= 0 or not float(seconds).is_integer():
        return f"{seconds:g}s"
    unit, size = next((unit, size) for unit, size in _UNITS if seconds % size == 0)
    return f"{int(seconds // size)}{unit}"


def as_json(value: Any) -> Any:
    """A value for a JSON report: networks as text, tuples as lists."""
    if isinstance(value, list | tuple):
        return [as_json(item) for item in value]
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    return value


def how_to_set(name: str, example: str = "VALUE") -> str:
    """Where a sysadmin sets a policy variable: the command line or the agent config."""
    return f"--var {name}={example} or audit.vars.{name} in the agent config"
