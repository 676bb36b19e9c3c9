"""PostgreSQL judged from inside each running server: roles, stored passwords, grants,
functions, languages and the settings in force (see ``checks.probes.pg_session``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checks.hosts import HostError
from checks.params import Param
from checks.probes.pg_session import SETTINGS, ServerFacts, server_facts
from checks.result import Verdict, errored, failed, passed, skipped
from checks.types.base import CheckContext, CheckType
from checks.types.postgres import NO_CLUSTER, cluster_configs

#: Languages a stock server has: the two untrusted ones no one can use without being
#: superuser (c, internal) and the two trusted ones.
BUILT_IN_LANGUAGES = ("c", "internal", "plpgsql", "sql")
_TRUE = frozenset({"on", "true", "yes", "1", "t", "tr", "tru", "y", "ye", "o"})
_FALSE = frozenset({"off", "false", "no", "0", "f", "fa", "fal", "fals", "n", "of"})


class PostgresInsideCheck(CheckType):
    """One aspect of every running server, read in a peer session as postgres.

    ``privileged_roles``: no role but the bootstrap superuser has SUPERUSER, CREATEROLE or
    CREATEDB (the application's role least of all). ``password_hashes``: every stored
    password is a SCRAM verifier (no md5 hash, no plain text). ``public_grants``: PUBLIC has
    no privilege on a table, view or sequence outside the system schemas, no CREATE on any
    schema and no USAGE on one other than ``public``. ``grant_options``: no role but a
    superuser or the owner may pass a privilege on. ``security_definer``: every SECURITY
    DEFINER function belongs to a superuser. ``languages``: only c, internal, plpgsql and
    sql are installed. ``authid_grants``: no one but its owner has a privilege on
    pg_authid. ``settings``: the running server (and no per-role or per-database override)
    has each of ``expect``'s values, and ssl on if it listens on TCP (``ssl_if_tcp``).
    """

    name = "postgresql_inside"
    needs_live_host = True
    schema = {
        "aspect": Param(
            "choice",
            required=True,
            choices=(
                "privileged_roles",
                "password_hashes",
                "public_grants",
                "grant_options",
                "security_definer",
                "languages",
                "authid_grants",
                "settings",
            ),
        ),
        "expect": Param("mapping", default={}, help="settings: name -> required value"),
        "ssl_if_tcp": Param("bool", default=False, help="settings: ssl on with TCP open"),
        "config": Param("str", help="a postgresql.conf (default: every server found)"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            configs = cluster_configs(ctx, self.params["config"], running=True)
            if not configs:
                return skipped(f"{NO_CLUSTER}, and no postmaster running")
            servers = [
                ctx.memo(("pg session", conf.path), lambda c=conf: server_facts(ctx.host, c))
                for conf in configs
            ]
        except HostError as exc:
            return errored(f"cannot open a session inside PostgreSQL: {exc}")
        running = [facts for facts in servers if facts is not None]
        if not running:
            paths = ", ".join(conf.path for conf in configs)
            return skipped(f"no PostgreSQL server is running ({paths}): nothing inside to judge")
        judge = _ASPECTS[self.params["aspect"]]
        bad, good = [], []
        for facts in running:
            problems = judge(self, facts)
            where = f"{facts.conf.path} (PostgreSQL {facts.server['version'].split()[0]})"
            if problems:
                bad.extend(f"{where}: {problem}" for problem in problems)
            else:
                good.append(f"{where}: {_SUMMARIES[self.params['aspect']]}")
        stopped = [f"note: {c.path}: not running" for c, f in zip(configs, servers, strict=True)
                   if f is None]  # fmt: skip
        return failed(*bad, *good, *stopped) if bad else passed(*good, *stopped)

    def _privileged_roles(self, facts: ServerFacts) -> list[str]:
        found = []
        for role in facts.server["roles"]:
            rights = [r.upper() for r in ("superuser", "createrole", "createdb") if role[r]]
            if rights and not role["bootstrap"]:
                found.append(f"role {role['name']} has {', '.join(rights)}")
        return found

    def _password_hashes(self, facts: ServerFacts) -> list[str]:
        return [
            f"role {role['name']} has a{'n' if role['password'] == 'md5' else ''} "
            f"{role['password']} password"
            for role in facts.server["roles"]
            if role["password"] in ("md5", "plain")
        ]

    def _settings(self, facts: ServerFacts) -> list[str]:
        settings = facts.server["settings"]
        wanted = {name: str(value) for name, value in self.params["expect"].items()}
        if self.params["ssl_if_tcp"] and settings["listen_addresses"]["value"].strip(" ,"):
            wanted["ssl"] = "on"
        found = []
        for name, value in wanted.items():
            current = settings.get(name)
            if current is None:
                found.append(f"{name}: not read by this check (it reads {', '.join(SETTINGS)})")
            elif not _same(current["value"], value):
                source = current["file"] and f"{current['file']}:{current['line']}"
                found.append(f"{name} = {current['value']!r} ({source or current['source']}),"
                             f" expected {value!r}")  # fmt: skip
        for override in facts.server["overrides"]:
            for assignment in override["settings"] or ():
                name, _, value = assignment.partition("=")
                if name in wanted and not _same(value, wanted[name]):
                    scope = " ".join(
                        f"{kind} {override[kind]}"
                        for kind in ("role", "database")
                        if override[kind]
                    )
                    found.append(f"ALTER ... SET {name} = {value!r} for {scope}, expected "
                                 f"{wanted[name]!r}")  # fmt: skip
        return found


def _per_database(key: str, describe: Callable[[Any], str | None]) -> Callable:
    """An aspect judged database by database from the database facts' ``key`` list."""

    def judge(_check: PostgresInsideCheck, facts: ServerFacts) -> list[str]:
        found = []
        for name, database in facts.databases.items():
            for item in database[key]:
                problem = describe(item)
                if problem:
                    found.append(f"database {name}: {problem}")
        return found

    return judge


def _same(value: str, expected: str) -> bool:
    """Setting values compared as PostgreSQL would: booleans by meaning, the rest by text."""
    low, wanted = value.strip().lower(), expected.strip().lower()
    for words in (_TRUE, _FALSE):
        if wanted in words:
            return low in words
    return low == wanted


_ASPECTS: dict[str, Callable[[PostgresInsideCheck, ServerFacts], list[str]]] = {
    "privileged_roles": PostgresInsideCheck._privileged_roles,
    "password_hashes": PostgresInsideCheck._password_hashes,
    "settings": PostgresInsideCheck._settings,
    "public_grants": _per_database("public_grants", lambda what: f"PUBLIC has {what}"),
    "grant_options": _per_database("grant_options", lambda what: f"grant option: {what}"),
    "security_definer": _per_database(
        "security_definers", lambda what: f"SECURITY DEFINER function {what}, not a superuser"
    ),
    "languages": _per_database(
        "languages",
        lambda lang: (
            None
            if lang["name"] in BUILT_IN_LANGUAGES
            else f"language {lang['name']} ({'trusted' if lang['trusted'] else 'untrusted'})"
        ),
    ),
    "authid_grants": _per_database("authid_grants", lambda what: f"pg_authid: {what}"),
}
_SUMMARIES = {
    "privileged_roles": "only the bootstrap superuser has SUPERUSER, CREATEROLE or CREATEDB",
    "password_hashes": "every stored password is a SCRAM verifier",
    "settings": "the settings in force are the expected ones",
    "public_grants": "no PUBLIC grant on tables, views, sequences or schemas",
    "grant_options": "no grant option held by an ordinary role",
    "security_definer": "every SECURITY DEFINER function belongs to a superuser",
    "languages": f"only the languages {', '.join(BUILT_IN_LANGUAGES)}",
    "authid_grants": "no grant on pg_authid",
}
