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
from checks.parsers.origin import Origin
from checks.yamlsource import Problem

CLUSTER_GLOB = "/etc/postgresql/*/*/postgresql.conf"
AUTO_CONF = "postgresql.auto.conf"
MAX_DEPTH = 10  # CONF_FILE_MAX_DEPTH

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


def find_clusters(host: Host) -> list[str]:
    """Debian clusters: /etc/postgresql/<version>/<name>/postgresql.conf."""
    return host.glob(CLUSTER_GLOB)


def cluster_version(path: str) -> int | None:
    match = re.search(r"/postgresql/(\d+)(?:\.\d+)?/[^/]+/postgresql\.conf$", path)
    return int(match.group(1)) if match else None


def parse_postgresql_conf(host: Host, path: str) -> PostgresConf:
    """Parse one server's configuration. Raises HostError when the main file is unreadable."""
    conf = PostgresConf(path, cluster_version(path))
    _parse_conf_file(host, conf, path, 0, required=True)
    auto = f"{conf.data_directory()}/{AUTO_CONF}"
    if host.lexists(auto):
        _parse_conf_file(host, conf, auto, 0, required=True)
    return conf


def _parse_conf_file(host: Host, conf: PostgresConf, path: str, depth: int, required: bool) -> None:
    if depth > MAX_DEPTH:
        conf.problems.append(Problem(path, 0, "", "includes nested too deeply"))
        return
    try:
        text = host.read_text(path)
    except HostError:
        if not required and not host.lexists(path):
            return
        raise
    conf.files.append(path)
    for number, line in enumerate(text.splitlines(), 1):
        origin = Origin(path, number)
        parsed = _parse_conf_line(line)
        if parsed is None:
            continue
        if isinstance(parsed, str):
            conf.problems.append(origin.problem(f"{parsed} (PostgreSQL rejects this line)"))
            continue
        name, value = parsed
        if name in ("include", "include_if_exists", "include_dir"):
            _conf_include(host, conf, name, _relative_to(path, value), origin, depth)
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
    host: Host, conf: PostgresConf, kind: str, target: str, origin: Origin, depth: int
) -> None:
    if kind == "include_dir":
        for path in _include_dir_files(host, target, origin, conf.problems):
            _parse_conf_file(host, conf, path, depth + 1, True)
        return
    if kind == "include" and not host.lexists(target):
        conf.problems.append(origin.problem(f"include {target}: no such file"))
        return
    _parse_conf_file(host, conf, target, depth + 1, required=kind == "include")


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
    """GUC_scanstr: strip the quotes, '' -> ', backslash escapes (octal too)."""
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            octal = re.match(r"[0-7]{1,3}", body[i + 1 :])
            if octal:
                out.append(chr(int(octal.group(), 8)))
                i += 1 + len(octal.group())
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        if ch == "'" and body[i + 1 : i + 2] == "'":
            out.append("'")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


# --- pg_hba.conf ---------------------------------------------------------------------------

CONNECTION_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
TCP_TYPES = CONNECTION_TYPES[1:]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool = False


@dataclass(frozen=True)
class HbaRule:
    """One pg_hba record."""

    type: str
    databases: tuple[str, ...]
    users: tuple[str, ...]
    address: str | None  # as written (with the netmask column joined as addr/mask)
    network: Network | None  # None for local, all, samehost, samenet and host names
    method: str
    options: tuple[str, ...]
    origin: Origin
    text: str

    @property
    def open_to_everyone(self) -> bool:
        """``all``, or a prefix of length 0 (0.0.0.0/0, ::/0, but also 127.0.0.1/0)."""
        if self.address == "all":
            return True
        return self.network is not None and self.network.prefixlen == 0

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
    _parse_hba_file(host, hba, path, 0)
    return hba


