"""Which hosts to audit, and their policy variables: target specs and inventory files.

A target is ``[user@]host[:port]``. An inventory file is one of:

- a plain list, one target a line (``#`` starts a comment);
- a YAML list of targets or of mappings (``host``, ``port``, ``user``, ``vars``);
- an Ansible inventory, INI or YAML: groups, ``children``, group and host variables,
  ``ansible_host``, ``ansible_port``, ``ansible_user``; a host's variables are those of
  ``all``, then of its groups (parents before children), then its own, as Ansible merges them.

Variables that a policy declares (``office_networks``, ...) become that host's policy
variables; the rest (an Ansible inventory has many) are ignored. Every error names file
and line. ``select`` narrows hosts by name or group, as ``ansible --limit`` does.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks.ssh_connect import split_destination
from checks.yamlsource import InputError, LineDict, LineList, Problem, load_yaml

_SECTION = re.compile(r"^\[([^\]:]+)(?::(vars|children))?\]\s*$")
_RANGE = re.compile(r"\[([0-9]+|[a-z]):([0-9]+|[a-z])\]")
_CONNECTION_VARS = ("ansible_host", "ansible_port", "ansible_user")


@dataclass(frozen=True)
class InventoryHost:
    """One host to audit: how to reach it, its groups and its variables."""

    name: str  # as the report names it
    address: str  # what is connected to (looked up in the SSH config first)
    port: int | None = None  # None: the SSH config's, else 22
    user: str | None = None  # None: the SSH config's, else the local user
    groups: tuple[str, ...] = ()
    variables: dict[str, Any] = field(default_factory=dict, compare=False)
    source: str = ""  # file:line where it is defined


def parse_target(text: str, source: str = "") -> InventoryHost:
    """``[user@]host[:port]`` -> a host named as written without the user."""
    user, host, port = split_destination(text.strip())
    name = host if port is None else f"{host}:{port}"
    return InventoryHost(name, host, port, user, source=source)


def load_inventory(path: Path | str) -> list[InventoryHost]:
    """Every host of an inventory file, in file order; raises InputError with file:line."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(file, 0, "", f"cannot read: {exc}")]) from exc
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    if any(_SECTION.match(line) or "=" in line for line in lines):
        return _Inventory(file).from_ini(text)
    document = load_yaml(file, text)
    if isinstance(document, LineDict):
        return _Inventory(file).from_yaml(document)
    if isinstance(document, LineList):
        return _from_yaml_list(document, file)
    return _from_plain_list(lines, file)


def select(hosts: Sequence[InventoryHost], limit: Iterable[str]) -> list[InventoryHost]:
    """Hosts matching any pattern in ``limit`` (a host name, a group, shell wildcards),
    minus those matching a ``!pattern``. An empty limit keeps every host."""
    patterns = [p.strip() for item in limit for p in item.split(",") if p.strip()]
    wanted = [p for p in patterns if not p.startswith("!")]
    unwanted = [p[1:] for p in patterns if p.startswith("!")]

    def matches(host: InventoryHost, pattern: str) -> bool:
        names = (host.name, host.address, *host.groups)
        return any(fnmatch.fnmatchcase(name, pattern) for name in names)

    return [
        host
        for host in hosts
        if (not wanted or any(matches(host, p) for p in wanted))
        and not any(matches(host, p) for p in unwanted)
    ]


# --- plain and YAML lists ----------------------------------------------------------------


def _from_plain_list(lines: list[str], file: str) -> list[InventoryHost]:
    hosts, problems = [], []
    for number, line in enumerate(lines, 1):
        if line:
            try:
                hosts.append(parse_target(line, f"{file}:{number}"))
            except ValueError as exc:
                problems.append(Problem(file, number, "", str(exc)))
    return _checked(hosts, problems)


