"""Typed parameters of check types, validated with file:line:field errors before anything runs."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from checks.expect import OPERATORS, build_expectation
from checks.regexsafety import UnsafePattern, compile_safe
from checks.yamlsource import LineDict, Problem, line_of

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float) -> float:
    """``90``, ``10m``, ``26h``, ``7d`` -> seconds. Raises ValueError on anything else."""
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 10m, 26h or 7d")
    if isinstance(text, int | float):
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as 10m, 26h or 7d, got {_brief(text)}")
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{_brief(text)} is not a duration such as 10m, 26h or 7d")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


@dataclass(frozen=True)
class Param:
    """One parameter: its kind decides how the YAML value is checked and converted.

    Kinds: str, int, number, bool, str_list, choice, regex, expect, mode, duration,
    cidr_list, mapping.
    """

    kind: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    help: str = ""


class _Invalid(Exception):
    pass


def validate_params(
    schema: dict[str, Param], raw: Any, file: str, field: str, line: int
) -> tuple[dict[str, Any], list[Problem]]:
    """Check ``raw`` against ``schema``; return converted values and every problem found."""
    problems: list[Problem] = []
    if raw is None:
        raw = LineDict()
    if not isinstance(raw, dict):
        return {}, [Problem(file, line, field, "must be a mapping of parameters")]
    values: dict[str, Any] = {}
    for key in raw:
        if key not in schema:
            known = ", ".join(sorted(schema)) or "none"
            problems.append(
                Problem(
                    file, line_of(raw, key), f"{field}.{key}", f"unknown parameter (known: {known})"
                )
            )
    for name, param in schema.items():
        where = f"{field}.{name}"
        if name not in raw:
            if param.required:
                problems.append(Problem(file, line_of(raw, None) or line, where, "is required"))
            values[name] = param.default
            continue
        try:
            values[name] = convert(param, raw[name])
        except _Invalid as exc:
            problems.append(Problem(file, line_of(raw, name), where, str(exc)))
    return values, problems


def convert(param: Param, value: Any) -> Any:
    kind = param.kind
    if kind == "str":
        return _text(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected a whole number, got {_brief(value)}")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"expected a number, got {_brief(value)}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _Invalid(f"expected true or false, got {_brief(value)}")
        return value
    if kind == "str_list":
        items = value if isinstance(value, list) else [value]
        return tuple(_text(v) for v in items)
    if kind == "choice":
        text = _text(value)
        if text not in param.choices:
            raise _Invalid(f"{_brief(text)} is not one of {', '.join(param.choices)}")
        return text
    if kind == "regex":
        return _regex(value)
    if kind == "expect":
        return _expectation(value)
    if kind == "mode":
        text = _text(value)
        if not re.fullmatch(r"0?[0-7]{3,4}", text):
            raise _Invalid(f"{_brief(text)} is not an octal mode such as '0644' (quote it)")
        return int(text, 8)
    if kind == "duration":
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise _Invalid(str(exc)) from exc
    if kind == "cidr_list":
        items = value if isinstance(value, list) else [value]
        networks = []
        for item in items:
            try:
                networks.append(ipaddress.ip_network(_text(item), strict=False))
            except ValueError as exc:
                raise _Invalid(f"{_brief(item)} is not a network: {exc}") from exc
        return tuple(networks)
    if kind == "mapping":
        if not isinstance(value, dict):
            raise _Invalid("expected a mapping")
        return value
    raise AssertionError(f"unknown parameter kind {kind}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        raise _Invalid(
            f"YAML read this as the boolean {value}: quote it ('yes', 'no', 'on', 'off')"
        )
    if value is None or isinstance(value, dict | list):
        raise _Invalid(f"expected a text value, got {_brief(value)}")
    text = str(value)
    if "\0" in text:
        raise _Invalid("contains a NUL character (no path, name or pattern holds one)")
    return text


def _brief(value: Any) -> str:
    """A value as shown in a message: YAML aliases can make a repr enormous."""
    shown = repr(value)
    return shown if len(shown) <= 80 else f"{shown[:77]}..."


def _regex(value: Any) -> re.Pattern:
    try:
        return compile_safe(_text(value))
    except UnsafePattern as exc:
        raise _Invalid(str(exc)) from exc


def _expectation(value: Any):
    if not isinstance(value, dict) or not value:
        raise _Invalid("expected a mapping of operators, e.g. {equals: 'no'}")
    for key in value:
        if key not in OPERATORS:
            raise _Invalid(f"unknown operator {_brief(key)} (known: {', '.join(OPERATORS)})")
    for key in ("equals", "matches", "not_matches"):
        if key in value:
            _text(value[key])
    for key in ("one_of", "not_one_of"):
        if key in value:
            if not isinstance(value[key], list):
                raise _Invalid(f"{key} takes a list")
            for item in value[key]:
                _text(item)
    for key in ("min", "max"):
        if key in value and (
            isinstance(value[key], bool) or not isinstance(value[key], int | float)
        ):
            raise _Invalid(f"{key} takes a number")
    try:
        return build_expectation(value)
    except UnsafePattern as exc:
        raise _Invalid(str(exc)) from exc
