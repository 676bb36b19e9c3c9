"""The agent's config file (``/etc/lappguard/agent.yaml``): read, checked, defaults filled in.

Every default works with no file at all. Every problem names file, line and field, all of
them in one pass, so a sysadmin fixes a config in one edit. Unknown keys are errors: a
misspelled ``alowlist:`` silently ignored would leave the office network bannable.

The shape (README, "Configuration", documents each key; ``contrib/agent.yaml`` is a
commented example)::

    state_dir: /var/lib/lappguard
    metrics: {listen: "127.0.0.1:19849", web_config: /etc/lappguard/web.yml}
    firewall: {backend: nftables, nftables: {table: lappguard}}
    allowlist: ["192.0.2.0/24"]
    sources: [{kind: sshd, journal: {unit: ssh.service}}, {kind: sshd, path: /var/log/auth.log}]
    jails: {sshd: {maxretry: 5, findtime: 10m, bantime: 1h, escalate: {factor: 2, max: 7d}}}
    audit: {policies: [lapp-baseline], interval: 1h, vars: {office_networks: [192.0.2.0/24]}}

``variables:`` (top level) is the older spelling of ``audit.vars`` and still accepted.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.bans.jails import (
    DEFAULT_JAILS_FILE,
    JAIL_FIELDS,
    JailConfig,
    Network,
    check_overlaps,
    load_jails,
    missing_fields,
    parse_jail_fields,
    parse_networks,
    with_overrides,
)
from agent.detect.kinds import KINDS
from agent.detect.postgres import POSTGRES_FORMATS
from checks.params import parse_duration
from checks.yamlsource import InputError, LineDict, LineList, Problem, line_of, load_yaml

DEFAULT_CONFIG = Path("/etc/lappguard/agent.yaml")
DEFAULT_STATE_DIR = Path("/var/lib/lappguard")
#: Outside 9100-9999 (Prometheus' exporter range, fully allocated) and below Linux's
#: ephemeral ports, so neither another exporter nor an outgoing connection holds it.
DEFAULT_METRICS_PORT = 19849
SOURCE_KINDS = tuple(KINDS)
FIREWALL_CHOICES = ("auto", "nftables", "ipset", "fail2ban", "dry-run")


@dataclass(frozen=True)
class SourceConfig:
    """One log to follow: a file (path or glob) or a journald unit, and how to read it."""

    kind: str
    path: str | None = None
    journal_unit: str | None = None
    journal_directory: str | None = None  # another machine's or a container's journal
    name: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditConfig:
    policies: tuple[str, ...] = ("lapp-baseline",)
    interval: float = 3600.0
    vars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = f"127.0.0.1:{DEFAULT_METRICS_PORT}"
    web_config: str | None = None


@dataclass(frozen=True)
class FirewallConfig:
    backend: str = "auto"
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentConfig:
    """The effective configuration; ``file`` is None when built from defaults alone."""

    file: str | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    metrics: MetricsConfig = MetricsConfig()
    firewall: FirewallConfig = FirewallConfig()
    allowlist: tuple[Network, ...] = ()
    sources: tuple[SourceConfig, ...] | None = None  # None: discover what this host has
    jails: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # overrides by name
    audit: AuditConfig = AuditConfig()

    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.db"

    def jail_config(self) -> JailConfig:
        """The shipped jails with this config's changes."""
        return with_overrides(load_jails(DEFAULT_JAILS_FILE), self.jails)


def load_config(path: str | Path | None = None) -> AgentConfig:
    """The config at ``path``, or the default file when it exists, or the defaults."""
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return AgentConfig()
        path = DEFAULT_CONFIG
    name = str(path)
    document = load_yaml(path)
    if document is None:
        return AgentConfig(file=name)
    if not isinstance(document, LineDict):
        raise InputError([Problem(name, 1, "", "the config file must be a YAML mapping")])
    reader = _Reader(name)
    config = reader.agent(document)
    if reader.problems:
        raise InputError(reader.problems)
    return config