def _from_yaml_list(document: LineList, file: str) -> list[InventoryHost]:
    hosts, problems = [], []
    for index, entry in enumerate(document):
        line, where = document.line_of(index), f"[{index}]"
        try:
            if isinstance(entry, str):
                hosts.append(parse_target(entry, f"{file}:{line}"))
                continue
            if not isinstance(entry, LineDict) or not isinstance(entry.get("host"), str):
                raise ValueError("a target string, or a mapping with host (and port, user, vars)")
            unknown = set(entry) - {"host", "port", "user", "vars"}
            if unknown:
                raise ValueError(
                    f"unknown key {sorted(unknown)[0]!r} (allowed: host, port, user, vars)"
                )
            target = parse_target(entry["host"], f"{file}:{line}")
            variables = entry.get("vars") or {}
            if not isinstance(variables, dict):
                raise ValueError("vars must be a mapping")
            port = _port(entry.get("port", target.port))
            hosts.append(
                InventoryHost(
                    target.address if port is None else f"{target.address}:{port}",
                    target.address,
                    port,
                    _text(entry.get("user", target.user)),
                    variables=dict(variables),
                    source=target.source,
                )
            )
        except ValueError as exc:
            problems.append(Problem(file, line, where, str(exc)))
    return _checked(hosts, problems)


# --- Ansible inventories -----------------------------------------------------------------


class _Inventory:
    """Groups, their children and variables, and hosts, as Ansible builds them."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []
        self.order: list[str] = []  # host names, first definition first
        self.defined: dict[str, str] = {}  # host -> file:line
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {"all": set(), "ungrouped": set()}
        self.children: dict[str, set[str]] = {"all": set()}
        self.group_vars: dict[str, dict[str, Any]] = {}

    def group(self, name: str) -> None:
        self.members.setdefault(name, set())
        self.children.setdefault(name, set())

    def add_host(self, name: str, group: str, variables: dict[str, Any], line: int) -> None:
        if name not in self.defined:
            self.order.append(name)
            self.defined[name] = f"{self.file}:{line}"
        self.group(group)
        self.members[group].add(name)
        self.host_vars.setdefault(name, {}).update(variables)

    # INI

    def from_ini(self, text: str) -> list[InventoryHost]:
        section, kind = "ungrouped", "hosts"
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            header = _SECTION.match(line)
            if header:
                section, kind = header.group(1).strip(), header.group(2) or "hosts"
                self.group(section)
                continue
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:
                self.problems.append(Problem(self.file, number, section, f"unreadable: {exc}"))
                continue
            if not words:
                continue
            if kind == "children":
                self.group(words[0])
                self.children[section].add(words[0])
            elif kind == "vars":
                key, sep, value = line.partition("=")
                if not sep or not key.strip():
                    self.problems.append(Problem(self.file, number, section, "expected name=value"))
                    continue
                self.group_vars.setdefault(section, {})[key.strip()] = _ini_value(value.strip())
            else:
                self._ini_host(words, section, number)
        return self.hosts()

    def _ini_host(self, words: list[str], section: str, number: int) -> None:
        variables = {}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if not sep or not key:
                self.problems.append(
                    Problem(self.file, number, words[0], f"{word!r} is not name=value")
                )
                return
            variables[key] = _ini_value(value)
        try:
            names = _expand(words[0])
        except ValueError as exc:
            self.problems.append(Problem(self.file, number, words[0], str(exc)))
            return
        for name in names:
            self.add_host(name, section, variables, number)

    # YAML

    def from_yaml(self, document: LineDict) -> list[InventoryHost]:
        for name, body in document.items():
            self._yaml_group(str(name), body, document.line_of(name), f"{name}")
        return self.hosts()

    def _yaml_group(self, name: str, body: Any, line: int, where: str) -> None:
        self.group(name)
        if body is None:
            return
        if not isinstance(body, LineDict):
            self.problems.append(Problem(self.file, line, where, "a group is a mapping"))
            return
        for key in body:
            if key not in ("hosts", "children", "vars"):
                self.problems.append(
                    Problem(self.file, body.line_of(key), f"{where}.{key}",
                            "unknown key (allowed: hosts, children, vars)")
                )  # fmt: skip
        variables = body.get("vars")
        if isinstance(variables, LineDict):
            self.group_vars.setdefault(name, {}).update(variables)
        elif variables is not None:
            self.problems.append(
                Problem(self.file, body.line_of("vars"), f"{where}.vars", "must be a mapping")
            )
        hosts = body.get("hosts")
        if isinstance(hosts, LineDict):
            for host, host_vars in hosts.items():
                host_line = hosts.line_of(host)
                if host_vars is not None and not isinstance(host_vars, LineDict):
                    self.problems.append(
                        Problem(self.file, host_line, f"{where}.hosts.{host}",
                                "host variables are a mapping")
                    )  # fmt: skip
                    continue
                try:
                    expanded = _expand(str(host))
                except ValueError as exc:
                    self.problems.append(Problem(self.file, host_line, f"{where}.hosts", str(exc)))
                    continue
                for each in expanded:
                    self.add_host(each, name, dict(host_vars or {}), host_line)
        elif hosts is not None:
            self.problems.append(
                Problem(self.file, body.line_of("hosts"), f"{where}.hosts",
                        "hosts are a mapping of names to variables")
            )  # fmt: skip
        children = body.get("children")
        if isinstance(children, LineDict):
            for child, child_body in children.items():
                self.children[name].add(str(child))
                self._yaml_group(
                    str(child), child_body, children.line_of(child), f"{where}.children.{child}"
                )
        elif children is not None:
            self.problems.append(
                Problem(self.file, body.line_of("children"), f"{where}.children",
                        "children are a mapping of group names")
            )  # fmt: skip

    # both

    def hosts(self) -> list[InventoryHost]:
        depth = self._depths()
        result = []
        for name in self.order:
            groups = self._groups_of(name)
            variables: dict[str, Any] = {}
            for group in sorted(groups, key=lambda g: (depth.get(g, 0), g)):
                variables.update(self.group_vars.get(group, {}))
            variables.update(self.host_vars.get(name, {}))
            try:
                port = _port(variables.get("ansible_port"))
            except ValueError as exc:
                line = int(self.defined[name].rsplit(":", 1)[1])
                self.problems.append(Problem(self.file, line, f"{name}.ansible_port", str(exc)))
                continue
            result.append(
                InventoryHost(
                    name=name,
                    address=str(variables.get("ansible_host") or name),
                    port=port,
                    user=_text(variables.get("ansible_user")),
                    groups=tuple(sorted(groups - {"all"})),
                    variables={k: v for k, v in variables.items() if k not in _CONNECTION_VARS},
                    source=self.defined[name],
                )
            )
        return _checked(result, self.problems)

    def _groups_of(self, host: str) -> set[str]:
        """The host's groups with all their ancestors, ``all``, and ``ungrouped`` when it is
        in no group of its own."""
        direct = {group for group, members in self.members.items() if host in members}
        direct -= {"all", "ungrouped"}
        found, pending = set(), list(direct or {"ungrouped"})
        while pending:
            group = pending.pop()
            if group not in found:
                found.add(group)
                pending.extend(self._parents(group))
        return found | {"all"}

    def _parents(self, group: str) -> list[str]:
        return [parent for parent, kids in self.children.items() if group in kids]

    def _depths(self) -> dict[str, int]:
        """Distance from ``all`` (the longest way down): deeper groups' variables win."""
        depth: dict[str, int] = {}

        def walk(group: str, seen: frozenset[str]) -> int:
            if group == "all" or group in seen:  # a cycle is Ansible's error, not a hang
                return 0
            if group not in depth:
                parents = self._parents(group) or ["all"]
                depth[group] = 1 + max(walk(p, seen | {group}) for p in parents)
            return depth[group]

        for group in self.children:
            walk(group, frozenset())
        return depth


