"""The audit trail: an audit daemon or logs shipped off the host, auditd's own log,
journald keeping logs on disk, and logrotate keeping logs that hold personal data neither
too briefly nor too long."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.lines import C_SPACE, numbered
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType
from checks.types.system import enabled_units

#: rsyslog forwarding: the legacy ``*.* @@host`` (TCP) or ``@host`` (UDP) action, or omfwd.
_RSYSLOG_FORWARD = re.compile(r"^[^#$]*\s@@?[\[\w]|type\s*=\s*\"omfwd\"", re.IGNORECASE)
_UPLOAD_URL = re.compile(r"^\s*URL\s*=\s*\S", re.IGNORECASE)


def _lines(ctx: CheckContext, patterns: tuple[str, ...]):
    """(path:line, text) of every line in the files matching ``patterns``, unreadable skipped."""
    for pattern in patterns:
        for path in ctx.host.glob(pattern):
            try:
                text = ctx.host.read_text(path)
            except HostError:
                continue
            for number, line in numbered(text):
                yield f"{path}:{number}", line


class LogShippingCheck(CheckType):
    """Something keeps a record an intruder with root cannot quietly edit: auditd enabled,
    rsyslog forwarding to another host, or systemd-journal-upload enabled with a URL."""

    name = "log_shipping"
    schema: dict[str, Param] = {}

    def run(self, ctx: CheckContext) -> Verdict:
        enabled = ctx.memo(("enabled_units",), lambda: enabled_units(ctx))
        found = []
        if "auditd.service" in enabled:
            found.append(f"auditd.service enabled ({enabled['auditd.service']})")
        rsyslog = ("/etc/rsyslog.conf", "/etc/rsyslog.d/*.conf")
        found += [
            f"rsyslog forwards: {where}: {line.strip(C_SPACE)}"
            for where, line in _lines(ctx, rsyslog)
            if _RSYSLOG_FORWARD.search(line)
        ]
        if "systemd-journal-upload.service" in enabled:
            upload = ("/etc/systemd/journal-upload.conf", "/etc/systemd/journal-upload.conf.d/*")
            urls = [f"{w}: {line.strip(C_SPACE)}" for w, line in _lines(ctx, upload)
                    if _UPLOAD_URL.match(line)]  # fmt: skip
            if urls:
                found.append(f"systemd-journal-upload enabled, sending to {urls[0]}")
        if found:
            return passed(*found)
        return failed(
            "no auditd, no rsyslog forwarding and no systemd-journal-upload with a URL: "
            "the only record of an intrusion is on the intruded host"
        )


class JournaldStorageCheck(CheckType):
    """journald keeps the journal on disk across reboots: Storage=persistent, or auto (the
    default) with /var/log/journal present. Later drop-ins win, as systemd reads them."""

    name = "journald_storage"
    schema: dict[str, Param] = {}

    def run(self, ctx: CheckContext) -> Verdict:
        files = (
            "/etc/systemd/journald.conf",
            "/usr/lib/systemd/journald.conf.d/*.conf",
            "/etc/systemd/journald.conf.d/*.conf",
        )
        storage, where = "auto", "systemd's default"
        for at, line in _lines(ctx, files):
            key, sep, value = line.strip(C_SPACE).partition("=")
            if sep and key.strip() == "Storage":
                storage, where = value.strip().lower(), at
        shown = f"Storage={storage} ({where})"
        if storage == "persistent":
            return passed(shown)
        if storage == "auto" and ctx.host.exists("/var/log/journal"):
            return passed(shown, "/var/log/journal exists: the journal is kept on disk")
        if storage == "auto":
            return failed(f"{shown}, but /var/log/journal is missing: the journal is lost at boot")
        return failed(f"{shown}: the journal is not kept on disk")


# --- logrotate ----------------------------------------------------------------------------------

PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 31, "yearly": 366}


@dataclass
class Rotation:
    """The logrotate settings for one set of logs, with where each came from."""

    period: str = "weekly"
    rotate: int | None = None
    maxage: int | None = None
    origins: dict[str, str] = field(default_factory=dict)

    def days(self) -> int | None:
        """Longest a rotated log is kept, in days; None when unbounded."""
        if self.rotate is None or self.rotate < 0:
            return self.maxage
        kept = self.rotate * PERIOD_DAYS[self.period]
        return min(kept, self.maxage) if self.maxage is not None else kept

    def describe(self) -> str:
        return ", ".join(self.origins.values()) or "logrotate defaults"


def _apply(rotation: Rotation, words: list[str], where: str) -> None:
    if not words:
        return
    keyword = words[0].lower()
    if keyword in PERIOD_DAYS:
        rotation.period = keyword
        rotation.origins["period"] = f"{keyword} at {where}"
    elif keyword in ("rotate", "maxage") and len(words) > 1:
        try:
            value = int(words[1])
        except ValueError:
            return
        setattr(rotation, keyword, value)
        rotation.origins[keyword] = f"{keyword} {value} at {where}"


def logrotate_for(ctx: CheckContext, log: str) -> tuple[Rotation, str] | None:
    """The rotation logrotate applies to ``log`` (a path or glob as a block names it), and
    the block's file:line; None when no block names it. Globals of logrotate.conf come first."""
    defaults = Rotation()
    found = None
    files = ["/etc/logrotate.conf", *ctx.host.glob("/etc/logrotate.d/*")]
    for path in files:
        try:
            text = ctx.host.read_text(path)
        except HostError:
            continue
        block: Rotation | None = None
        names: list[str] = []
        for number, line in numbered(text):
            words = line.split("#", 1)[0].split()
            where = f"{path}:{number}"
            if "{" in words:
                names = [w for w in words if w != "{"]
                block = Rotation(defaults.period, defaults.rotate, defaults.maxage,
                                 dict(defaults.origins))  # fmt: skip
                if any(fnmatch.fnmatch(log, n) or n == log for n in names):
                    found = (block, where)
                continue
            if words == ["}"]:
                block = None
                continue
            if block is None and path == "/etc/logrotate.conf":
                _apply(defaults, words, where)
            elif block is not None:
                _apply(block, words, where)
    return found


