"""Apache httpd configuration read the way httpd reads it (Debian layout), through a Host.

httpd decides at read time what a file means: ``Include`` pulls files in where it stands,
``<IfModule>`` looks at the modules loaded *so far*, ``Define`` feeds ``<IfDefine>`` and
``${VAR}``. So the reader walks the files in httpd's order and keeps that state, instead of
grepping files: Debian's serve-cgi-bin.conf only defines its ``ScriptAlias`` when a CGI module
is loaded, and a grep would get that wrong both ways. Every directive keeps its file:line.

The loaded-module list reported to checks is ``apache2ctl -M`` when that runs (a live host's
/etc/apache2), else the LoadModule lines read; evidence says which. ``<IfModule>`` always
follows the in-order state, as httpd itself does while reading.

What it does not model: runtime ``<If>`` expressions (kept as ordinary sections),
``<Macro>``/``Use`` expansion (macro bodies are ignored), ``.htaccess`` files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from checks.hosts import CommandNotFound, Host, HostError, PlannedCommand
from checks.parsers.includes import IncludeGuard
from checks.parsers.lines import C_SPACE, cut_at_nul, lf_lines
from checks.parsers.origin import Origin
from checks.regexsafety import UnsafePattern, compile_safe
from checks.yamlsource import Problem

SERVER_ROOT = "/etc/apache2"
#: httpd's own version is not read; Debian 12 ships 2.4.x, so ``<IfVersion>`` compares to this.
ASSUMED_VERSION = (2, 4, 62)
#: Compiled into Debian's apache2 binary (``apache2ctl -M`` lists them as "static").
DEBIAN_STATIC_MODULES = (
    "core_module",
    "so_module",
    "watchdog_module",
    "http_module",
    "log_config_module",
    "logio_module",
    "version_module",
    "unixd_module",
)
#: Sections whose body is kept or dropped at read time instead of becoming a context.
CONDITIONALS = {"ifmodule", "ifdefine", "ifversion", "iffile", "ifdirective", "ifsection"}
_MAX_INCLUDE_DEPTH = 128  # httpd's AP_MAX_INCLUDE_DEPTH
#: Sections open at once: httpd has no limit, real configurations nest a handful.
MAX_SECTION_DEPTH = 64
#: A line may grow through ``${VAR}`` (``Define B ${A}${A}``, twenty times over, is 2^20).
MAX_EXPANDED_LINE = 1024 * 1024
_ENV_LINE = re.compile(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_SHELL_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_CONF_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DIRECTIVE_NAME = re.compile(r"[A-Za-z0-9_]+")  # every httpd directive is such a name
_CTL_LINE = re.compile(r"^\s*(\S+)\s+\((static|shared)\)\s*$")
#: Source-file spellings of ``<IfModule foo.c>`` that do not follow ``mod_X.c -> X_module``.
_SOURCE_NAMES = {
    "core": "core_module",
    "http_core": "http_module",
    "event": "mpm_event_module",
    "prefork": "mpm_prefork_module",
    "worker": "mpm_worker_module",
    "sapi_apache2": "php5_module",
}
# The SSLProtocol vocabulary of mod_ssl, oldest first.
PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
#: ``all``: mod_ssl includes SSLv3 when OpenSSL still has it, so count it (conservative).
_ALL_PROTOCOLS = frozenset(PROTOCOLS[1:])
DEFAULT_SSL_PROTOCOL = ("all", "-SSLv3")
# Options keywords; ``All`` means all of them except MultiViews.
_OPTIONS = {
    "indexes": "Indexes",
    "includes": "Includes",
    "includesnoexec": "IncludesNOEXEC",
    "followsymlinks": "FollowSymLinks",
    "symlinksifownermatch": "SymLinksIfOwnerMatch",
    "execcgi": "ExecCGI",
    "multiviews": "MultiViews",
}
_OPTIONS_ALL = frozenset({"indexes", "includes", "followsymlinks", "execcgi"})
_OPTIONS_DEFAULT = frozenset({"followsymlinks"})


class ApacheConfigError(Exception):
    """The main configuration file could not be read at all."""


def module_id(name: str) -> str:
    """``mod_ssl.c``, ``ssl``, ``mod_ssl.so``, ``ssl_module`` -> ``ssl_module``; ``php8.2`` ->
    ``php_module`` (PHP 8 dropped the major version from its module name)."""
    text = name.strip().lower()
    if text.endswith("_module"):
        return text
    base = text.removesuffix(".c").removesuffix(".so")
    if base in _SOURCE_NAMES:
        return _SOURCE_NAMES[base]
    base = base.removeprefix("mod_")
    php = re.fullmatch(r"(?:lib)?php(\d*)(?:\.\d+)?", base)
    if php:
        major = php.group(1)
        return "php_module" if not major or int(major) >= 8 else f"php{major}_module"
    return f"{base}_module"


@dataclass(frozen=True)
class Section:
    """An open ``<Kind args>`` container (conditionals are resolved and never appear here)."""

    name: str  # as written: "VirtualHost", "Directory", "Location", ...
    args: tuple[str, ...]
    origin: Origin

    @property
    def kind(self) -> str:
        return self.name.lower()

    def __str__(self) -> str:
        return f"<{' '.join((self.name, *self.args))}>"


@dataclass(frozen=True)
class Directive:
    name: str  # as written
    args: tuple[str, ...]  # unquoted, ``${VAR}`` substituted
    origin: Origin
    sections: tuple[Section, ...] = ()  # enclosing containers, outermost first

    @cached_property
    def key(self) -> str:
        """The name as Apache compares it (lower case); kept, as checks ask it thousands
        of times per audit."""
        return self.name.lower()

    @property
    def value(self) -> str:
        return " ".join(self.args)

    @property
    def vhost_section(self) -> Section | None:
        return next((s for s in self.sections if s.kind == "virtualhost"), None)

    def __str__(self) -> str:
        inside = "".join(f" in {s}" for s in self.sections)
        return f"{self.origin}: {self.name} {self.value}{inside}"


@dataclass
class VirtualHost:
    """A ``<VirtualHost>``, or (``section`` None) the main server answering Listen ports that
    no virtual host claims."""

    section: Section | None
    directives: list[Directive] = field(default_factory=list)
    ssl: bool = False
    listens: tuple[Directive, ...] = ()  # main server only: the Listen lines it answers

    @property
    def is_main_server(self) -> bool:
        return self.section is None

    @property
    def own(self) -> list[Directive]:
        """Directives at this host's own level (not inside a nested section)."""
        level = (self.section,) if self.section else ()
        return [d for d in self.directives if d.sections == level]

    @property
    def server_name(self) -> str | None:
        names = [d.args[0] for d in self.own if d.key == "servername" and d.args]
        return names[-1] if names else None

    def __str__(self) -> str:
        if self.section is None:
            ports = ", ".join(f"Listen {d.value} at {d.origin}" for d in self.listens)
            return f"main server ({ports})"
        name = f" {self.server_name}" if self.server_name else ""
        return f"{self.section}{name} ({self.section.origin})"


