"""PostgreSQL checks: a postgresql.conf setting, and forbidden pg_hba.conf rules.

Every Debian cluster (/etc/postgresql/<version>/<name>) is judged, and the check passes
only when all of them do; an explicit ``config`` path judges that one server instead.
"""

from __future__ import annotations

import ipaddress
import ssl

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.postgres import (
    CONFIG_GLOBS,
    CONNECTION_TYPES,
    TCP_TYPES,
    HbaFile,
    PgSetting,
    PostgresConf,
    find_clusters,
    parse_pg_hba,
    parse_postgresql_conf,
)
from checks.result import Verdict, errored, failed, passed, skipped
from checks.types.base import CheckContext, CheckType

LOOPBACK_NAMES = ("localhost",)
NO_CLUSTER = f"no PostgreSQL configuration ({', '.join(CONFIG_GLOBS)})"


def cluster_configs(
    ctx: CheckContext, explicit: str | None, running: bool = False
) -> list[PostgresConf]:
    """Parsed postgresql.conf of each cluster (once per audit), see ``find_clusters``.
    Raises HostError."""
    paths = [explicit] if explicit else find_clusters(ctx.host, running)
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


def listens_on_tcp(conf: PostgresConf) -> bool:
    """listen_addresses names some address ('' leaves only the unix sockets)."""
    setting = conf.get("listen_addresses")
    return bool(setting and setting.value.strip(" ,"))


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
        "if_tcp": Param("bool", default=False, help="judge only servers that listen on TCP at all"),
        "config": Param("str", help="a postgresql.conf (default: every server found)"),
        "unless_setting": Param("str", help="a setting that, when it meets unless, makes "
                                "this one irrelevant (log_destination for log_line_prefix)"),
        "unless": Param("expect", help="what unless_setting must meet"),
    }  # fmt: skip

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        if (p["expect"] is None) == (not p["loopback_only"]):
            return errored("give exactly one of expect and loopback_only")
        if (p["unless_setting"] is None) != (p["unless"] is None):
            return errored("give unless_setting and unless together")
        try:
            configs = cluster_configs(ctx, p["config"])
        except HostError as exc:
            return errored(f"cannot read the PostgreSQL configuration: {exc}")
        if not configs:
            return skipped(NO_CLUSTER)
        good, bad, rejected = [], [], []
        for conf in configs:
            rejected.extend(str(problem) for problem in conf.problems)
            waiver = self._waiver(conf)
            if waiver:
                good.append(waiver)
                continue
            if p["if_tcp"] and not listens_on_tcp(conf):
                good.append(f"{conf.path}: {conf.get('listen_addresses')}: no TCP at all")
                continue
            setting = conf.get(p["setting"])
            value = setting.value if setting else None
            if p["loopback_only"]:
                violation = loopback_violation(value)
            else:
                violation = p["expect"].violation(value)
            shown = str(setting) if setting else f"{p['setting']} not set"
            line = f"{conf.path}: {shown}"
            (bad if violation else good).append(f"{line}: {violation}" if violation else line)
        if bad:
            return failed(*bad, *good, *(f"note: {line}" for line in rejected))
        if rejected:
            return not_loadable("postgresql.conf", rejected, good)
        return passed(*good)

    def _waiver(self, conf: PostgresConf) -> str | None:
        """Evidence that ``unless_setting`` makes the setting irrelevant here, or None."""
        name, wanted = self.params["unless_setting"], self.params["unless"]
        if name is None or wanted is None:
            return None
        other = conf.get(name)
        if wanted.violation(other.value if other else None) is not None:
            return None
        return f"{conf.path}: {other or name}, so {self.params['setting']} does not apply"


