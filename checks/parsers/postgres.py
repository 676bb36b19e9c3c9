"""postgresql.conf and pg_hba.conf read the way the PostgreSQL server reads them.

postgresql.conf: the token rules of guc-file.l (``key = value`` or ``key value``, '...'
strings with '' and backslash escapes, ``#`` comments), ``include``, ``include_if_exists``
and ``include_dir`` relative to the including file, the LAST value winning, and
``postgresql.auto.conf`` (ALTER SYSTEM) read after everything else. A line PostgreSQL
would reject is reported and skipped.

pg_hba.conf: records with comma lists, double quotes (a quoted keyword is a plain name),
``\\`` line continuations, address+netmask columns and the PG16 include directives.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass, field

from checks.hosts import Host, HostError
from checks.parsers.includes import IncludeGuard
from checks.parsers.lines import joined_at_nul, numbered
from checks.parsers.origin import Origin
from checks.parsers.pg_address import HbaAddress, Network, RejectedLine, read_address
from checks.yamlsource import Problem

CLUSTER_GLOB = "/etc/postgresql/*/*/postgresql.conf"  # Debian's and PGDG's packages
#: Where a server that is not a Debian cluster keeps postgresql.conf: in its data directory.
DATA_DIR_CONFIGS = (
    "/var/lib/postgresql/data/postgresql.conf",  # the official container image
    "/usr/local/pgsql/data/postgresql.conf",  # built from source (the install's default)
    "/var/lib/pgsql/data/postgresql.conf",  # Red Hat's packages
    "/var/lib/pgsql/*/data/postgresql.conf",  # PGDG's RPMs
    "/var/lib/postgres/data/postgresql.conf",  # Arch
)
CONFIG_GLOBS = (CLUSTER_GLOB, *DATA_DIR_CONFIGS)
#: Names of the server process (the postmaster and its children).
SERVER_PROCESSES = ("postgres", "postmaster")
AUTO_CONF = "postgresql.auto.conf"
MAX_DEPTH = 10  # CONF_FILE_MAX_DEPTH
_REFUSED = "PostgreSQL rejects this"

#: Built-in defaults for settings audits look at; (first major version, value) in order.
DEFAULTS: dict[str, tuple[tuple[int, str], ...]] = {
    "listen_addresses": ((0, "localhost"),),
    "port": ((0, "5432"),),
    "password_encryption": ((0, "md5"), (14, "scram-sha-256")),
    "log_connections": ((0, "off"),),
    "log_disconnections": ((0, "off"),),
    "log_line_prefix": ((0, ""), (10, "%m [%p] ")),
    "ssl": ((0, "off"),),
    "ssl_min_protocol_version": ((12, "TLSv1"), (14, "TLSv1.2")),
    "ssl_ciphers": ((0, "HIGH:MEDIUM:+3DES:!aNULL"),),
    "logging_collector": ((0, "off"),),
    "log_directory": ((0, "pg_log"), (10, "log")),
    "log_hostname": ((0, "off"),),
}

# guc-file.l token classes; on equal length the earlier rule wins, as in flex.
# PostgreSQL's lexer: a letter is [A-Za-z_] or any non-ASCII character. Written as negated
# ASCII classes because a \x80-\uffff range makes re compile for tens of milliseconds.
_ID_START = r"[^\x00-@\[-\^`{-\x7f]"
_ID_CHAR = r"[^\x00-/:-@\[-\^`{-\x7f]"
_TOKENS = (
    ("id", re.compile(rf"{_ID_START}{_ID_CHAR}*")),
    ("qualified_id", re.compile(rf"{_ID_START}{_ID_CHAR}*\.{_ID_START}{_ID_CHAR}*")),
    ("string", re.compile(r"'(?:[^'\\\n]|\\.|'')*'")),
    ("unquoted", re.compile(rf"{_ID_START}(?:{_ID_CHAR}|[-._:/])*")),
    ("integer", re.compile(r"[-+]?(?:0x[0-9a-fA-F]+|[0-9]+)[a-zA-Z]*")),
    ("real", re.compile(r"[-+]?[0-9]*\.[0-9]*(?:[Ee][-+]?[0-9]+)?")),
    ("equals", re.compile(r"=")),
)
_VALUE_KINDS = ("id", "string", "unquoted", "integer", "real")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_OCTAL = re.compile(r"[0-7]{1,3}")
#: In a quoted value: a run of plain characters, a backslash escape, or a doubled quote.
_STRING_PART = re.compile(r"[^\\']+|\\(?:[0-7]{1,3}|.)|''|\\|'", re.DOTALL)


@dataclass(frozen=True)
class PgSetting:
    name: str
    value: str
    origin: Origin | None  # None: PostgreSQL's built-in default

    def __str__(self) -> str:
        where = str(self.origin) if self.origin else "built-in default"
        return f"{self.name} = {self.value!r} ({where})"


@dataclass
class PostgresConf:
    """One cluster's settings after every include, last assignment winning."""

    path: str
    version: int | None
    settings: dict[str, PgSetting] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def get(self, name: str) -> PgSetting | None:
        """The effective value: from a file, else the built-in default of this version."""
        name = name.lower()
        if name in self.settings:
            return self.settings[name]
        value = default_value(name, self.version)
        return None if value is None else PgSetting(name, value, None)

    def hba_path(self) -> str:
        """Where the server reads pg_hba.conf: ``hba_file`` (Debian sets it), else beside us."""
        setting = self.settings.get("hba_file")
        return setting.value if setting else f"{_directory(self.path)}/pg_hba.conf"

    def data_directory(self) -> str:
        """``data_directory``, else the configuration's own directory (``postgres -D``)."""
        setting = self.settings.get("data_directory")
        return setting.value.rstrip("/") if setting else _directory(self.path)


def default_value(name: str, version: int | None) -> str | None:
    """Built-in default of ``name`` for a major version (None: newest known)."""
    value = None
    for since, candidate in DEFAULTS.get(name, ()):
        if version is None or version >= since:
            value = candidate
    return value


def find_clusters(host: Host, running: bool = False) -> list[str]:
    """Every server's postgresql.conf: Debian clusters (/etc/postgresql/<version>/<name>) and
    data directories where other installations keep it; with ``running`` on a live host
    also the configuration each running postmaster was started with (a server in /opt).

    File checks leave ``running`` off, so a live audit and one of the same files under
    ``--root`` judge the same servers; checks inside running servers turn it on.
    """
    found = [path for pattern in CONFIG_GLOBS for path in host.glob(pattern)]
    if running and host.is_live:
        found.extend(postmaster_configs(host))
    return list(dict.fromkeys(found))


def postmaster_configs(host: Host) -> list[str]:
    """The configuration file of each running postmaster, from its command line
    (``-c config_file=...``, ``--config-file=...``, else ``-D <data directory>``)."""
    found = []
    for process in host.processes():
        if process.name in SERVER_PROCESSES and process.cmdline[1:]:
            path = _config_from_argv(process.cmdline[1:])
            if path and path.startswith("/"):
                found.append(posixpath.normpath(path))
    return found


def _config_from_argv(argv: tuple[str, ...]) -> str | None:
    """postgresql.conf of a postmaster started with ``argv`` (the first program argument on)."""
    data_dir = None
    for index, arg in enumerate(argv):
        following = argv[index + 1] if index + 1 < len(argv) else ""
        if arg == "-c" and following.replace("-", "_").startswith("config_file="):
            return following.partition("=")[2]
        if arg.startswith(("--config-file=", "--config_file=")):
            return arg.partition("=")[2]
        if arg == "-D":
            data_dir = following
        elif arg.startswith("-D") and len(arg) > 2:
            data_dir = arg[2:]
    return f"{data_dir.rstrip('/')}/postgresql.conf" if data_dir else None


def cluster_version(host: Host, path: str, data_directory: str) -> int | None:
    """The major version: from a Debian cluster's path, else the data directory's PG_VERSION
    (None when neither tells, and the newest known defaults apply)."""
    match = re.search(r"/postgresql/(\d+)(?:\.\d+)?/[^/]+/postgresql\.conf$", path)
    if match:
        return int(match.group(1))
    try:
        text = host.read_text(f"{data_directory}/PG_VERSION").strip()
    except HostError:
        return None
    major = re.match(r"(\d+)", text)
    return int(major.group(1)) if major else None


def parse_postgresql_conf(host: Host, path: str) -> PostgresConf:
    """Parse one server's configuration. Raises HostError when the main file is unreadable."""
    conf = PostgresConf(path, None)
    guard = IncludeGuard(conf.problems.append, MAX_DEPTH, _REFUSED)
    _parse_conf_file(host, conf, guard, (path,), required=True)
    conf.version = cluster_version(host, path, conf.data_directory())
    auto = f"{conf.data_directory()}/{AUTO_CONF}"
    if host.lexists(auto):
        _parse_conf_file(host, conf, guard, (auto,), required=True)
    return conf


def _parse_conf_file(
    host: Host, conf: PostgresConf, guard: IncludeGuard, chain: tuple[str, ...], required: bool
) -> None:
    """The last file of the include ``chain``; HostError when a required one is unreadable."""
    path = chain[-1]
    try:
        text = host.read_text(path)
    except HostError:
        if not required and not host.lexists(path):
            return
        raise
    conf.files.append(path)
    for number, line in numbered(text):  # guc-file.l: only \n ends a line, \r is a blank
        origin = Origin(path, number)
        parsed = _parse_conf_line(line)
        if parsed is None:
            continue
        if isinstance(parsed, str):
            conf.problems.append(origin.problem(f"{parsed} (PostgreSQL rejects this line)"))
            continue
        name, value = parsed
        if name in ("include", "include_if_exists", "include_dir"):
            _conf_include(host, conf, guard, name, _relative_to(path, value), origin, chain)
        else:
            conf.settings[name] = PgSetting(name, value, origin)


def _include_dir_files(host: Host, target: str, origin: Origin, problems: list) -> list[str]:
    """The ``*.conf`` files of an ``include_dir``, in the order PostgreSQL reads them
    (lexical, dot-files skipped); an unreadable directory is recorded as a problem."""
    try:
        names = host.listdir(target)
    except HostError as exc:
        problems.append(origin.problem(f"include_dir {target}: {exc}"))
        return []
    return [
        f"{target.rstrip('/')}/{name}"
        for name in sorted(n for n in names if n.endswith(".conf") and not n.startswith("."))
    ]


def _conf_include(
    host: Host,
    conf: PostgresConf,
    guard: IncludeGuard,
    kind: str,
    target: str,
    origin: Origin,
    chain: tuple[str, ...],
) -> None:
    if kind == "include_dir":
        paths = _include_dir_files(host, target, origin, conf.problems)
    elif kind == "include" and not host.lexists(target):
        conf.problems.append(origin.problem(f"include {target}: no such file"))
        return
    else:
        paths = [target]
    for path in paths:
        if guard.admit(chain, path, origin):
            _parse_conf_file(
                host, conf, guard, (*chain, path), required=kind != "include_if_exists"
            )