@dataclass(frozen=True)
class Effective:
    """The value a directive has for the server or a virtual host, and where it was set."""

    value: str
    sources: tuple[Directive, ...]
    inherited: bool  # a vhost's value coming from the server level


@dataclass(frozen=True)
class ProtocolSet:
    versions: frozenset[str]
    source: Directive | None  # None: Apache's default applies

    @property
    def ordered(self) -> list[str]:
        return [p for p in PROTOCOLS if p in self.versions]


@dataclass
class ApacheConfig:
    """Every directive in reading order (with file:line and enclosing sections) and the
    virtual hosts they form; ``problems`` are what httpd would refuse or could not read."""

    server_root: str
    directives: list[Directive]
    vhosts: list[VirtualHost]
    modules: frozenset[str]
    module_source: str  # for evidence: where the module list came from
    load_modules: list[Directive]  # LoadModule lines that took effect
    problems: list[Problem]
    files: list[str]

    def server_level(self, name: str) -> list[Directive]:
        key = name.lower()
        return [d for d in self.directives if d.key == key and not d.sections]

    def anywhere(self, names: Iterable[str]) -> list[Directive]:
        keys = {n.lower() for n in names}
        return [d for d in self.directives if d.key in keys]

    def vhost_of(self, directive: Directive) -> VirtualHost | None:
        section = directive.vhost_section
        return next((v for v in self.vhosts if v.section == section), None) if section else None

    def sites(self) -> list[VirtualHost]:
        """Every virtual host, plus the main server when some Listen port has no vhost."""
        covered = {_vhost_port(a) for v in self.vhosts if v.section for a in v.section.args}
        if "*" in covered:
            return list(self.vhosts)
        listens = self.server_level("Listen")
        uncovered = tuple(d for d in listens if _vhost_port(_listen_address(d)) not in covered)
        if not uncovered:
            return list(self.vhosts)
        addresses = [_listen_address(d) for d in uncovered]
        ssl = _engine_on(self.server_level("SSLEngine"), addresses)
        outside = [d for d in self.directives if d.vhost_section is None]
        return [*self.vhosts, VirtualHost(None, outside, ssl, uncovered)]

    def effective(self, name: str, vhost: VirtualHost | None = None) -> Effective | None:
        """A vhost's own last value, else the server's last value; Options merge +/-."""
        server = self.server_level(name)
        vhost = None if vhost is None or vhost.is_main_server else vhost
        own = [d for d in vhost.own if d.key == name.lower()] if vhost else []
        if name.lower() == "options":
            sources = tuple(server + own)
            if not sources:
                return None
            value = " ".join(_OPTIONS[o] for o in sorted(merge_options(sources))) or "None"
            return Effective(value, sources, inherited=not own and vhost is not None)
        if own:
            return Effective(own[-1].value, (own[-1],), inherited=False)
        if server:
            return Effective(server[-1].value, (server[-1],), inherited=vhost is not None)
        return None

    def ssl_protocols(self, vhost: VirtualHost) -> ProtocolSet:
        """The protocol versions an SSL site accepts; raises ValueError on an illegal token."""
        setting = self.effective("SSLProtocol", vhost)
        if setting is None:
            return ProtocolSet(protocol_set(DEFAULT_SSL_PROTOCOL), None)
        source = setting.sources[-1]
        return ProtocolSet(protocol_set(source.args), source)


def protocol_set(tokens: Sequence[str]) -> frozenset[str]:
    """mod_ssl's SSLProtocol rules: left to right, ``+``/``-`` add/remove, a bare word replaces."""
    current: set[str] = set()
    lookup = {p.lower(): frozenset({p}) for p in PROTOCOLS} | {"all": _ALL_PROTOCOLS}
    for token in tokens:
        action = token[0] if token[:1] in ("+", "-") else ""
        word = token[1:] if action else token
        versions = lookup.get(word.lower())
        if versions is None:
            raise ValueError(f"SSLProtocol: illegal protocol {token!r}")
        if action == "-":
            current -= versions
        elif action == "+":
            current |= versions
        else:
            current = set(versions)
    return frozenset(current)


def option_changes(directive: Directive) -> tuple[bool, set[str], set[str]]:
    """(replaces, turned on, turned off) for a +/- list such as Options; keywords lower case.

    A bare keyword replaces the inherited set; for Options, ``All`` and ``None`` expand.
    """
    replaces, on, off = False, set(), set()
    is_options = directive.key == "options"
    for token in directive.args:
        action = token[0] if token[:1] in ("+", "-") else ""
        word = (token[1:] if action else token).lower()
        words = {word}
        if is_options and word == "all":
            words = set(_OPTIONS_ALL)
        elif is_options and word == "none":
            words = set()
        if not action:
            replaces = True
        (off if action == "-" else on).update(words)
    return replaces, on, off


def merge_options(directives: Iterable[Directive]) -> frozenset[str]:
    """Options lines applied in order, starting from httpd 2.4's default (FollowSymLinks)."""
    current = set(_OPTIONS_DEFAULT)
    for directive in directives:
        replaces, on, off = option_changes(directive)
        if replaces:
            current = set()
        current = (current | on) - off
    return frozenset(current)


def load_apache_config(host: Host, server_root: str = SERVER_ROOT) -> ApacheConfig:
    """Read ``apache2.conf`` and everything it includes; raise ApacheConfigError if unreadable."""
    variables, problems = _read_envvars(host, f"{server_root}/envvars")
    variables.setdefault("APACHE_CONFDIR", server_root)
    ctl_modules, note = _ctl_modules(host, server_root)
    static = [m for m, kind in (ctl_modules or {}).items() if kind == "static"]
    reader = _Reader(host, server_root, variables, static or DEBIAN_STATIC_MODULES)
    reader.problems.extend(problems)
    main = f"{server_root}/apache2.conf"
    try:
        text = host.read_text(main)
    except HostError as exc:
        raise ApacheConfigError(f"cannot read {main}: {exc}") from exc
    reader.parse(text, (), (main,))
    if ctl_modules is not None:
        modules, source = frozenset(ctl_modules), "loaded modules as reported by apache2ctl -M"
    else:
        modules = frozenset(reader.modules)
        source = f"loaded modules from the LoadModule lines read ({note})"
    vhosts = _vhosts(reader.vhost_sections, reader.directives)
    return ApacheConfig(
        server_root,
        reader.directives,
        vhosts,
        modules,
        source,
        reader.load_modules,
        reader.problems,
        reader.files,
    )


def _read_envvars(host: Host, path: str) -> tuple[dict[str, str], list[Problem]]:
    """``export NAME=value`` lines of Debian's envvars (a shell file that is never run)."""
    try:
        text = host.read_text(path)
    except HostError as exc:
        if host.lexists(path):
            return {}, [Problem(path, 0, "", f"unreadable ({exc})")]
        return {}, []
    values: dict[str, str] = {}
    for line in lf_lines(text):  # a shell script: only LF ends a line
        match = _ENV_LINE.match(line)
        if match:
            raw = match.group(2).strip().strip("'\"")
            values[match.group(1)] = _SHELL_VAR.sub(
                lambda m: values.get(m.group(1) or m.group(2), ""), raw
            )
    return values, []


#: The modules the live server loads, static and shared (``CheckType.commands``).
APACHECTL_MODULES = PlannedCommand(("apache2ctl", "-M"))


def _ctl_modules(host: Host, server_root: str) -> tuple[dict[str, str] | None, str]:
    """``apache2ctl -M`` on a live host (module -> static|shared), or None and why not."""
    if server_root != SERVER_ROOT:
        return None, f"apache2ctl -M reads {SERVER_ROOT}, not {server_root}"
    try:
        done = host.run(APACHECTL_MODULES.argv)
    except CommandNotFound as exc:
        return None, f"apache2ctl -M not available: {exc}"
    except HostError as exc:
        return None, f"apache2ctl -M failed: {exc}"
    modules = {}
    for line in lf_lines(done.stdout):
        match = _CTL_LINE.match(line)
        if match:
            modules[module_id(match.group(1))] = match.group(2)
    if done.exit_code != 0 or not modules:
        first = (done.stderr.strip().splitlines() or ["no module list"])[0]
        return None, f"apache2ctl -M exited {done.exit_code}: {first}"
    return modules, "apache2ctl -M"


@dataclass
class _Frame:
    """An open container in the file being read: a Section, or a true conditional (None).

    ``sections`` are all the sections open inside it, outermost first, kept with the frame so
    a line deep inside 40,000 of them does not rebuild the tuple.
    """

    name: str
    section: Section | None
    origin: Origin
    sections: tuple[Section, ...] = ()


