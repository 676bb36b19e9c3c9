"""Kernel settings that decide where a crashing process's memory goes: core dumps.

A core dump is a copy of a process's memory: of PHP-FPM or PostgreSQL that means session
data, query results and passwords in transit, written to disk where backups and other
accounts may read them. Settings are read as the system applies them at boot:
``systemd-sysctl`` reads the sysctl.d directories by file name (a name in /etc hides the
same name in /run and /usr/lib), the last assignment of a key wins; on a running host the
kernel's live value is judged as well, since a value set by hand outlives no reboot but
holds now.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.lines import C_SPACE, numbered
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType

#: systemd-sysctl's directories, most important first (sysctl.d(5)).
SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d")
#: The kernel's own defaults, used when nothing sets a key.
KERNEL_DEFAULTS = {"fs.suid_dumpable": "0", "kernel.core_pattern": "core"}
#: systemd-coredump's files, read in this order (later wins), and its defaults.
COREDUMP_FILES = (
    "/etc/systemd/coredump.conf",
    "/usr/lib/systemd/coredump.conf.d/*.conf",
    "/etc/systemd/coredump.conf.d/*.conf",
)
SYSTEM_FILES = (
    "/etc/systemd/system.conf",
    "/usr/lib/systemd/system.conf.d/*.conf",
    "/etc/systemd/system.conf.d/*.conf",
)
LIMITS_FILES = ("/etc/security/limits.conf", "/etc/security/limits.d/*.conf")
#: Pipe handlers that throw a core away.
DISCARDING = {"/bin/false", "/usr/bin/false", "/bin/true", "/usr/bin/true"}


def sysctl_files(ctx: CheckContext) -> list[str]:
    """The sysctl.d files systemd-sysctl applies, in the order it applies them."""
    chosen: dict[str, str] = {}
    for directory in reversed(SYSCTL_DIRS):  # a more important directory hides a name
        for path in ctx.host.glob(f"{directory}/*.conf"):
            chosen[posixpath.basename(path)] = path
    return [chosen[name] for name in sorted(chosen)]


def sysctl_settings(ctx: CheckContext) -> dict[str, tuple[str, str]]:
    """key -> (value, file:line) of every key the sysctl.d files set, the last one winning.
    Keys are written with dots (``fs/suid_dumpable`` is ``fs.suid_dumpable``); a leading
    ``-`` (ignore errors) does not change what is set."""
    settings: dict[str, tuple[str, str]] = {}
    for path in sysctl_files(ctx):
        for where, line in _lines(ctx, path):
            key, sep, value = line.strip(C_SPACE).partition("=")
            key = key.strip(C_SPACE).lstrip("-").replace("/", ".")
            if sep and key and not key.startswith(("#", ";")):
                settings[key] = (value.strip(C_SPACE), where)
    return settings


def _lines(ctx: CheckContext, path: str) -> Iterator[tuple[str, str]]:
    """(file:line, text) of a file's lines. A file that cannot be read raises: what it
    says might be the one setting that fails the check."""
    for number, line in numbered(ctx.host.read_text(path)):
        yield f"{path}:{number}", line


def _unit_settings(ctx: CheckContext, patterns: tuple[str, ...], keys: set[str]) -> dict:
    """key -> (value, file:line) of a systemd configuration (main file, then drop-ins)."""
    found: dict[str, tuple[str, str]] = {}
    for pattern in patterns:
        for path in ctx.host.glob(pattern):
            for where, line in _lines(ctx, path):
                key, sep, value = line.strip(C_SPACE).partition("=")
                if sep and key.strip() in keys:
                    found[key.strip()] = (value.strip(C_SPACE), where)
    return found


class CoreDumpsCheck(CheckType):
    """No process leaves its memory on disk: ``fs.suid_dumpable`` 0, and cores either
    thrown away by systemd-coredump (Storage=none, ProcessSizeMax=0) or a pipe to false,
    or forbidden by a hard limit of 0 for login sessions (limits.conf) and for services
    (DefaultLimitCORE)."""

    name = "core_dumps"
    schema: dict[str, Param] = {}

    def run(self, ctx: CheckContext) -> Verdict:
        settings = sysctl_settings(ctx)
        boot = {key: settings.get(key, (default, "the kernel's default"))
                for key, default in KERNEL_DEFAULTS.items()}  # fmt: skip
        problems: list[str] = []
        shown = [f"{key} = {value} ({where})" for key, (value, where) in boot.items()]
        dumpable = boot["fs.suid_dumpable"][0]
        if dumpable != "0":
            problems.append(f"fs.suid_dumpable = {dumpable} at boot: privileged processes dump")
        pattern = boot["kernel.core_pattern"][0]
        if ctx.host.is_live:
            live = self._live(ctx)
            if isinstance(live, Verdict):
                return live
            dumpable_now, pattern = live
            shown.append(f"now: fs.suid_dumpable = {dumpable_now}, kernel.core_pattern = {pattern}")
            if dumpable_now != "0":
                problems.append(
                    f"fs.suid_dumpable is {dumpable_now} now: privileged processes dump"
                )
        problems += self._cores(ctx, pattern, shown)
        if problems:
            return failed(*problems, *shown)
        return passed(*shown)

    @staticmethod
    def _live(ctx: CheckContext) -> tuple[str, str] | Verdict:
        try:  # a sysctl file refuses a read bigger than a page (ENOMEM): ask for one
            dumpable, pattern = (
                ctx.host.read_bytes(f"/proc/sys/{key}", limit=4096).decode("utf-8", "replace")
                for key in ("fs/suid_dumpable", "kernel/core_pattern")
            )
        except HostError as exc:
            return errored(f"cannot read the kernel's live settings: {exc}")
        return dumpable.strip(), pattern.strip()

    def _cores(self, ctx: CheckContext, pattern: str, shown: list[str]) -> list[str]:
        """Why a crashing process would still leave a core file (none: it would not)."""
        if pattern.startswith("|"):
            handler = pattern[1:].split()[0] if pattern[1:].split() else ""
            if handler in DISCARDING:
                return []
            if posixpath.basename(handler) == "systemd-coredump":
                return self._coredump_conf(ctx, shown)
            return [f"cores are handed to {handler}, which may keep them"]
        return self._hard_limits(ctx, shown)

    @staticmethod
    def _coredump_conf(ctx: CheckContext, shown: list[str]) -> list[str]:
        found = _unit_settings(ctx, COREDUMP_FILES, {"Storage", "ProcessSizeMax"})
        storage, at = found.get("Storage", ("external", "systemd's default"))
        size, size_at = found.get("ProcessSizeMax", ("2G", "systemd's default"))
        shown.append(
            f"systemd-coredump: Storage={storage} ({at}), ProcessSizeMax={size} ({size_at})"
        )
        if storage.lower() == "none" and size == "0":
            return []
        return ["systemd-coredump keeps cores: set Storage=none and ProcessSizeMax=0"]

    @staticmethod
    def _hard_limits(ctx: CheckContext, shown: list[str]) -> list[str]:
        problems = []
        session = None  # (value, file:line) of the last "*" hard (or -) core limit
        for pattern in LIMITS_FILES:
            for path in ctx.host.glob(pattern):
                for where, line in _lines(ctx, path):
                    words = line.split("#", 1)[0].split()
                    if len(words) == 4 and words[0] == "*" and words[1] in ("hard", "-") \
                            and words[2] == "core":  # fmt: skip
                        session = (words[3], where)
        if session is None:
            problems.append("login sessions: no '* hard core 0' in /etc/security/limits.conf")
        else:
            shown.append(f"login sessions: hard core {session[0]} ({session[1]})")
            if session[0] != "0":
                problems.append(f"login sessions may dump {session[0]} blocks ({session[1]})")
        services = _unit_settings(ctx, SYSTEM_FILES, {"DefaultLimitCORE"}).get("DefaultLimitCORE")
        if services is None:
            problems.append("services: DefaultLimitCORE is not set (systemd allows raising it)")
        else:
            hard = services[0].split(":")[-1]
            shown.append(f"services: DefaultLimitCORE={services[0]} ({services[1]})")
            if hard != "0":
                problems.append(f"services may dump (hard limit {hard}, {services[1]})")
        return problems