def _directory(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _relative_to(including: str, target: str) -> str:
    """An include target: relative to the including file's directory, as the server does."""
    if target.startswith("/"):
        return target
    return posixpath.normpath(f"{_directory(including)}/{target}")


def _parse_conf_line(line: str) -> tuple[str, str] | str | None:
    """(name, value), an error message, or None for a blank/comment line."""
    tokens = _lex(line)
    if isinstance(tokens, str):
        return tokens
    if not tokens:
        return None
    kind, name = tokens[0]
    if kind not in ("id", "qualified_id"):
        return f"syntax error near {name!r}"
    rest = tokens[1:]
    if rest and rest[0][0] == "equals":
        rest = rest[1:]
    if not rest:
        return f"{name}: missing value"
    kind, value = rest[0]
    if kind not in _VALUE_KINDS:
        return f"{name}: syntax error near {value!r}"
    if len(rest) > 1:
        return f"{name}: syntax error near {rest[1][1]!r}"
    if "." not in name and not name.isascii():
        return f"unrecognized configuration parameter {name!r}"  # built-in names are ASCII
    return name.lower(), _unquote(value) if kind == "string" else value


def _lex(line: str) -> list[tuple[str, str]] | str:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(line):
        ch = line[position]
        if ch in " \t\r":
            position += 1
            continue
        if ch == "#":
            break
        best: tuple[str, str] | None = None
        for kind, pattern in _TOKENS:
            match = pattern.match(line, position)
            if match and match.group() and (best is None or len(match.group()) > len(best[1])):
                best = (kind, match.group())
        if best is None:
            return f"unexpected character {ch!r}"
        tokens.append(best)
        position += len(best[1])
    return tokens


def _unquote(token: str) -> str:
    """GUC_scanstr: strip the quotes, '' -> ', backslash escapes (octal too).

    GUC_scanstr works on a C string: a NUL ends the token, and the character before it is
    dropped in place of the closing quote (``'ab<NUL>c'`` reads as ``a``).
    """
    body = token.partition("\0")[0][1:-1]
    return _STRING_PART.sub(_unescape, body)


def _unescape(part: re.Match[str]) -> str:
    """One piece of a quoted value: plain text, ``\\n``-style or octal escape, ``''``."""
    text = part.group()
    if text == "''":
        return "'"
    if len(text) < 2 or text[0] != "\\":
        return text  # plain text, or a lone backslash or quote at the end
    if _OCTAL.fullmatch(text, 1):
        return chr(int(text[1:], 8))
    return _ESCAPES.get(text[1], text[1])


# --- pg_hba.conf ---------------------------------------------------------------------------

CONNECTION_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
TCP_TYPES = CONNECTION_TYPES[1:]
#: Methods a Linux build of PostgreSQL accepts (sspi is Windows-only, bsd BSD-only).
METHODS = frozenset(
    [
        "trust",
        "reject",
        "md5",
        "password",
        "scram-sha-256",
        "gss",
        "ident",
        "peer",
        "pam",
        "ldap",
        "radius",
        "cert",
    ]
)
_BLANK = " \t\r"  # hba.c pg_isblank()
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool = False  # quoted before its first character: never a keyword


@dataclass(frozen=True)
class HbaRule:
    """One pg_hba record."""

    type: str
    databases: tuple[str, ...]
    users: tuple[str, ...]
    address: HbaAddress | None  # None for local records
    method: str
    options: tuple[str, ...]
    origin: Origin
    text: str

    @property
    def network(self) -> Network | None:
        """The address range; None for local, keywords, host names and non-contiguous masks."""
        return self.address.network if self.address else None

    @property
    def open_to_everyone(self) -> bool:
        """``all``, or an all-zero netmask (0.0.0.0/0, ::/0, ``0/0``, ``0 0``, 127.0.0.1/0)."""
        return self.address is not None and self.address.everyone

    @property
    def loopback_only(self) -> bool:
        """A host record that can only match clients on this machine's loopback
        (127.0.0.0/8, ::1, or the name localhost); never a local record, a keyword
        (samehost is every address of the host) or a non-contiguous netmask."""
        if self.address is None:
            return False
        if self.address.hostname is not None:
            return self.address.hostname.lower() == "localhost"
        network = self.network
        return (
            network is not None
            and network.network_address.is_loopback
            and (network.version == 4 or network.prefixlen == 128)
        )

    def __str__(self) -> str:
        return f"{self.origin}: {self.text}"


@dataclass
class HbaFile:
    path: str
    rules: list[HbaRule] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def parse_pg_hba(host: Host, path: str) -> HbaFile:
    """Parse pg_hba.conf and its includes. Raises HostError when the main file is unreadable."""
    hba = HbaFile(path)
    guard = IncludeGuard(hba.problems.append, MAX_DEPTH, _REFUSED)
    _parse_hba_file(host, hba, guard, (path,))
    return hba


def _parse_hba_file(host: Host, hba: HbaFile, guard: IncludeGuard, chain: tuple[str, ...]) -> None:
    """The last file of the include ``chain``."""
    path = chain[-1]
    text = host.read_text(path)
    hba.files.append(path)
    for number, line in _logical_lines(text):
        origin = Origin(path, number)
        fields = _hba_fields(line)
        if not fields:
            continue
        first = fields[0][0]
        keyword = first.text if not first.quoted else ""
        if keyword in ("include", "include_if_exists", "include_dir"):
            _hba_include(host, hba, guard, keyword, fields, origin, chain)
            continue
        try:
            rule = _hba_rule(fields, origin, line.split("#", 1)[0].strip(_BLANK))
        except RejectedLine as exc:
            hba.problems.append(origin.problem(f"{exc} (PostgreSQL rejects this line)"))
        else:
            hba.rules.append(rule)


def _hba_include(
    host: Host,
    hba: HbaFile,
    guard: IncludeGuard,
    keyword: str,
    fields: list[list[Token]],
    origin: Origin,
    chain: tuple[str, ...],
) -> None:
    if len(fields) != 2 or len(fields[1]) != 1:
        hba.problems.append(origin.problem(f"{keyword} takes exactly one file name"))
        return
    target = _relative_to(chain[-1], fields[1][0].text)
    if keyword == "include_dir":
        paths = _include_dir_files(host, target, origin, hba.problems)
    elif not host.lexists(target):
        if keyword == "include":
            hba.problems.append(origin.problem(f"include {target}: no such file"))
        return
    else:
        paths = [target]
    for path in paths:
        if guard.admit(chain, path, origin):
            _parse_hba_file(host, hba, guard, (*chain, path))


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Records as hba.c reads them: LF-ended lines (a NUL swallows its LF), trailing CRs and
    LFs stripped, and a final backslash joining the next line with no separator (even in a
    comment), so ``0.0.0.0/\\`` + ``0`` is ``0.0.0.0/0``."""
    lines: list[tuple[int, str]] = []
    pending: list[str] | None = None  # pieces of a record continued with backslashes
    start = 0
    for number, raw in joined_at_nul(text):
        if pending is None:
            start, pending = number, []
        line = raw.rstrip("\r\n")
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        lines.append((start, "".join(pending) + line))
        pending = None
    if pending is not None:
        lines.append((start, "".join(pending)))
    return lines


def _hba_fields(line: str) -> list[list[Token]]:
    """Blank-separated fields, each a comma list of tokens (hba.c next_field_expand())."""
    fields: list[list[Token]] = []
    current: list[Token] = []
    i = 0
    while i < len(line):
        token, i, comma = _next_token(line, i)
        if token is not None:
            current.append(token)
        if comma:
            continue
        if current:
            fields.append(current)
        current = []
    if current:
        fields.append(current)
    return fields


def _next_token(line: str, i: int) -> tuple[Token | None, int, bool]:
    """hba.c next_token() from ``i``: (token or None, where it stopped, ended by a comma).

    Blanks and commas before a token are skipped, ``""`` inside quotes is a quote, ``#``
    outside quotes ends the line, and an unclosed quote runs to the end of the line.
    """
    n = len(line)
    while i < n and (line[i] in _BLANK or line[i] == ","):
        i += 1
    text: list[str] = []
    in_quote = was_quote = saw_quote = initial_quote = False
    while i < n and (in_quote or line[i] not in _BLANK):
        ch = line[i]
        if ch == "#" and not in_quote:
            i = n
            break
        if ch == "," and not in_quote:
            return Token("".join(text), initial_quote), i + 1, True
        if ch != '"' or was_quote:
            text.append(ch)
        was_quote = in_quote and ch == '"' and not was_quote
        if ch == '"':
            in_quote, saw_quote = not in_quote, True
            initial_quote = initial_quote or not text
        i += 1
    token = Token("".join(text), initial_quote) if saw_quote or text else None
    return token, i, False


def _hba_rule(fields: list[list[Token]], origin: Origin, text: str) -> HbaRule:
    """One record as parse_hba_line() checks it; raises RejectedLine when the server would not
    load the line (and so the whole file)."""
    kind = fields[0][0].text
    if kind not in CONNECTION_TYPES or fields[0][0].quoted:
        raise RejectedLine(f"invalid connection type {kind!r}")
    needed = 4 if kind == "local" else 5
    if len(fields) < needed:
        raise RejectedLine(f"{kind} record is missing fields")
    databases = tuple(t.text for t in fields[1])
    users = tuple(t.text for t in fields[2])
    rest = fields[3:]
    address = None
    if kind != "local":
        if len(rest[0]) > 1:
            raise RejectedLine("multiple values specified for host address")
        address = read_address(rest[0][0].text, rest[0][0].quoted)
        rest = rest[1:]
        if address.needs_netmask:
            if not rest:
                raise RejectedLine("end-of-line before netmask specification")
            if len(rest[0]) > 1:
                raise RejectedLine("multiple values specified for netmask")
            address = address.with_netmask(rest[0][0].text)
            rest = rest[1:]
    if not rest:
        raise RejectedLine("end-of-line before authentication method")
    if len(rest[0]) > 1:
        raise RejectedLine("multiple values specified for authentication type")
    method = rest[0][0].text
    _check_method(kind, method)
    options = tuple(t.text for column in rest[1:] for t in column)
    for option in options:
        if "=" not in option:
            raise RejectedLine(f"authentication option not in name=value format: {option}")
    return HbaRule(kind, databases, users, address, method, options, origin, text)


def _check_method(kind: str, method: str) -> None:
    """The method checks of parse_hba_line() that do not depend on server settings."""
    if method not in METHODS:
        raise RejectedLine(f"invalid authentication method {method!r}")
    if kind == "local" and method == "gss":
        raise RejectedLine("gssapi authentication is not supported on local sockets")
    if kind != "local" and method == "peer":
        raise RejectedLine("peer authentication is only supported on local sockets")
    if kind != "hostssl" and method == "cert":
        raise RejectedLine("cert authentication is only supported on hostssl connections")