class _Reader:
    """Walks the configuration in httpd's order, carrying modules, defines and variables."""

    def __init__(self, host: Host, server_root: str, env: dict[str, str], static: Iterable[str]):
        self.host = host
        self.server_root = server_root
        self.variables = dict(env)
        self.defines: set[str] = set()
        self.modules = set(static)
        self.directives: list[Directive] = []
        self.load_modules: list[Directive] = []
        self.problems: list[Problem] = []
        self.files: list[str] = []
        self.vhost_sections: list[Section] = []
        self.guard = IncludeGuard(self.problems.append, _MAX_INCLUDE_DEPTH, "httpd refuses this")

    def parse(self, text: str, inherited: tuple[Section, ...], chain: tuple[str, ...]) -> None:
        """One file's lines, inside the ``inherited`` sections; ``chain`` ends with this file."""
        path = chain[-1]
        self.files.append(path)
        stack: list[_Frame] = []
        skipping: _Frame | None = None  # a false conditional or a <Macro> being skipped
        skip_depth = 0
        for origin, line in _logical_lines(path, text):
            open_sections = stack[-1].sections if stack else inherited
            if skipping is not None:
                if line.startswith("</"):
                    skip_depth -= 1
                    if skip_depth == 0:
                        self._close([*stack, skipping], line, origin)
                        skipping = None
                elif line.startswith("<"):
                    skip_depth += 1
                continue
            line = self._substitute(line, origin)
            if line is None:
                continue
            if line.startswith("</"):
                self._close(stack, line, origin)
            elif line.startswith("<"):
                if len(stack) >= MAX_SECTION_DEPTH:
                    self.problems.append(
                        origin.problem(
                            f"sections nested more than {MAX_SECTION_DEPTH} deep: "
                            "the rest of this file is not read"
                        )
                    )
                    return
                frame, keep = self._open(line, origin, open_sections)
                if frame is None:
                    continue
                if keep:
                    stack.append(frame)
                else:
                    skipping, skip_depth = frame, 1
            else:
                self._directive(line, origin, open_sections, chain)
        for frame in [*stack, *([skipping] if skipping else [])]:
            self.problems.append(frame.origin.problem(f"<{frame.name}> is never closed"))

    def _substitute(self, line: str, origin: Origin) -> str | None:
        """``${VAR}`` from Define and envvars; httpd leaves unknown ones as written. None
        (reported) when the line would grow past MAX_EXPANDED_LINE or the text budget."""
        found = list(_CONF_VAR.finditer(line))
        if not found:
            return line
        size = len(line) + sum(
            len(self.variables.get(m.group(1), m.group(0))) - len(m.group(0)) for m in found
        )
        if size > MAX_EXPANDED_LINE:
            self.problems.append(
                origin.problem(f"${{...}} variables make this line longer than {size} characters")
            )
            return None
        if not self.guard.charge(" " * (size - len(line)), origin):
            return None
        return _CONF_VAR.sub(lambda m: self.variables.get(m.group(1), m.group(0)), line)

    def _close(self, stack: list[_Frame], line: str, origin: Origin) -> None:
        name = line[2:].rstrip(">").strip(C_SPACE)
        if not stack:
            self.problems.append(origin.problem(f"</{name}> without an open <{name}>"))
            return
        frame = stack.pop()
        if frame.name.lower() != name.lower():
            self.problems.append(
                origin.problem(f"</{name}> closes <{frame.name}> opened at {frame.origin}")
            )

    def _open(
        self, line: str, origin: Origin, open_sections: tuple[Section, ...]
    ) -> tuple[_Frame | None, bool]:
        """The frame a ``<...>`` line opens and whether its body is read (False: skipped)."""
        if not line.endswith(">"):
            self.problems.append(origin.problem(f"section line without closing '>': {line}"))
            return None, False
        name, *rest = re.split(r"[ \t\n\v\f\r]+", line[1:-1].strip(C_SPACE), maxsplit=1)
        if not _DIRECTIVE_NAME.fullmatch(name):
            self.problems.append(origin.problem(f"Invalid command '<{name}' (httpd refuses this)"))
            return None, False
        kind, args = name.lower(), tuple(split_args(rest[0] if rest else ""))
        if kind in CONDITIONALS:
            condition = self._condition(kind, args, origin)
            return _Frame(name, None, origin, open_sections), condition
        if kind == "macro":
            return _Frame(name, None, origin, open_sections), False
        if kind == "virtualhost" and any(s.kind == "virtualhost" for s in open_sections):
            self.problems.append(origin.problem("<VirtualHost> inside another <VirtualHost>"))
        section = Section(name, args, origin)
        if kind == "virtualhost":
            self.vhost_sections.append(section)
        return _Frame(name, section, origin, (*open_sections, section)), True

    def _condition(self, kind: str, args: tuple[str, ...], origin: Origin) -> bool:
        if not args:
            self.problems.append(origin.problem(f"<{kind}> needs an argument"))
            return False
        negate = args[0].startswith("!") and kind != "ifversion"
        subject = args[0][1:] if negate else args[0]
        if kind == "ifmodule":
            holds = module_id(subject) in self.modules
        elif kind == "ifdefine":
            holds = subject in self.defines
        elif kind == "iffile":
            holds = self.host.exists(self._absolute(subject))
        elif kind == "ifversion":
            return self._if_version(args, origin)
        else:  # IfDirective / IfSection: assume the name is known, so the body is read
            holds = True
        return holds != negate

    def _if_version(self, args: tuple[str, ...], origin: Origin) -> bool:
        operator, wanted = (args[0], args[1]) if len(args) > 1 else ("=", args[0])
        negate = operator.startswith("!")
        operator = operator.lstrip("!") or "="
        current = ".".join(map(str, ASSUMED_VERSION))
        if operator == "~" or (len(wanted) > 1 and wanted.startswith("/") and wanted.endswith("/")):
            try:
                holds = compile_safe(wanted.strip("/")).search(current) is not None
            except UnsafePattern as exc:
                self.problems.append(origin.problem(f"<IfVersion>: {exc}"))
                return False
            return holds != negate
        try:
            parts = tuple(int(p) for p in wanted.split("."))
        except ValueError:
            self.problems.append(origin.problem(f"<IfVersion>: bad version {wanted!r}"))
            return False
        mine = ASSUMED_VERSION[: len(parts)]
        tests = {
            "=": mine == parts,
            "==": mine == parts,
            ">": mine > parts,
            ">=": mine >= parts,
            "<": mine < parts,
            "<=": mine <= parts,
        }
        if operator not in tests:
            self.problems.append(origin.problem(f"<IfVersion>: unknown operator {operator!r}"))
            return False
        return tests[operator] != negate

    def _directive(
        self, line: str, origin: Origin, sections: tuple[Section, ...], chain: tuple[str, ...]
    ) -> None:
        words = split_args(line)
        name, args = words[0], tuple(words[1:])
        key = name.lower()
        if not _DIRECTIVE_NAME.fullmatch(name):
            self.problems.append(origin.problem(f"Invalid command {name!r} (httpd refuses this)"))
            return
        if key in ("define", "undefine") and not 1 <= len(args) <= (2 if key == "define" else 1):
            self.problems.append(origin.problem(f"{name}: wrong number of arguments"))
            return
        if key in ("include", "includeoptional"):
            if len(args) != 1:
                self.problems.append(origin.problem(f"{name} takes one path"))
                return
            self._include(args[0], key == "includeoptional", origin, sections, chain)
            return
        directive = Directive(name, args, origin, sections)
        self.directives.append(directive)
        if key == "define" and args:
            self.defines.add(args[0])
            self.variables[args[0]] = " ".join(args[1:])
        elif key == "undefine" and args:
            self.defines.discard(args[0])
            self.variables.pop(args[0], None)
        elif key == "loadmodule":
            if len(args) != 2:
                self.problems.append(origin.problem("LoadModule takes a module name and a file"))
                return
            self.modules.add(module_id(args[0]))
            self.load_modules.append(directive)
        elif key == "serverroot" and args:
            self.server_root = args[0].rstrip("/")

    def _absolute(self, path: str) -> str:
        return path if path.startswith("/") else f"{self.server_root}/{path}"

    def _include(
        self,
        pattern: str,
        optional: bool,
        origin: Origin,
        sections: tuple[Section, ...],
        chain: tuple[str, ...],
    ) -> None:
        """Include files in lexical order; a missing target only matters for plain Include."""
        target = self._absolute(pattern)
        if any(ch in target for ch in "*?["):
            hidden_ok = _basename(target).startswith(".")
            paths = [
                p for p in self.host.glob(target) if hidden_ok or not _basename(p).startswith(".")
            ]
            if not paths and not optional:
                self.problems.append(origin.problem(f"Include: no file matches {target}"))
        elif self.host.exists(target) or self.host.lexists(target):
            paths = [target]
        else:
            if not optional:
                self.problems.append(origin.problem(f"Include: {target} does not exist"))
            paths = []
        for path in paths:
            self._include_one(path, origin, sections, chain)

    def _include_one(
        self, path: str, origin: Origin, sections: tuple[Section, ...], chain: tuple[str, ...]
    ) -> None:
        if not self.guard.admit(chain, path, origin):
            return
        try:
            if self.host.stat(path).is_dir:
                for name in self.host.listdir(path):
                    self._include_one(f"{path}/{name}", origin, sections, chain)
                return
            text = self.host.read_text(path)
        except HostError as exc:
            self.problems.append(origin.problem(f"Include: cannot read {exc}"))
            return
        if self.guard.charge(text, origin):
            self.parse(text, sections, (*chain, path))