class _Reader:
    """Walks one config document, collecting every problem instead of stopping at the first."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, container: Any, key: Any, where: str, message: str) -> None:
        self.problems.append(Problem(self.file, line_of(container, key), where, message))

    def known_keys(self, raw: LineDict, keys: tuple[str, ...], where: str) -> None:
        for key in raw:
            if key not in keys:
                place = f"{where}.{key}" if where else str(key)
                self.problem(raw, key, place, f"unknown key (expected one of: {', '.join(keys)})")

    def mapping(self, raw: LineDict, key: str, where: str) -> LineDict | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, LineDict):
            self.problem(raw, key, where, "must be a mapping")
            return None
        return value

    def convert(self, raw: LineDict, key: str, where: str, parse: Callable[[Any], Any]) -> Any:
        """``parse(raw[key])``, or None (with a problem) when it raises ValueError."""
        try:
            return parse(raw[key])
        except (ValueError, TypeError) as exc:
            self.problem(raw, key, where, str(exc))
            return None

    def agent(self, doc: LineDict) -> AgentConfig:
        keys = ("state_dir", "metrics", "firewall", "allowlist", "sources", "jails", "audit",
                "variables")  # fmt: skip
        self.known_keys(doc, keys, "")
        defaults = AgentConfig()
        state_dir = defaults.state_dir
        if "state_dir" in doc:
            state_dir = Path(self.convert(doc, "state_dir", "state_dir", _absolute_path) or ".")
        return AgentConfig(
            file=self.file,
            state_dir=state_dir,
            metrics=self.metrics(doc),
            firewall=self.firewall(doc),
            allowlist=self.networks(doc, "allowlist", "allowlist"),
            sources=self.sources(doc),
            jails=self.jails(doc),
            audit=self.audit(doc),
        )

    def metrics(self, doc: LineDict) -> MetricsConfig:
        raw = self.mapping(doc, "metrics", "metrics")
        if raw is None:
            return MetricsConfig()
        self.known_keys(raw, ("listen", "web_config"), "metrics")
        listen = MetricsConfig.listen
        if "listen" in raw:
            listen = self.convert(raw, "listen", "metrics.listen", parse_listen) or listen
        web_config = None
        if raw.get("web_config") is not None:
            web_config = self.convert(raw, "web_config", "metrics.web_config", _absolute_path)
        return MetricsConfig(listen, web_config)

    def firewall(self, doc: LineDict) -> FirewallConfig:
        from agent.firewall import BACKENDS, backend_class

        raw = self.mapping(doc, "firewall", "firewall")
        if raw is None:
            return FirewallConfig()
        self.known_keys(raw, ("backend", *BACKENDS), "firewall")
        backend = raw.get("backend", "auto")
        if backend not in FIREWALL_CHOICES:
            self.problem(raw, "backend", "firewall.backend",
                         f"{backend!r} is not one of {', '.join(FIREWALL_CHOICES)}")  # fmt: skip
        options: dict[str, dict[str, Any]] = {}
        for name in BACKENDS:
            section = self.mapping(raw, name, f"firewall.{name}")
            if section is None:
                continue
            spec = backend_class(name).options
            self.known_keys(section, tuple(spec), f"firewall.{name}")
            values: dict[str, Any] = {}
            for key, (kind, _default) in spec.items():
                if key in section:
                    value = section[key]
                    if kind is float and isinstance(value, int) and not isinstance(value, bool):
                        value = float(value)
                    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
                        self.problem(section, key, f"firewall.{name}.{key}",
                                     f"must be a {kind.__name__}")  # fmt: skip
                        continue
                    values[key] = value
            options[name] = values
        return FirewallConfig(backend, options)

    def networks(self, raw: LineDict, key: str, where: str) -> tuple[Network, ...]:
        return parse_networks(raw, key, self.file, where, self.problems)

    def sources(self, doc: LineDict) -> tuple[SourceConfig, ...] | None:
        value = doc.get("sources")
        if value is None:
            return None
        if not isinstance(value, LineList):
            self.problem(doc, "sources", "sources", "must be a list")
            return None
        found = []
        for index, raw in enumerate(value):
            where = f"sources[{index}]"
            if not isinstance(raw, LineDict):
                self.problem(value, index, where, "must be a mapping with kind and path or journal")
                continue
            source = self.source(raw, where)
            if source is not None:
                found.append(source)
        return tuple(found)

    def source(self, raw: LineDict, where: str) -> SourceConfig | None:
        self.known_keys(raw, ("kind", "path", "journal", "name", *SOURCE_OPTIONS), where)
        kind = raw.get("kind")
        if kind not in SOURCE_KINDS:
            self.problem(raw, "kind", f"{where}.kind",
                         f"{kind!r} is not one of {', '.join(SOURCE_KINDS)}")  # fmt: skip
            return None
        path, unit, directory = raw.get("path"), None, None
        journal = self.mapping(raw, "journal", f"{where}.journal")
        if journal is not None:
            self.known_keys(journal, ("unit", "directory"), f"{where}.journal")
            unit = journal.get("unit")
            if not isinstance(unit, str) or not unit:
                self.problem(journal, "unit", f"{where}.journal.unit", "a systemd unit name")
                return None
            if "directory" in journal:
                directory = self.convert(journal, "directory", f"{where}.journal.directory",
                                         _absolute_path)  # fmt: skip
        if (path is None) == (unit is None):
            self.problem(raw, "kind", where, "give exactly one of path or journal")
            return None
        if path is not None:
            path = self.convert(raw, "path", f"{where}.path", _absolute_path)
            if path is None:
                return None
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            self.problem(raw, "name", f"{where}.name", "must be a string")
        options = {}
        for key, parse in SOURCE_OPTIONS.items():
            if key in raw:
                value = self.convert(raw, key, f"{where}.{key}", parse)
                if value is not None:
                    options[key] = value
        return SourceConfig(kind, path, unit, directory, name, options)

    def jails(self, doc: LineDict) -> dict[str, dict[str, Any]]:
        """Changes to the shipped jails by name, or new jails; checked against the shipped
        rules and jails so a typo in a rule id or a rule counted twice is caught here."""
        raw = self.mapping(doc, "jails", "jails")
        if raw is None:
            return {}
        from agent.detect.rules import load_rules

        known = sorted(rule.id for rule in load_rules())
        shipped = load_jails(DEFAULT_JAILS_FILE, known)
        names = {jail.name for jail in shipped.jails}
        found: dict[str, dict[str, Any]] = {}
        before = len(self.problems)
        for name, fields in raw.items():
            where = f"jails.{name}"
            if not isinstance(fields, LineDict):
                self.problem(raw, name, where, "must be a mapping of jail fields")
                continue
            self.known_keys(fields, JAIL_FIELDS, where)
            found[str(name)] = parse_jail_fields(fields, self.file, where, self.problems, known)
            missing = missing_fields(fields) if name not in names else []
            if missing:
                self.problem(raw, name, where, f"a new jail needs {', '.join(missing)}"
                             f" (shipped jails: {', '.join(sorted(names))})")  # fmt: skip
        if len(self.problems) == before:
            merged = with_overrides(shipped, found)
            lines = [(jail, raw.line_of(jail.name)) for jail in merged.jails]
            check_overlaps(lines, known, self.file, self.problems)
        return found

    def audit(self, doc: LineDict) -> AuditConfig:
        raw = self.mapping(doc, "audit", "audit") or LineDict()
        self.known_keys(raw, ("policies", "interval", "vars"), "audit")
        policies = AuditConfig.policies
        if "policies" in raw:
            value = raw["policies"]
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(p, str) and p for p in value)
            ):
                self.problem(raw, "policies", "audit.policies", "a list of policy names or files")
            else:
                policies = tuple(value)
        interval = AuditConfig.interval
        if "interval" in raw:
            interval = self.convert(raw, "interval", "audit.interval", _positive_duration)
        variables: dict[str, Any] = {}
        for key, where in (("vars", "audit.vars"), ("variables", "variables")):
            container = raw if key == "vars" else doc
            section = self.mapping(container, key, where)
            if section is None:
                continue
            if variables:
                self.problem(container, key, where, "variables are set in both audit.vars and"
                             " variables: keep one")  # fmt: skip
            variables = dict(section)
        return AuditConfig(policies, interval or AuditConfig.interval, variables)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return parse


def _proxies(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("a list of proxy addresses or CIDR networks")
    for item in value:
        ipaddress.ip_network(str(item), strict=False)  # ValueError names the bad one
    return tuple(str(item) for item in value)


def _zone(value: Any) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(_text(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a time zone (e.g. Europe/Berlin)") from exc
    return value


#: What a source may add, beside kind/path/journal/name: how to read its lines.
SOURCE_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "access_log_format": _text,  # a nickname (combined, vhost_combined) or a LogFormat
    "trusted_proxies": _proxies,  # whose X-Forwarded-For is believed
    "pg_prefix": _text,  # the server's log_line_prefix
    "pg_format": _choice(*POSTGRES_FORMATS),  # stderr or jsonlog
    "timezone": _zone,  # of timestamps that carry none
    "level": _choice("normal", "aggressive"),
}


def parse_listen(value: Any) -> str:
    """``host:port`` (IPv6 in brackets) with a valid address and port; returned as given."""
    if not isinstance(value, str):
        raise ValueError("expected host:port, e.g. 127.0.0.1:19849 or [::1]:19849")
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: expected host:port, e.g. 127.0.0.1:{DEFAULT_METRICS_PORT}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"{value!r}: {host!r} is not an IP address") from None
    return value


def _absolute_path(value: Any) -> str:
    if not isinstance(value, str) or not os.path.isabs(value) or "\0" in value:
        raise ValueError(f"{value!r} is not an absolute path")
    return value


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds
