"""Load a YAML policy into typed, validated objects.

Every problem names file, line and field; loading reports all problems at once so a policy
author fixes a file in one pass. Nothing in a policy is executed: values are data, command
checks are argv lists, and ``${name}`` only substitutes a declared variable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks.conditions import CONDITION_KINDS, Condition, parse_conditions
from checks.params import Param, convert, validate_params
from checks.params import _Invalid as InvalidValue
from checks.result import Severity
from checks.types import REGISTRY
from checks.types.base import CheckType
from checks.variables import as_text
from checks.yamlsource import InputError, LineDict, LineList, Problem, load_yaml

AREAS = ("SSH", "TLS", "WEB", "PHP", "PG", "PATCH", "SVC", "AUTH", "FILE", "LOG", "FW", "BAK")
CHECK_ID = re.compile(r"^[A-Z][A-Z0-9]*-(?P<area>[A-Z]+)-\d{3}$")
_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

POLICY_KEYS = {"id", "title", "version", "description", "variables", "checks"}
CHECK_KEYS = {
    "id",
    "title",
    "severity",
    "rationale",
    "remediation",
    "references",
    "when",
    "type",
    "params",
}
REQUIRED_CHECK_KEYS = ("id", "title", "severity", "type")
VARIABLE_KINDS = ("str", "int", "number", "bool", "choice", "cidr_list", "str_list", "duration")


@dataclass(frozen=True)
class Variable:
    name: str
    kind: str
    default: Any
    choices: tuple[str, ...] = ()
    description: str = ""

    def parse(self, value: Any) -> Any:
        """Convert a value given on the command line (text) or in a config file (YAML)."""
        if value is None:
            return None
        if isinstance(value, str) and self.kind in ("cidr_list", "str_list"):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, str) and self.kind in ("int", "number"):
            try:
                value = float(value) if self.kind == "number" else int(value)
            except ValueError as exc:
                raise InvalidValue(f"{value!r} is not a number") from exc
        elif isinstance(value, str) and self.kind == "bool":
            if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise InvalidValue(f"{value!r} is not true or false")
            value = value.lower() in ("true", "yes", "1")
        converted = convert(Param(self.kind, choices=self.choices), value)
        return list(converted) if isinstance(converted, tuple) else converted


@dataclass(frozen=True)
class Origin:
    """Where a variable's value was set (``--var``, or a config file's line), so a problem
    with the value points there and not at the policy."""

    file: str = "--var"
    line: int = 0
    field: str = ""  # empty: the variable's name


@dataclass(frozen=True)
class Check:
    """One check of a policy, ready to run."""

    id: str
    title: str
    area: str
    severity: Severity
    rationale: str
    remediation: str
    references: tuple[str, ...]
    conditions: tuple[Condition, ...]
    type_name: str
    implementation: CheckType
    file: str
    line: int


@dataclass(frozen=True)
class Policy:
    id: str
    title: str
    version: str
    description: str
    variables: dict[str, Variable]
    values: dict[str, Any]
    checks: tuple[Check, ...]
    file: str


def load_policy(
    path: Path | str,
    overrides: Mapping[str, Any] | None = None,
    origins: Mapping[str, Origin] | None = None,
) -> Policy:
    """Load and validate one policy; raise InputError listing every problem. ``origins``
    says where each override was set (default: ``--var``)."""
    file = str(path)
    document = load_yaml(path)
    problems: list[Problem] = []
    if not isinstance(document, LineDict):
        raise InputError(
            [Problem(file, 1, "", "a policy is a YAML mapping with id, title, checks")]
        )
    _unknown_keys(document, POLICY_KEYS, file, "", problems)
    for key in ("id", "title", "checks"):
        if key not in document:
            problems.append(Problem(file, document.line, key, "is required"))

    variables = _load_variables(document.get("variables"), file, problems)
    values = _resolve_values(variables, overrides or {}, origins or {}, problems)
    checks = _load_checks(document.get("checks"), file, variables, values, problems)
    if problems:
        raise InputError(problems)
    return Policy(
        id=str(document["id"]),
        title=str(document["title"]),
        version=str(document.get("version", "")),
        description=str(document.get("description", "")),
        variables=variables,
        values=values,
        checks=tuple(checks),
        file=file,
    )


def load_policies(
    paths: Iterable[Path | str],
    overrides: Mapping[str, Any] | None = None,
    origins: Mapping[str, Origin] | None = None,
) -> list[Policy]:
    """Load several policies; check IDs must be unique across all of them."""
    policies: list[Policy] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            policies.append(load_policy(path, overrides, origins))
        except InputError as exc:
            problems.extend(exc.problems)
    # a policy that failed to load may declare the variable: no false "undeclared" then
    every_policy_loaded = not problems
    seen: dict[str, Check] = {}
    for policy in policies:
        for check in policy.checks:
            if check.id in seen:
                first = seen[check.id]
                problems.append(
                    Problem(
                        check.file,
                        check.line,
                        "id",
                        f"duplicate check ID {check.id} (also at {first.file}:{first.line})",
                    )
                )
            seen.setdefault(check.id, check)
    if overrides and every_policy_loaded:
        declared = sorted({name for policy in policies for name in policy.variables})
        for name in overrides:
            if name not in declared:
                known = f"declared: {', '.join(declared)}" if declared else "none is declared"
                message = f"no loaded policy declares this variable ({known})"
                problems.append(_at(origins or {}, name, message))
    if problems:
        raise InputError(problems)
    return policies


def _unknown_keys(
    mapping: LineDict, allowed: set[str], file: str, prefix: str, problems: list[Problem]
) -> None:
    for key in mapping:
        if key not in allowed:
            field = f"{prefix}{key}"
            problems.append(
                Problem(
                    file,
                    mapping.line_of(key),
                    field,
                    f"unknown key (allowed: {', '.join(sorted(allowed))})",
                )
            )


def _load_variables(raw: Any, file: str, problems: list[Problem]) -> dict[str, Variable]:
    variables: dict[str, Variable] = {}
    if raw is None:
        return variables
    if not isinstance(raw, LineDict):
        problems.append(Problem(file, getattr(raw, "line", 0), "variables", "must be a mapping"))
        return variables
    for name, spec in raw.items():
        field = f"variables.{name}"
        line = raw.line_of(name)
        if not isinstance(spec, LineDict):
            problems.append(Problem(file, line, field, "must be a mapping with type and default"))
            continue
        _unknown_keys(
            spec, {"type", "default", "choices", "description"}, file, f"{field}.", problems
        )
        kind = spec.get("type", "str")
        if kind not in VARIABLE_KINDS:
            problems.append(
                Problem(
                    file,
                    spec.line_of("type"),
                    f"{field}.type",
                    f"unknown type {kind!r} (known: {', '.join(VARIABLE_KINDS)})",
                )
            )
            continue
        raw_choices = spec.get("choices") or []
        if not isinstance(raw_choices, list) or not all(map(_is_scalar, raw_choices)):
            problems.append(
                Problem(
                    file, spec.line_of("choices"), f"{field}.choices", "must be a list of values"
                )
            )
            continue
        choices = tuple(str(c) for c in raw_choices)
        if kind == "choice" and not choices:
            problems.append(Problem(file, spec.line, f"{field}.choices", "a choice needs choices"))
            continue
        variable = Variable(name, kind, None, choices, str(spec.get("description", "")))
        try:
            default = variable.parse(spec.get("default"))
        except InvalidValue as exc:
            problems.append(Problem(file, spec.line_of("default"), f"{field}.default", str(exc)))
            continue
        variables[name] = Variable(name, kind, default, choices, variable.description)
    return variables


def _resolve_values(
    variables: dict[str, Variable],
    overrides: Mapping[str, Any],
    origins: Mapping[str, Origin],
    problems: list[Problem],
) -> dict[str, Any]:
    values = {name: var.default for name, var in variables.items()}
    for name, raw in overrides.items():
        if name not in variables:
            continue  # load_policies reports variables no policy declares
        try:
            values[name] = variables[name].parse(raw)
        except InvalidValue as exc:
            problems.append(_at(origins, name, str(exc)))
    return values


def _at(origins: Mapping[str, Origin], name: str, message: str) -> Problem:
    """A problem with the value of variable ``name``, located where it was set."""
    origin = origins.get(name, Origin())
    return Problem(origin.file, origin.line, origin.field or name, message)


def _load_checks(
    raw: Any,
    file: str,
    variables: dict[str, Variable],
    values: dict[str, Any],
    problems: list[Problem],
) -> list[Check]:
    if raw is None:
        return []
    if not isinstance(raw, LineList):
        problems.append(
            Problem(file, getattr(raw, "line", 0), "checks", "must be a list of checks")
        )
        return []
    checks: list[Check] = []
    ids: dict[str, int] = {}
    for index, entry in enumerate(raw):
        where = f"checks[{index}]"
        if not isinstance(entry, LineDict):
            problems.append(Problem(file, raw.line_of(index), where, "must be a mapping"))
            continue
        check_id = entry.get("id")
        if isinstance(check_id, str):
            where = check_id
        count_before = len(problems)
        check = _load_check(entry, where, file, variables, values, problems)
        if isinstance(check_id, str):
            if check_id in ids:
                problems.append(
                    Problem(
                        file,
                        entry.line_of("id"),
                        f"{where}.id",
                        f"duplicate check ID (first at line {ids[check_id]})",
                    )
                )
            ids.setdefault(check_id, entry.line_of("id"))
        if check is not None and len(problems) == count_before:
            checks.append(check)
    return checks


def _load_check(
    entry: LineDict,
    where: str,
    file: str,
    variables: dict[str, Variable],
    values: dict[str, Any],
    problems: list[Problem],
) -> Check | None:
    _unknown_keys(entry, CHECK_KEYS, file, f"{where}.", problems)
    for key in REQUIRED_CHECK_KEYS:
        if key not in entry:
            problems.append(Problem(file, entry.line, f"{where}.{key}", "is required"))
    if any(key not in entry for key in REQUIRED_CHECK_KEYS):
        return None

    check_id = str(entry["id"])
    match = CHECK_ID.match(check_id)
    if not match or match.group("area") not in AREAS:
        problems.append(
            Problem(
                file,
                entry.line_of("id"),
                f"{where}.id",
                f"{check_id!r} is not an ID like LAPP-SSH-001 (areas: {', '.join(AREAS)})",
            )
        )
        return None
    try:
        severity = Severity(str(entry["severity"]))
    except ValueError:
        problems.append(
            Problem(
                file,
                entry.line_of("severity"),
                f"{where}.severity",
                f"{entry['severity']!r} is not one of low, medium, high, critical",
            )
        )
        return None
    type_name = entry["type"]
    implementation_class = REGISTRY.get(type_name) if isinstance(type_name, str) else None
    if implementation_class is None:
        problems.append(
            Problem(
                file,
                entry.line_of("type"),
                f"{where}.type",
                f"unknown check type {type_name!r} (known: {', '.join(sorted(REGISTRY))})",
            )
        )
        return None

    raw_params = entry.get("params")
    substituted = _substitute(
        raw_params, values, variables, file, entry.line_of("params"), f"{where}.params", problems
    )
    params, param_problems = validate_params(
        implementation_class.schema, substituted, file, f"{where}.params", entry.line_of("params")
    )
    problems.extend(param_problems)
    conditions, condition_problems = parse_conditions(
        entry.get("when"), file, f"{where}.when", entry.line_of("when"), variables
    )
    problems.extend(condition_problems)
    references = entry.get("references", [])
    if not isinstance(references, list):
        problems.append(
            Problem(file, entry.line_of("references"), f"{where}.references", "must be a list")
        )
        references = []
    for reference in [r for r in references if not isinstance(r, str | int | float)]:
        # "ref (a: b)" in a flow list is a mapping: quote it (checks.coverage reads strings)
        message = f"{reference!r} is not text (quote a reference holding ': ' or ', ')"
        problems.append(Problem(file, entry.line_of("references"), f"{where}.references", message))
    references = [r for r in references if isinstance(r, str | int | float)]
    title = _with_values(str(entry["title"]), values, variables)
    for name in _VAR_REF.findall(title):
        message = f"unknown variable ${{{name}}}"
        problems.append(Problem(file, entry.line_of("title"), f"{where}.title", message))
    if param_problems or condition_problems:
        return None
    return Check(
        id=check_id,
        title=title,
        area=match.group("area"),
        severity=severity,
        rationale=_folded(entry.get("rationale", "")),
        # a fix may quote another tool's ${...} (apt's ${distro_codename}): left as written
        remediation=_with_values(_folded(entry.get("remediation", "")), values, variables),
        references=tuple(str(r) for r in references),
        conditions=conditions,
        type_name=type_name,
        implementation=implementation_class(params),
        file=file,
        line=entry.line,
    )


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _folded(text: Any) -> str:
    return " ".join(str(text).split())


def _substitute(
    value: Any,
    values: dict[str, Any],
    variables: dict[str, Variable],
    file: str,
    line: int,
    field: str,
    problems: list[Problem],
) -> Any:
    """Replace ``${name}`` by declared variables; a whole-value reference keeps the type."""
    if isinstance(value, str):
        whole = _VAR_REF.fullmatch(value)
        for name in _VAR_REF.findall(value):
            if name not in variables:
                problems.append(Problem(file, line, field, f"unknown variable ${{{name}}}"))
                return value
        if whole:
            return values[whole.group(1)]
        return _with_values(value, values, variables)
    if isinstance(value, LineDict):
        result = LineDict()
        result.line, result.key_lines = value.line, value.key_lines
        for key, item in value.items():
            substituted = _substitute(
                item, values, variables, file, value.line_of(key), f"{field}.{key}", problems
            )
            if substituted is not None or item is None:
                result[key] = substituted  # an unset variable leaves the parameter unset
        return result
    if isinstance(value, LineList):
        result_list = LineList(
            _substitute(item, values, variables, file, value.line_of(i), f"{field}[{i}]", problems)
            for i, item in enumerate(value)
        )
        result_list.line, result_list.item_lines = value.line, value.item_lines
        return result_list
    return value


def _with_values(text: str, values: dict[str, Any], variables: dict[str, Variable]) -> str:
    """``${name}`` of each declared variable replaced by its value as a person writes it
    (``4``, ``26h``, ``10.0.0.0/8,192.0.2.0/24``); other ``${...}`` stay as written."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in variables:
            return match.group(0)
        return as_text(variables[name].kind, values.get(name))

    return _VAR_REF.sub(value, text)


__all__ = [
    "AREAS",
    "CONDITION_KINDS",
    "Check",
    "Origin",
    "Policy",
    "Variable",
    "load_policies",
    "load_policy",
]