def _expand(pattern: str) -> list[str]:
    """Ansible's host ranges: ``www[01:03].example.com``, ``db-[a:c]``."""
    match = _RANGE.search(pattern)
    if not match:
        return [pattern]
    start, end = match.groups()
    head, tail = pattern[: match.start()], pattern[match.end() :]
    if start.isdigit() != end.isdigit():
        raise ValueError(f"{pattern!r}: a range is numbers or letters, not both")
    if start.isdigit():
        width = len(start) if start.startswith("0") else 0
        values = [str(n).zfill(width) for n in range(int(start), int(end) + 1)]
    else:
        values = [chr(c) for c in range(ord(start), ord(end) + 1)]
    if not values:
        raise ValueError(f"{pattern!r}: the range is empty")
    return [name for value in values for name in _expand(f"{head}{value}{tail}")]


def _ini_value(text: str) -> Any:
    """An INI value as Ansible reads it: a quoted string unquoted, lists of ``a,b`` kept as
    text (policy variables split them), everything else as written."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _port(value: Any) -> int | None:
    if value is None:
        return None
    text = str(value)
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{value!r}: a port is 1-65535")
    return int(text)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _checked(hosts: list[InventoryHost], problems: list[Problem]) -> list[InventoryHost]:
    if problems:
        raise InputError(problems)
    return hosts