def _parse_hba_file(host: Host, hba: HbaFile, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        hba.problems.append(Problem(path, 0, "", "includes nested too deeply"))
        return
    text = host.read_text(path)
    hba.files.append(path)
    for number, line in _logical_lines(text):
        origin = Origin(path, number)
        fields = _hba_fields(line)
        if isinstance(fields, str):
            hba.problems.append(origin.problem(fields))
            continue
        if not fields:
            continue
        first = fields[0][0]
        keyword = first.text if not first.quoted else ""
        if keyword in ("include", "include_if_exists", "include_dir"):
            _hba_include(host, hba, keyword, fields, path, origin, depth)
            continue
        rule = _hba_rule(fields, origin, line.split("#", 1)[0].strip())
        if isinstance(rule, str):
            hba.problems.append(origin.problem(f"{rule} (PostgreSQL rejects this line)"))
        else:
            hba.rules.append(rule)


def _hba_include(
    host: Host,
    hba: HbaFile,
    keyword: str,
    fields: list[list[Token]],
    path: str,
    origin: Origin,
    depth: int,
) -> None:
    if len(fields) != 2 or len(fields[1]) != 1:
        hba.problems.append(origin.problem(f"{keyword} takes exactly one file name"))
        return
    target = _relative_to(path, fields[1][0].text)
    if keyword == "include_dir":
        for included in _include_dir_files(host, target, origin, hba.problems):
            _parse_hba_file(host, hba, included, depth + 1)
        return
    if not host.lexists(target):
        if keyword == "include":
            hba.problems.append(origin.problem(f"include {target}: no such file"))
        return
    _parse_hba_file(host, hba, target, depth + 1)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, numbered by their first physical line."""
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if raw.endswith("\\"):  # as PostgreSQL: even inside a comment
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        lines.append((start, " ".join(pending)))
        pending = []
    if pending:
        lines.append((start, " ".join(pending)))
    return lines


def _hba_fields(line: str) -> list[list[Token]] | str:
    """Whitespace-separated fields, each a comma list of tokens; ``#`` outside quotes ends."""
    fields: list[list[Token]] = []
    current: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch in " \t\r":
            i += 1
            continue
        if ch == "#":
            break
        text, quoted = [], False
        in_quote = False
        while i < n:
            ch = line[i]
            if ch == '"':
                in_quote, quoted = not in_quote, True
            elif not in_quote and (ch in " \t\r," or ch == "#"):
                break
            else:
                text.append(ch)
            i += 1
        if in_quote:
            return "unterminated quoted string"
        current.append(Token("".join(text), quoted))
        if i < n and line[i] == ",":
            i += 1
            continue
        fields.append(current)
        current = []
    if current:
        fields.append(current)
    return fields


def _hba_rule(fields: list[list[Token]], origin: Origin, text: str) -> HbaRule | str:
    kind = fields[0][0].text
    if kind not in CONNECTION_TYPES or fields[0][0].quoted:
        return f"invalid connection type {kind!r}"
    needed = 4 if kind == "local" else 5
    if len(fields) < needed:
        return f"{kind} record is missing fields"
    databases = tuple(t.text for t in fields[1])
    users = tuple(t.text for t in fields[2])
    rest = fields[3:]
    address, network = None, None
    if kind != "local":
        token = rest[0][0]
        rest = rest[1:]
        address, network, rest = _hba_address(token, rest)
        if isinstance(network, str):
            return network
    if not rest:
        return "missing authentication method"
    method = rest[0][0].text
    options = tuple(t.text for column in rest[1:] for t in column)
    return HbaRule(kind, databases, users, address, network, method, options, origin, text)


def _hba_address(
    token: Token, rest: list[list[Token]]
) -> tuple[str, Network | str | None, list[list[Token]]]:
    """The ADDRESS (plus a separate netmask column) of a host record."""
    value = token.text
    if not token.quoted and value in ("all", "samehost", "samenet"):
        return value, None, rest
    if "/" in value:
        try:
            return value, ipaddress.ip_network(value, strict=False), rest
        except ValueError:
            return value, f"invalid IP address/mask {value!r}", rest
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return value, None, rest  # a host name (".example.com" matches a suffix)
    mask = rest[0][0].text  # the record has a method column after this one
    try:
        network = ipaddress.ip_network(f"{value}/{mask}", strict=False)
    except ValueError:
        return value, f"invalid netmask {mask!r}", rest
    return f"{value}/{mask}", network, rest[1:]
