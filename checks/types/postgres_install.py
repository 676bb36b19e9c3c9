"""How each PostgreSQL server is installed: a major version the PostgreSQL project still
fixes, and files only the server's account can read."""

from __future__ import annotations

import datetime as dt
import re

from checks.hosts import FileStat, HostError
from checks.params import Param
from checks.parsers.dpkg import DPKG_STATUS
from checks.parsers.postgres import PostgresConf
from checks.result import Verdict, errored, failed, passed, skipped
from checks.types.base import CheckContext, CheckType
from checks.types.postgres import NO_CLUSTER, cluster_configs

#: End of life of each major version (postgresql.org/support/versioning): no fixes after.
END_OF_LIFE = {
    10: dt.date(2022, 11, 10),
    11: dt.date(2023, 11, 9),
    12: dt.date(2024, 11, 21),
    13: dt.date(2025, 11, 13),
    14: dt.date(2026, 11, 12),
    15: dt.date(2027, 11, 11),
    16: dt.date(2028, 11, 9),
    17: dt.date(2029, 11, 8),
    18: dt.date(2030, 11, 14),
}
_PRE_RELEASE = re.compile(r"~(alpha|beta|rc)|devel|snapshot", re.IGNORECASE)
ACCOUNT = "postgres"
PASSWD = "/etc/passwd"
#: Where Debian's pg_ctlcluster writes a cluster's log when logging_collector is off.
DEBIAN_LOG_DIR = "/var/log/postgresql"


class PostgresVersionCheck(CheckType):
    """Every server runs a major version that still gets fixes (by its end-of-life date, as
    of the audit's clock), and no pre-release build (alpha, beta, rc, devel) of Debian's or
    PGDG's package."""

    name = "postgresql_version"
    schema = {"config": Param("str", help="a postgresql.conf (default: every server found)")}

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            configs = cluster_configs(ctx, self.params["config"])
            # no dpkg database (built from source, a container): no package to judge
            packages = ctx.host.packages() if ctx.host.lexists(DPKG_STATUS) else {}
        except HostError as exc:
            return errored(f"cannot tell the PostgreSQL version: {exc}")
        if not configs:
            return skipped(NO_CLUSTER)
        today = dt.datetime.fromtimestamp(ctx.clock(), dt.UTC).date()
        newest = max(END_OF_LIFE)
        bad, good = [], []
        for conf in configs:
            major = conf.version
            if major is None:
                return errored(f"{conf.path}: no major version (no Debian cluster path, no "
                               "readable PG_VERSION in the data directory)")  # fmt: skip
            package = f"postgresql-{major}"
            build = f"; {package} {packages[package]}" if package in packages else ""
            line = f"{conf.path}: PostgreSQL {major}{build}"
            end = END_OF_LIFE.get(major)
            if major < min(END_OF_LIFE) or (end is not None and end < today):
                bad.append(f"{line}: past its end of life{f' ({end})' if end else ''}")
            elif package in packages and _PRE_RELEASE.search(packages[package]):
                bad.append(f"{line}: a pre-release build")
            elif end is None:
                good.append(f"{line}: newer than {newest}, the newest this lappguard knows")
            else:
                good.append(f"{line}: fixed until {end}")
        return failed(*bad, *good) if bad else passed(*good)


