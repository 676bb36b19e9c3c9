"""Applicability conditions (``when:``): a check that does not apply is skipped with the reason.

A ``when`` is a mapping (every key must hold) or a list of such mappings (every item must hold).
Conditions are data, evaluated against the Host and the policy's variables; nothing is run.

``installed: postgresql`` (or apache, sshd, apt, unattended-upgrades) holds when a piece of
software is on the host however it got there: its Debian package, its configuration file
(built from source, another distribution's packages, a container image without a dpkg
database), or on a live host its running daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from checks.hosts import DPKG_STATUS, Host, HostError
from checks.parsers.apache import SERVER_ROOT as APACHE_ROOT
from checks.parsers.apt import PARTS_DIR as APT_PARTS
from checks.parsers.apt_sources import SOURCE_PARTS, SOURCES_LIST
from checks.parsers.postgres import CONFIG_GLOBS as POSTGRES_CONFIGS
from checks.parsers.postgres import SERVER_PROCESSES as POSTGRES_PROCESSES
from checks.parsers.sshd import DEFAULT_CONFIG as SSHD_CONFIG
from checks.variables import how_to_set
from checks.yamlsource import LineDict, LineList, Problem

if TYPE_CHECKING:
    from checks.policy import Variable

CONDITION_KINDS = (
    "package",
    "any_package",
    "file",
    "any_file",
    "installed",
    "var_set",
    "var_equals",
    "live",
)


@dataclass(frozen=True)
class Component:
    """What shows that a piece of software is on a host: any one of these is enough."""

    title: str
    packages: tuple[str, ...]  # Debian packages
    files: tuple[str, ...]  # configuration files (globs) the checks read
    processes: tuple[str, ...] = ()  # names of its daemon, looked for on live hosts only


#: ``installed:`` names. The files are the ones the check types read, so a check applies
#: exactly when it has something to judge.
COMPONENTS = {
    "postgresql": Component(
        "PostgreSQL", ("postgresql-common",), POSTGRES_CONFIGS, POSTGRES_PROCESSES
    ),
    "apache": Component("Apache", ("apache2",), (f"{APACHE_ROOT}/apache2.conf",), ("apache2",)),
    "sshd": Component("OpenSSH server", ("openssh-server",), (SSHD_CONFIG,), ("sshd",)),
    "apt": Component(
        "APT",
        ("apt",),
        (f"{APT_PARTS}/*", SOURCES_LIST, f"{SOURCE_PARTS}/*", DPKG_STATUS),
    ),
    # the program, not its configuration: a removed package leaves 50unattended-upgrades
    "unattended-upgrades": Component(
        "unattended-upgrades", ("unattended-upgrades",), ("/usr/bin/unattended-upgrade",)
    ),
}


class UndecidableCondition(Exception):
    """The host could not tell whether the check applies (e.g. dpkg status unreadable)."""


@dataclass(frozen=True)
class Condition:
    kind: str
    value: Any

    def unmet_reason(self, host: Host, variables: dict[str, Any]) -> str | None:
        """None when the condition holds, else why the check does not apply."""
        if self.kind in ("package", "any_package"):
            names = [self.value] if self.kind == "package" else list(self.value)
            try:
                installed = host.packages()
            except HostError as exc:
                raise UndecidableCondition(f"cannot list installed packages: {exc}") from exc
            if not any(name in installed for name in names):
                return f"{' or '.join(names)} not installed"
            return None
        if self.kind in ("file", "any_file"):
            patterns = [self.value] if self.kind == "file" else list(self.value)
            if _any_file(host, patterns):
                return None
            return f"{' or '.join(patterns)} not present"
        if self.kind == "installed":
            return _component_missing(COMPONENTS[self.value], host)
        if self.kind == "var_set":
            value = variables.get(self.value)
            if value not in (None, "", [], ()):
                return None
            return f"variable {self.value} is not set ({how_to_set(self.value)})"
        if self.kind == "var_equals":
            for name, expected in self.value.items():
                if str(variables.get(name)) != str(expected):
                    return f"variable {name} is {variables.get(name)!r}, not {expected!r}"
            return None
        if self.kind == "live":
            if bool(self.value) and not host.is_live:
                return "needs a running system (not available when auditing a directory tree)"
            return None
        raise AssertionError(self.kind)


def _any_file(host: Host, patterns: list[str] | tuple[str, ...]) -> bool:
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            if host.glob(pattern):
                return True
        elif host.exists(pattern):
            return True
    return False


def _component_missing(component: Component, host: Host) -> str | None:
    """None when the component shows, else why it does not apply.

    A host without a dpkg database has no packages; one whose database cannot be read
    leaves the question open unless the configuration or the daemon answers it.
    """
    unreadable = None
    try:
        installed = host.packages()
    except HostError as exc:
        installed = {}
        if host.lexists(DPKG_STATUS):
            unreadable = exc
    if any(name in installed for name in component.packages):
        return None
    if _any_file(host, component.files):
        return None
    running = host.is_live and component.processes
    if running and any(p.name in component.processes for p in host.processes()):
        return None
    if unreadable is not None:
        raise UndecidableCondition(f"cannot list installed packages: {unreadable}")
    daemon = f", no {'/'.join(component.processes)} process" if host.is_live else ""
    return (
        f"{component.title} not found: {' or '.join(component.packages)} not installed, "
        f"no {' or '.join(component.files)}{daemon}"
    )


def parse_conditions(
    raw: Any, file: str, field: str, line: int, variables: dict[str, Variable]
) -> tuple[tuple[Condition, ...], list[Problem]]:
    if raw is None:
        return (), []
    items = raw if isinstance(raw, LineList) else [raw]
    conditions: list[Condition] = []
    problems: list[Problem] = []
    for item in items:
        if not isinstance(item, LineDict):
            problems.append(
                Problem(file, line, field, "must be a mapping such as {package: apache2}")
            )
            continue
        for kind, value in item.items():
            where = f"{field}.{kind}"
            key_line = item.line_of(kind)
            if kind not in CONDITION_KINDS:
                problems.append(
                    Problem(
                        file,
                        key_line,
                        where,
                        f"unknown condition (known: {', '.join(CONDITION_KINDS)})",
                    )
                )
                continue
            problem = _check_value(kind, value, variables)
            if problem:
                problems.append(Problem(file, key_line, where, problem))
                continue
            if kind in ("any_package", "any_file"):
                value = tuple(str(v) for v in value)
            conditions.append(Condition(kind, value))
    return tuple(conditions), problems


def _check_value(kind: str, value: Any, variables: dict[str, Variable]) -> str | None:
    if kind in ("package", "file"):
        return None if _is_name(value) else "expects a name (text without NUL characters)"
    if kind in ("any_package", "any_file"):
        ok = isinstance(value, list) and value and all(map(_is_name, value))
        return None if ok else "expects a list of names (text without NUL characters)"
    if kind == "installed":
        known = isinstance(value, str) and value in COMPONENTS
        return None if known else f"expects one of {', '.join(COMPONENTS)}"
    if kind == "var_set":
        if not isinstance(value, str):
            return "expects the name of a variable"
        if value not in variables:
            return f"unknown variable {value!r}"
        return None
    if kind == "var_equals":
        if not isinstance(value, dict) or not value:
            return "expects a mapping {variable: value}"
        unknown = [name for name in value if name not in variables]
        return f"unknown variable {unknown[0]!r}" if unknown else None
    if kind == "live":
        return None if isinstance(value, bool) else "expects true or false"
    return None


def _is_name(value: Any) -> bool:
    """A package name or path: non-empty text; a NUL could never reach the file system."""
    return isinstance(value, str) and bool(value) and "\0" not in value