class PgHbaCheck(CheckType):
    """No pg_hba rule of the given connection ``types`` uses a forbidden method (or, with
    ``allow_methods``, any other method); with ``forbid_open`` none admits every address
    (``all``, 0.0.0.0/0, ::/0 and any prefix of length 0 such as 127.0.0.1/0); with
    ``ssl_beyond_loopback`` only ``hostssl`` rules admit clients beyond loopback.
    ``reject`` rules are never a problem."""

    name = "pg_hba"
    schema = {
        "types": Param("str_list", default=TCP_TYPES, help="connection types judged"),
        "forbid_methods": Param("str_list", default=(), help="e.g. [trust, password]"),
        "allow_methods": Param("str_list", default=(), help="the only methods allowed"),
        "forbid_open": Param("bool", default=False, help="forbid rules open to every address"),
        "ssl_beyond_loopback": Param(
            "bool", default=False, help="rules for non-loopback clients must be hostssl"
        ),
        "config": Param("str", help="a postgresql.conf (its hba_file is judged)"),
        "hba": Param("str", help="a pg_hba.conf path, instead of the clusters' hba_file"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        unknown = [t for t in p["types"] if t not in CONNECTION_TYPES]
        if unknown:
            return errored(f"unknown connection type(s) {', '.join(unknown)}")
        if not any(p[k] for k in ("forbid_methods", "allow_methods", "forbid_open",
                                  "ssl_beyond_loopback")):  # fmt: skip
            return errored(
                "nothing to check: set forbid_methods, allow_methods, forbid_open or "
                "ssl_beyond_loopback"
            )
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
        allowed = {m.lower() for m in p["allow_methods"]}
        found = []
        for rule in hba.rules:
            if rule.type not in p["types"]:
                continue
            if rule.method.lower() in methods:
                found.append(f"{rule} (method {rule.method})")
            elif allowed and rule.method.lower() not in allowed:
                listed = ", ".join(p["allow_methods"])
                found.append(f"{rule} (method {rule.method}, allowed: {listed})")
            elif rule.method == "reject":
                continue
            elif p["forbid_open"] and rule.open_to_everyone:
                found.append(f"{rule} (address {rule.address} admits every client)")
            elif p["ssl_beyond_loopback"] and rule.type != "hostssl" and not rule.loopback_only:
                found.append(f"{rule} (admits {rule.address} without SSL: use hostssl)")
        return found

    def _summary(self, hba: HbaFile) -> str:
        p = self.params
        judged = [r for r in hba.rules if r.type in p["types"]]
        what = []
        if p["forbid_methods"]:
            what.append(f"no method {'/'.join(p['forbid_methods'])}")
        if p["allow_methods"]:
            what.append(f"methods {'/'.join(p['allow_methods'])} only")
        if p["forbid_open"]:
            what.append("no rule open to every address")
        if p["ssl_beyond_loopback"]:
            what.append("hostssl only beyond loopback")
        kinds = "/".join(self.params["types"])
        return f"{hba.path}: {len(judged)} {kinds} rule(s), {', '.join(what)}"


TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
#: OpenSSL's names of ciphers no connection should use: broken (RC4, DES, 3DES, RC2, IDEA,
#: SEED on 64-bit blocks) or not encrypting at all.
WEAK_CIPHERS = frozenset(
    {"rc4", "des-cbc", "des-ede3-cbc", "rc2-cbc", "idea-cbc", "seed-cbc", None}
)


class PostgresTlsCheck(CheckType):
    """PostgreSQL's TLS settings allow no old protocol and no weak cipher suite.

    ``ssl_min_protocol_version`` must be at least ``min_version``, and ``ssl_ciphers`` must
    select no anonymous, export or low-strength suite, none with MD5, RC4, (3)DES or without
    encryption: the string is given to this host's OpenSSL exactly as the server gives it
    to its own, and the suites OpenSSL then offers are judged, so an alias such as ``HIGH``
    or ``ALL`` is judged by what it means today. (TLS 1.3 suites are all strong.)
    """

    name = "postgresql_tls"
    schema = {
        "min_version": Param("choice", default="TLSv1.2", choices=TLS_VERSIONS),
        "config": Param("str", help="a postgresql.conf (default: every server found)"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            configs = cluster_configs(ctx, self.params["config"])
        except HostError as exc:
            return errored(f"cannot read the PostgreSQL configuration: {exc}")
        if not configs:
            return skipped(NO_CLUSTER)
        bad, good, rejected = [], [], []
        for conf in configs:
            rejected.extend(str(problem) for problem in conf.problems)
            protocol = conf.get("ssl_min_protocol_version")
            ciphers = conf.get("ssl_ciphers")
            assert ciphers is not None  # a built-in default exists for every version
            problems = [
                *self._protocol_problem(protocol),
                *weak_ciphers(ciphers.value),
            ]
            minimum = protocol or "no ssl_min_protocol_version (before PostgreSQL 12)"
            shown = f"{conf.path}: {minimum}; {ciphers}"
            if problems:
                bad.append(f"{shown}: {'; '.join(problems)}")
            else:
                good.append(shown)
        if bad:
            return failed(*bad, *good, *(f"note: {line}" for line in rejected))
        if rejected:
            return not_loadable("postgresql.conf", rejected, good)
        return passed(*good)

    def _protocol_problem(self, protocol: PgSetting | None) -> list[str]:
        wanted = TLS_VERSIONS.index(self.params["min_version"])
        value = protocol.value if protocol else "TLSv1"
        if value not in TLS_VERSIONS or TLS_VERSIONS.index(value) < wanted:
            return [f"accepts TLS older than {self.params['min_version']}"]
        return []


def weak_ciphers(spec: str) -> list[str]:
    """Why an OpenSSL cipher string selects weak suites (empty when it does not)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(spec)
    except ssl.SSLError:
        return [f"{spec!r} selects no cipher at all (the server refuses to start with ssl on)"]
    weak = sorted(
        suite["name"]
        for suite in context.get_ciphers()
        if suite["auth"] == "auth-null"
        or suite["symmetric"] in WEAK_CIPHERS
        or suite["digest"] == "md5"
        or suite["strength_bits"] < 128
    )
    if not weak:
        return []
    more = f" and {len(weak) - 5} more" if len(weak) > 5 else ""
    return [f"selects weak suites {', '.join(weak[:5])}{more} (as {ssl.OPENSSL_VERSION} reads it)"]