class PostgresFilesCheck(CheckType):
    """Only the ``postgres`` account (its uid in the host's /etc/passwd) can read or change
    what the server trusts.

    ``config``: the configuration directory 0700, postgresql.conf and every file it
    includes 0640, pg_hba.conf, pg_ident.conf and postgresql.auto.conf 0600, all owned by
    postgres. ``data``: the data directory 0700 owned by postgres, and the log directory:
    with logging_collector on, 0700 owned by postgres; for a Debian cluster logging to
    /var/log/postgresql (which postgresql-common resets to 1775 root:postgres on every
    upgrade) no one else may write there, and no log file may be readable by others.
    """

    name = "postgresql_files"
    schema = {
        "aspect": Param("choice", required=True, choices=("config", "data")),
        "config": Param("str", help="a postgresql.conf (default: every server found)"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            configs = cluster_configs(ctx, self.params["config"])
            if not configs:
                return skipped(NO_CLUSTER)
            uid = account_uid(ctx, ACCOUNT)
            judge = self._config if self.params["aspect"] == "config" else self._data
            findings = [finding for conf in configs for finding in judge(ctx, conf, uid)]
        except HostError as exc:
            return errored(f"cannot read the PostgreSQL files: {exc}")
        bad = [line for ok, line in findings if not ok]
        good = [line for ok, line in findings if ok]
        return failed(*bad, *good) if bad else passed(*good)

    def _config(self, ctx: CheckContext, conf: PostgresConf, uid: int) -> list[tuple[bool, str]]:
        directory = conf.path.rsplit("/", 1)[0]
        auto = f"{conf.data_directory()}/postgresql.auto.conf"
        ident = conf.settings.get("ident_file")
        wanted = [(directory, 0o700)]
        wanted += [(path, 0o600 if path == auto else 0o640) for path in conf.files]
        wanted += [(conf.hba_path(), 0o600)]
        wanted += [(ident.value if ident else f"{directory}/pg_ident.conf", 0o600)]
        found = []
        for path, mode in dict.fromkeys(wanted):
            if ctx.host.lexists(path):
                found.append(_owned(ctx.host.stat(path), uid, mode))
        return found

    def _data(self, ctx: CheckContext, conf: PostgresConf, uid: int) -> list[tuple[bool, str]]:
        data = conf.data_directory()
        found = [_owned(ctx.host.stat(data), uid, 0o700)]
        collector = conf.get("logging_collector")
        if collector and collector.value.lower() in ("on", "true", "yes", "1"):
            logs = conf.get("log_directory")
            assert logs is not None  # a built-in default exists for every version
            path = logs.value if logs.value.startswith("/") else f"{data}/{logs.value}"
            if ctx.host.lexists(path):
                found.append(_owned(ctx.host.stat(path), uid, 0o700))
        elif conf.path.startswith("/etc/postgresql/") and ctx.host.lexists(DEBIAN_LOG_DIR):
            found.extend(_debian_logs(ctx))
        else:
            found.append((True, f"{conf.path}: logging_collector off, the log goes wherever "
                                "the server's stderr does: not judged"))  # fmt: skip
        return found


def account_uid(ctx: CheckContext, name: str) -> int:
    """The uid of an account in the audited host's /etc/passwd (not the auditor's).
    Raises HostError when there is none."""

    def lookup() -> int:
        for line in ctx.host.read_text(PASSWD).split("\n"):
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        raise HostError(f"no {name} account in {PASSWD}")

    return ctx.memo(("uid", name), lookup)


def _owned(info: FileStat, uid: int, mode: int) -> tuple[bool, str]:
    """(acceptable, evidence) for a path that must be owned by ``uid`` with at most ``mode``."""
    wrong = []
    if info.mode & ~mode:
        wrong.append(f"mode {info.mode:04o} exceeds {mode:04o}")
    if info.uid != uid:
        wrong.append(f"owner uid {info.uid}, not {ACCOUNT} ({uid})")
    line = f"{info.path}: {info.mode:04o} uid {info.uid}"
    return (False, f"{line} ({'; '.join(wrong)})") if wrong else (True, line)


def _debian_logs(ctx: CheckContext) -> list[tuple[bool, str]]:
    directory = ctx.host.stat(DEBIAN_LOG_DIR)
    found = [(not directory.mode & 0o002, f"{DEBIAN_LOG_DIR}: {directory.mode:04o}"
              + (" (others may write)" if directory.mode & 0o002 else ""))]  # fmt: skip
    for name in ctx.host.listdir(DEBIAN_LOG_DIR):
        info = ctx.host.stat(f"{DEBIAN_LOG_DIR}/{name}", follow_symlinks=False)
        if info.mode & 0o006:
            found.append((False, f"{info.path}: {info.mode:04o} (others may read or write)"))
    return found