def _logical_lines(path: str, text: str) -> Iterator[tuple[Origin, str]]:
    """Non-comment lines as httpd's ap_cfg_getline() reads them, numbered by their first line.

    Only LF ends a line; a NUL ends its line early; a backslash right before the LF (or CR LF)
    joins the next line with nothing in between; then C whitespace is trimmed at both ends.
    """
    physical = text.split("\n")  # every piece but the last one ended with LF
    pending: list[str] | None = None  # pieces of a line continued with backslashes
    start = 0
    for number, raw in enumerate(physical, start=1):
        if pending is None:
            start, pending = number, []
        line = raw.removesuffix("\r")
        if "\0" not in raw and number < len(physical) and line.endswith("\\"):
            pending.append(line[:-1])
            continue
        joined = ("".join(pending) + cut_at_nul(raw)).strip(C_SPACE)
        pending = None
        if joined and not joined.startswith("#"):
            yield Origin(path, start), joined


def split_args(text: str) -> list[str]:
    """httpd's ap_getword_conf(): words split at C whitespace, ``"..."``/``'...'`` quoted,
    a backslash before the quote or another backslash escaping it."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in C_SPACE:
            i += 1
            continue
        quote = text[i] if text[i] in "\"'" else ""
        j = i + 1 if quote else i
        chars = []
        while j < n and (text[j] != quote if quote else text[j] not in C_SPACE):
            if text[j] == "\\" and j + 1 < n and text[j + 1] in ("\\", quote):
                j += 1
            chars.append(text[j])
            j += 1
        words.append("".join(chars))
        i = j + 1 if quote else j
    return words


def _basename(path: str) -> str:
    return path.rpartition("/")[2]


def _vhosts(sections: list[Section], directives: list[Directive]) -> list[VirtualHost]:
    """Group directives by their VirtualHost (in reading order) and decide which run SSL."""
    by_section = {section: VirtualHost(section) for section in sections}
    for directive in directives:
        if directive.vhost_section is not None:
            by_section[directive.vhost_section].directives.append(directive)
    server_engine = [d for d in directives if d.key == "sslengine" and not d.sections]
    for vhost in by_section.values():
        own = [d for d in vhost.own if d.key == "sslengine"]
        vhost.ssl = _engine_on(own) if own else _engine_on(server_engine, vhost.section.args)
    return list(by_section.values())


def _engine_on(engine: list[Directive], addresses: Sequence[str] = ()) -> bool:
    """The last SSLEngine line: ``on``, or (server level) a list of addr[:port] it applies to."""
    if not engine:
        return False
    args = [a.lower() for a in engine[-1].args]
    if args in (["on"], ["off"], ["optional"]):
        return args == ["on"]
    return any(_address_matches(a, vhost) for a in args for vhost in addresses)


def _address_matches(pattern: str, address: str) -> bool:
    host, port = _split_address(pattern)
    vhost_host, vhost_port = _split_address(address)
    ports_match = "*" in (port, vhost_port) or port == vhost_port
    hosts_match = host in ("*", "_default_") or host == vhost_host
    return ports_match and hosts_match


def _split_address(address: str) -> tuple[str, str]:
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, rest.lstrip(":") or "*"
    host, sep, port = address.rpartition(":")
    return (host, port) if sep else (address, "*")


def _vhost_port(address: str) -> str:
    return _split_address(address)[1]


def _listen_address(listen: Directive) -> str:
    """``Listen 80``, ``Listen 0.0.0.0:80``, ``Listen [::]:443 https`` as an addr:port."""
    first = listen.args[0] if listen.args else ""
    return first if ":" in first else f"*:{first}"
