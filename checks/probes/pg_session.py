"""Facts from inside a running PostgreSQL server, read in a local session as its OS account.

``runuser -u postgres -- psql -X -A -t -q -d CONNINFO -c QUERY`` (an argv list, no shell)
connects to the server's unix socket, where peer authentication lets the postgres OS account
in as the postgres role: no password is needed or kept. The session is read-only
(``default_transaction_read_only``) with a statement timeout, and each query returns one
JSON document, so no name holding a newline or a separator can shift a row; of a stored
password only its kind (scram-sha-256, md5, plain, none) ever leaves the server.

One query reads the server's roles, settings and databases; one more per database that
accepts connections reads that database's languages, grants and functions.
"""

from __future__ import annotations

import json
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from checks.hosts import Host, HostError
from checks.parsers.postgres import SERVER_PROCESSES, PostgresConf

ACCOUNT = "postgres"
#: Where Debian's (and PGDG's) server looks for its socket, and a source build's default.
SOCKET_DIRS = ("/var/run/postgresql", "/tmp")
SESSION_OPTIONS = "-c default_transaction_read_only=on -c statement_timeout=10s"
DATABASE_WORKERS = 4
SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema')"
#: Settings the audit reads from the running server.
SETTINGS = (
    "password_encryption",
    "log_connections",
    "log_disconnections",
    "ssl",
    "listen_addresses",
)

SERVER_FACTS = f"""
json_build_object(
  'version', current_setting('server_version'),
  'roles', (SELECT coalesce(json_agg(json_build_object(
      'name', rolname, 'bootstrap', oid = 10, 'superuser', rolsuper,
      'createrole', rolcreaterole, 'createdb', rolcreatedb, 'login', rolcanlogin,
      'password', CASE WHEN rolpassword IS NULL THEN 'none'
                       WHEN rolpassword LIKE 'SCRAM-SHA-256$%' THEN 'scram-sha-256'
                       WHEN rolpassword ~ '^md5[0-9a-f]{{32}}$' THEN 'md5'
                       ELSE 'plain' END) ORDER BY rolname), '[]') FROM pg_authid),
  'settings', (SELECT json_object_agg(name, json_build_object(
      'value', setting, 'source', source, 'file', sourcefile, 'line', sourceline))
      FROM pg_settings WHERE name IN ({", ".join(f"'{name}'" for name in SETTINGS)})),
  'overrides', (SELECT coalesce(json_agg(json_build_object(
      'role', r.rolname, 'database', d.datname, 'settings', s.setconfig)), '[]')
      FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole
      LEFT JOIN pg_database d ON d.oid = s.setdatabase),
  'databases', (SELECT json_agg(json_build_object('name', datname, 'connect', datallowconn)
      ORDER BY datname) FROM pg_database))
"""

DATABASE_FACTS = f"""
json_build_object(
  'languages', (SELECT coalesce(json_agg(json_build_object(
      'name', lanname, 'trusted', lanpltrusted) ORDER BY lanname), '[]') FROM pg_language),
  'public_grants', (SELECT coalesce(json_agg(what ORDER BY what), '[]') FROM (
      SELECT format('%s %I.%I: %s', CASE c.relkind WHEN 'S' THEN 'sequence'
          WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END,
          n.nspname, c.relname, a.privilege_type) AS what
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
             aclexplode(c.relacl) a
        WHERE a.grantee = 0 AND n.nspname NOT IN {SYSTEM_SCHEMAS}
          AND n.nspname !~ '^pg_(toast|temp)'
      UNION ALL
      SELECT format('schema %I: %s', n.nspname, a.privilege_type)
        FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
        WHERE a.grantee = 0 AND n.nspname NOT IN {SYSTEM_SCHEMAS}
          AND n.nspname !~ '^pg_(toast|temp)'
          AND (a.privilege_type = 'CREATE' OR n.nspname <> 'public')) g),
  'grant_options', (SELECT coalesce(json_agg(what ORDER BY what), '[]') FROM (
      SELECT format('%s on %I.%I to %I', a.privilege_type, n.nspname, c.relname, r.rolname)
          AS what
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
             aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
        WHERE a.is_grantable AND a.grantee <> c.relowner AND NOT r.rolsuper
      UNION ALL
      SELECT format('%s on schema %I to %I', a.privilege_type, n.nspname, r.rolname)
        FROM pg_namespace n, aclexplode(n.nspacl) a JOIN pg_roles r ON r.oid = a.grantee
        WHERE a.is_grantable AND a.grantee <> n.nspowner AND NOT r.rolsuper
      UNION ALL
      SELECT format('%s on function %s to %I', a.privilege_type, p.oid::regprocedure,
          r.rolname)
        FROM pg_proc p, aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
        WHERE a.is_grantable AND a.grantee <> p.proowner AND NOT r.rolsuper) g),
  'security_definers', (SELECT coalesce(json_agg(format('%s owned by %I',
      p.oid::regprocedure, r.rolname) ORDER BY 1), '[]')
      FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
      WHERE p.prosecdef AND NOT r.rolsuper),
  'authid_grants', (SELECT coalesce(json_agg(format('%s to %s', a.privilege_type,
      CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END)
      ORDER BY 1), '[]')
      FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
      WHERE c.oid = 'pg_catalog.pg_authid'::regclass AND a.grantee <> c.relowner))
"""
#: The first session reads the server and its own database at once.
FIRST_QUERY = f"SELECT json_build_object('server', {SERVER_FACTS}, 'database', {DATABASE_FACTS})"
DATABASE_QUERY = f"SELECT {DATABASE_FACTS}"
#: Where the first session goes: every cluster has one of these.
FIRST_DATABASES = ("postgres", "template1")


