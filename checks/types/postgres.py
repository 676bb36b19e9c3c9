"""PostgreSQL checks: a postgresql.conf setting, and forbidden pg_hba.conf rules.

Every Debian cluster (/etc/postgresql/<version>/<name>) is judged, and the check passes
only when all of them do; an explicit ``config`` path judges that one server instead.
"""

from __future__ import annotations

import ipaddress

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.postgres import (
    CONFIG_GLOBS,
    CONNECTION_TYPES,
    TCP_TYPES,
    HbaFile,
    PostgresConf,
    find_clusters,
    parse_pg_hba,
    parse_postgresql_conf,
)
from checks.result import Verdict, errored, failed, passed, skipped
from checks.types.base import CheckContext, CheckType

LOOPBACK_NAMES = ("localhost",)
NO_CLUSTER = f"no PostgreSQL configuration ({', '.join(CONFIG_GLOBS)}, or of a running server)"


def cluster_configs(ctx: CheckContext, explicit: str | None) -> list[PostgresConf]:
    """Parsed postgresql.conf of each cluster (once per audit). Raises HostError."""
    paths = [explicit] if explicit else find_clusters(ctx.host)
    return [
        ctx.memo(("postgresql.conf", path), lambda p=path: parse_postgresql_conf(ctx.host, p))
        for path in paths
    ]


def loopback_violation(value: str | None) -> str | None:
    """Why listen_addresses reaches beyond loopback ('' means no TCP at all), or None."""
    entries = [e.strip() for e in (value or "").split(",") if e.strip()]
    outside = []
    for entry in entries:
        if entry.lower() in LOOPBACK_NAMES:
            continue
        try:
            if ipaddress.ip_address(entry).is_loopback:
                continue
        except ValueError:
            pass
        outside.append(entry)
    if outside:
        return f"listens on {', '.join(outside)} (expected loopback only)"
    return None


def not_loadable(what: str, rejected: list[str], evidence: list[str]) -> Verdict:
    """Undecided: the server refuses a file holding a line it rejects (at start) or keeps its
    previous settings (at reload), so what is in force cannot be read from the files."""
    more = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
    return errored(f"{what} is not loadable: {rejected[0]}{more}", *evidence, *rejected)


class PostgresConfCheck(CheckType):
    """A setting's effective value (last assignment, includes, postgresql.auto.conf, else the
    built-in default of the cluster's version) tested by ``expect``, or with
    ``loopback_only`` (for listen_addresses) required to name loopback addresses only."""

    name = "postgresql_conf"
    schema = {
        "setting": Param("str", required=True),
        "expect": Param("expect"),
        "loopback_only": Param("bool", default=False, help="only localhost/127.x/::1 or ''"),
        "config": Param("str", help="a postgresql.conf (default: every server found)"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        if (p["expect"] is None) == (not p["loopback_only"]):
            return errored("give exactly one of expect and loopback_only")
        try:
            configs = cluster_configs(ctx, p["config"])
        except HostError as exc:
            return errored(f"cannot read the PostgreSQL configuration: {exc}")
        if not configs:
            return skipped(NO_CLUSTER)
        good, bad, rejected = [], [], []
        for conf in configs:
            setting = conf.get(p["setting"])
            value = setting.value if setting else None
            if p["loopback_only"]:
                violation = loopback_violation(value)
            else:
                violation = p["expect"].violation(value)
            shown = str(setting) if setting else f"{p['setting']} not set"
            line = f"{conf.path}: {shown}"
            (bad if violation else good).append(f"{line}: {violation}" if violation else line)
            rejected.extend(str(problem) for problem in conf.problems)
        if bad:
            return failed(*bad, *good, *(f"note: {line}" for line in rejected))
        if rejected:
            return not_loadable("postgresql.conf", rejected, good)
        return passed(*good)


class PgHbaCheck(CheckType):
    """No pg_hba rule of the given connection ``types`` uses a forbidden method, and (with
    ``forbid_open``) none admits every address (``all``, 0.0.0.0/0, ::/0 and
    any prefix of length 0 such as 127.0.0.1/0). ``reject`` rules are never a problem."""

    name = "pg_hba"
    schema = {
        "types": Param("str_list", default=TCP_TYPES, help="connection types judged"),
        "forbid_methods": Param("str_list", default=(), help="e.g. [trust, password]"),
        "forbid_open": Param("bool", default=False, help="forbid rules open to every address"),
        "config": Param("str", help="a postgresql.conf (its hba_file is judged)"),
        "hba": Param("str", help="a pg_hba.conf path, instead of the clusters' hba_file"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        unknown = [t for t in p["types"] if t not in CONNECTION_TYPES]
        if unknown:
            return errored(f"unknown connection type(s) {', '.join(unknown)}")
        if not p["forbid_methods"] and not p["forbid_open"]:
            return errored("nothing to check: set forbid_methods and/or forbid_open")
        try:
            configs = [] if p["hba"] else cluster_configs(ctx, p["config"])
            paths = [p["hba"]] if p["hba"] else [c.hba_path() for c in configs]
            files = [
                ctx.memo(("pg_hba", path), lambda path=path: parse_pg_hba(ctx.host, path))
                for path in paths
            ]
        except HostError as exc:
            return errored(f"cannot read pg_hba.conf: {exc}")
        if not files:
            return skipped(NO_CLUSTER)
        bad = [line for hba in files for line in self._violations(hba)]
        rejected = [str(problem) for hba in files for problem in hba.problems]
        if bad:
            return failed(*bad, *(f"note: {line}" for line in rejected))
        if rejected:
            return not_loadable("pg_hba.conf", rejected, [])
        return passed(*(self._summary(hba) for hba in files))

    def _violations(self, hba: HbaFile) -> list[str]:
        p = self.params
        methods = {m.lower() for m in p["forbid_methods"]}
        found = []
        for rule in hba.rules:
            if rule.type not in p["types"]:
                continue
            if rule.method.lower() in methods:
                found.append(f"{rule} (method {rule.method})")
            elif p["forbid_open"] and rule.open_to_everyone and rule.method != "reject":
                found.append(f"{rule} (address {rule.address} admits every client)")
        return found

    def _summary(self, hba: HbaFile) -> str:
        judged = [r for r in hba.rules if r.type in self.params["types"]]
        what = []
        if self.params["forbid_methods"]:
            what.append(f"no method {'/'.join(self.params['forbid_methods'])}")
        if self.params["forbid_open"]:
            what.append("no rule open to every address")
        kinds = "/".join(self.params["types"])
        return f"{hba.path}: {len(judged)} {kinds} rule(s), {', '.join(what)}"