class LogRetentionCheck(CheckType):
    """logrotate keeps ``log`` at least ``min_days`` and at most ``max_days``: rotate times
    the period, capped by maxage."""

    name = "log_retention"
    schema = {
        "log": Param("str", required=True, help="a log path or glob as logrotate names it"),
        "min_days": Param("number", required=True),
        "max_days": Param("number", required=True),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        try:
            found = logrotate_for(ctx, p["log"])
        except HostError as exc:
            return errored(f"cannot read the logrotate configuration: {exc}")
        if found is None:
            return failed(f"no logrotate block names {p['log']}: it grows and is kept forever")
        rotation, where = found
        days = rotation.days()
        shown = f"{p['log']} ({where}): {rotation.describe()}"
        if days is None:
            return failed(f"{shown}: kept without limit (no rotate count or maxage)")
        if days > p["max_days"]:
            return failed(f"{shown}: kept {days} days, more than {p['max_days']:g}")
        if days < p["min_days"]:
            return failed(f"{shown}: kept {days} days, less than {p['min_days']:g}")
        return passed(f"{shown}: kept {days} days")


class AuditdLogCheck(CheckType):
    """auditd has its configuration, and the log it names there (``log_file``, default
    /var/log/audit/audit.log) exists, owned by root and within ``mode_max``."""

    name = "auditd_log"
    schema = {"mode_max": Param("mode", default=0o600)}

    def run(self, ctx: CheckContext) -> Verdict:
        conf = "/etc/audit/auditd.conf"
        try:
            text = ctx.host.read_text(conf)
        except HostError as exc:
            return failed(f"{conf}: {exc}: auditd runs on its defaults, unreviewed")
        log, where = "/var/log/audit/audit.log", "auditd's default"
        for number, line in numbered(text):
            key, sep, value = line.split("#", 1)[0].partition("=")
            if sep and key.strip(C_SPACE) == "log_file":
                log, where = value.strip(C_SPACE), f"{conf}:{number}"
        try:
            info = ctx.host.stat(log)
        except HostError as exc:
            return failed(f"log_file {log} ({where}): {exc}")
        shown = f"log_file {log} ({where}): {info.mode:04o} {info.owner}:{info.group}"
        wrong = []
        if info.mode & ~self.params["mode_max"]:
            wrong.append(f"mode {info.mode:04o} exceeds {self.params['mode_max']:04o}")
        if info.owner != "root":
            wrong.append(f"owner {info.owner}, not root")
        return failed(f"{shown} ({'; '.join(wrong)})") if wrong else passed(shown)