@dataclass(frozen=True)
class ServerFacts:
    """What one running server shows from inside: the server query's JSON, and the
    database query's JSON of each database that accepts connections."""

    conf: PostgresConf
    server: dict[str, Any]
    databases: dict[str, dict[str, Any]]

    @property
    def unreachable_databases(self) -> list[str]:
        """Databases that accept no connection (template0): nothing can be created there."""
        return [d["name"] for d in self.server["databases"] if not d["connect"]]


def server_facts(host: Host, conf: PostgresConf) -> ServerFacts | None:
    """The facts of the server ``conf`` configures; None when it is not running (no socket).
    Raises HostError when a session cannot be opened or a query fails."""
    socket_dir = _socket_dir(host, conf)
    if socket_dir is None:
        return None
    psql = _psql(host, conf)
    port = conf.get("port")
    session = _Session(host, psql, socket_dir, port.value if port else "5432")
    first, facts = _first_session(session)
    databases = {first: facts["database"]}
    others = [
        d["name"] for d in facts["server"]["databases"] if d["connect"] and d["name"] != first
    ]
    with ThreadPoolExecutor(max_workers=DATABASE_WORKERS) as pool:
        found = pool.map(lambda name: session.query(name, DATABASE_QUERY), others)
        databases.update(zip(others, found, strict=True))
    return ServerFacts(conf, facts["server"], databases)


def _first_session(session: _Session) -> tuple[str, dict[str, Any]]:
    """(database, facts) of the first session: in postgres, else template1 (a cluster whose
    postgres database was dropped)."""
    try:
        return FIRST_DATABASES[0], session.query(FIRST_DATABASES[0], FIRST_QUERY)
    except HostError as exc:
        if "does not exist" not in str(exc):
            raise
    return FIRST_DATABASES[1], session.query(FIRST_DATABASES[1], FIRST_QUERY)


@dataclass(frozen=True)
class _Session:
    host: Host
    psql: str
    socket_dir: str
    port: str

    def query(self, database: str, sql: str) -> dict[str, Any]:
        conninfo = " ".join(
            f"{key}={_conninfo_quote(value)}"
            for key, value in (
                ("host", self.socket_dir),
                ("port", self.port),
                ("dbname", database),
                ("user", ACCOUNT),
                ("connect_timeout", "10"),
                ("application_name", "lappguard-audit"),
                ("options", SESSION_OPTIONS),
            )
        )
        argv = ["runuser", "-u", ACCOUNT, "--", self.psql, "-X", "-A", "-t", "-q",
                "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql]  # fmt: skip
        done = self.host.run(argv, timeout=20)
        if done.exit_code != 0:
            message = (done.stderr.strip() or f"exit {done.exit_code}").splitlines()[0][:300]
            raise HostError(f"psql in database {database!r} as {ACCOUNT}: {message}")
        try:
            return json.loads(done.stdout)
        except ValueError as exc:
            raise HostError(f"psql in database {database!r}: not JSON: {exc}") from exc


def _conninfo_quote(value: str) -> str:
    """A libpq connection-string value: single-quoted, with backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _socket_dir(host: Host, conf: PostgresConf) -> str | None:
    """The directory holding the server's socket, when the socket is there (it runs)."""
    port = conf.get("port")
    setting = conf.get("unix_socket_directories") or conf.get("unix_socket_directory")
    listed = [d.strip() for d in setting.value.split(",")] if setting else list(SOCKET_DIRS)
    for directory in listed:
        if directory and not directory.startswith("@"):
            directory = (
                directory
                if directory.startswith("/")
                else posixpath.join(conf.data_directory(), directory)
            )
            if host.exists(f"{directory}/.s.PGSQL.{port.value if port else '5432'}"):
                return directory
    return None


def _psql(host: Host, conf: PostgresConf) -> str:
    """The server's own psql: Debian's per-version one, else the one beside a running
    postmaster's binary, else whatever psql the PATH finds."""
    candidates = [f"/usr/lib/postgresql/{conf.version}/bin/psql"] if conf.version else []
    for process in host.processes():
        if process.name in SERVER_PROCESSES and process.cmdline[:1]:
            program = process.cmdline[0]
            if program.startswith("/"):
                candidates.append(f"{posixpath.dirname(program)}/psql")
    for candidate in candidates:
        if host.exists(candidate):
            return candidate
    return "psql"
