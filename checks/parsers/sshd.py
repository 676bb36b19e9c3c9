"""sshd_config read the way sshd reads it, and ``sshd -T`` output.

sshd keeps the FIRST value it sees for most keywords, so Debian's
``Include /etc/ssh/sshd_config.d/*.conf`` at the top of sshd_config lets a drop-in
override everything below it. Match blocks are evaluated for one connection spec: a
matching block's value overrides the global one, the first matching block winning, as in
servconf.c (parse twice: global pass, then a "reprocess" pass for the connection). Every
value keeps the file:line it came from, or says it is sshd's compiled-in default.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from checks.hosts import CommandNotFound, Host, HostError, PlannedCommand
from checks.parsers.includes import IncludeGuard
from checks.parsers.lines import joined_at_nul, lf_lines
from checks.parsers.origin import Origin
from checks.yamlsource import Problem

SSH_DIR = "/etc/ssh"
DEFAULT_CONFIG = "/etc/ssh/sshd_config"
MAX_INCLUDE_DEPTH = 16  # sshd's READCONF_MAX_DEPTH

#: Old names sshd still accepts for a keyword.
ALIASES = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "skeyauthentication": "kbdinteractiveauthentication",
    "dsaauthentication": "pubkeyauthentication",
    "pubkeyacceptedkeytypes": "pubkeyacceptedalgorithms",
    "hostbasedacceptedkeytypes": "hostbasedacceptedalgorithms",
    "keepalive": "tcpkeepalive",
}

#: Keywords sshd reads and then ignores (deprecated or unsupported): they set nothing.
IGNORED = frozenset(
    {
        "protocol",
        "rsaauthentication",
        "rhostsrsaauthentication",
        "useprivilegeseparation",
        "verifyreversemapping",
        "reversemappingcheck",
        "authorizedkeysfile2",
        "uselogin",
        "pamauthenticationviakbdint",
        "serverkeybits",
        "keyregenerationinterval",
        "kerberostgtpassing",
        "afstokenpassing",
    }
)

#: Keywords whose lines add up instead of the first one winning.
ACCUMULATE = frozenset(
    {
        "allowusers",
        "denyusers",
        "allowgroups",
        "denygroups",
        "acceptenv",
        "listenaddress",
        "port",
        "hostkey",
        "hostcertificate",
        "subsystem",
    }
)

#: Keywords sshd refuses inside a Match block (it does not start with such a config).
GLOBAL_ONLY = frozenset(
    {
        "port",
        "listenaddress",
        "addressfamily",
        "hostkey",
        "hostcertificate",
        "usepam",
        "usedns",
        "logingracetime",
        "maxstartups",
        "pidfile",
        "ciphers",
        "macs",
        "kexalgorithms",
    }
)

#: OpenSSH's compiled-in defaults (9.x, as Debian builds it) for the keywords audits look at.
#: Algorithm lists are left out on purpose: they change between releases, so only
#: ``sshd -T`` can tell them.
DEFAULTS: dict[str, tuple[str, ...]] = {
    "passwordauthentication": ("yes",),
    "kbdinteractiveauthentication": ("yes",),
    "pubkeyauthentication": ("yes",),
    "hostbasedauthentication": ("no",),
    "gssapiauthentication": ("no",),
    "gssapicleanupcredentials": ("yes",),
    "kerberosauthentication": ("no",),
    "permitrootlogin": ("prohibit-password",),
    "permitemptypasswords": ("no",),
    "maxauthtries": ("6",),
    "maxsessions": ("10",),
    "maxstartups": ("10:30:100",),
    "authenticationmethods": ("any",),
    "trustedusercakeys": ("none",),
    "authorizedkeysfile": (".ssh/authorized_keys", ".ssh/authorized_keys2"),
    "authorizedkeyscommand": ("none",),
    "authorizedprincipalsfile": ("none",),
    "usepam": ("no",),
    "x11forwarding": ("no",),
    "x11uselocalhost": ("yes",),
    "allowtcpforwarding": ("yes",),
    "allowagentforwarding": ("yes",),
    "allowstreamlocalforwarding": ("yes",),
    "disableforwarding": ("no",),
    "gatewayports": ("no",),
    "permittunnel": ("no",),
    "permituserenvironment": ("no",),
    "permittty": ("yes",),
    "ignorerhosts": ("yes",),
    "ignoreuserknownhosts": ("no",),
    "strictmodes": ("yes",),
    "logingracetime": ("120",),
    "loglevel": ("INFO",),
    "syslogfacility": ("AUTH",),
    "clientaliveinterval": ("0",),
    "clientalivecountmax": ("3",),
    "usedns": ("no",),
    "tcpkeepalive": ("yes",),
    "compression": ("yes",),
    "printmotd": ("yes",),
    "printlastlog": ("yes",),
    "banner": ("none",),
    "versionaddendum": ("none",),
    "forcecommand": ("none",),
    "chrootdirectory": ("none",),
    "addressfamily": ("any",),
    "port": ("22",),
    "listenaddress": ("0.0.0.0", "::"),
    "hostkey": (
        "/etc/ssh/ssh_host_rsa_key",
        "/etc/ssh/ssh_host_ecdsa_key",
        "/etc/ssh/ssh_host_ed25519_key",
    ),
    "modulifile": ("/etc/ssh/moduli",),
    "persourcemaxstartups": ("none",),
    "persourcenetblocksize": ("32:128",),
    "fingerprinthash": ("SHA256",),
    "gssapikeyexchange": ("no",),
    "kerberosorlocalpasswd": ("yes",),
    # Debian's own patch: sshd -T does not print it, so only the files can tell
    "debianbanner": ("yes",),
}

_FLAG = frozenset({"yes", "no"})
_FORWARDING = frozenset({"yes", "all", "no", "local", "remote"})
#: servconf.c's multistate tables: sshd refuses any other value (case-insensitive), and
#: ``sshd -T`` prints the value lower-cased.
CHOICES: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        (
            "passwordauthentication",
            "kbdinteractiveauthentication",
            "pubkeyauthentication",
            "hostbasedauthentication",
            "gssapiauthentication",
            "gssapicleanupcredentials",
            "kerberosauthentication",
            "permitemptypasswords",
            "usepam",
            "x11forwarding",
            "x11uselocalhost",
            "allowagentforwarding",
            "disableforwarding",
            "permittty",
            "ignoreuserknownhosts",
            "strictmodes",
            "usedns",
            "tcpkeepalive",
            "printmotd",
            "printlastlog",
        ),
        _FLAG,
    ),
    "ignorerhosts": frozenset({"yes", "no", "shosts-only"}),
    "permitrootlogin": frozenset(
        {"yes", "no", "prohibit-password", "without-password", "forced-commands-only"}
    ),
    "compression": frozenset({"yes", "no", "delayed"}),
    "gatewayports": frozenset({"yes", "no", "clientspecified"}),
    "permittunnel": frozenset({"yes", "no", "ethernet", "point-to-point"}),
    "allowtcpforwarding": _FORWARDING,
    "allowstreamlocalforwarding": _FORWARDING,
    "addressfamily": frozenset({"any", "inet", "inet6"}),
}
#: Keywords taking one integer (misc.c atoi_err: strtonum, 0..INT_MAX).
INTEGERS = frozenset({"maxauthtries", "maxsessions", "clientalivecountmax"})
_SYNONYMS = {
    ("permitrootlogin", "without-password"): "prohibit-password",
    ("compression", "delayed"): "yes",
}
_TIME_KEYWORDS = frozenset({"logingracetime", "clientaliveinterval"})
_TIME_PART = re.compile(r"(\d+)([smhdwSMHDW]?)")
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: strtoll() as strtonum() calls it: C whitespace, a sign, decimal digits, nothing after.
_C_INTEGER = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")
_INT_MAX = 2**31 - 1
#: servconf.c WHITESPACE: what separates the keyword from its arguments.
_WHITESPACE = " \t\r\n"
_SPLIT = re.compile(r"[ \t]+")
_SPECIAL = re.compile(r"['\"\\]")
_COMMENT = re.compile(r"(?:^|[ \t])#")
#: argv_split: characters with a meaning outside quotes and inside each kind of quote, and
#: runs of the others, taken whole.
_NOT_PLAIN = {"": " \t'\"\\", "'": "'\\", '"': '"\\'}
_PLAIN = {quote: re.compile(f"[^{re.escape(chars)}]+") for quote, chars in _NOT_PLAIN.items()}


class SshdUnavailable(HostError):
    """``sshd -T`` could not tell the effective configuration (not live, not installed, failed)."""


def canonical_keyword(word: str) -> str:
    """Lower-case keyword with old names mapped to the current one."""
    lowered = word.lower()
    return ALIASES.get(lowered, lowered)


def normalize_values(keyword: str, values: tuple[str, ...]) -> tuple[str, ...]:
    """Spell a value the way ``sshd -T`` does, so file values and -T values compare equal."""
    if len(values) != 1:
        return values
    value = values[0]
    if keyword in CHOICES:
        value = value.lower()
    if keyword in INTEGERS:
        number = _integer(value)
        value = value if number is None else str(number)
    value = _SYNONYMS.get((keyword, value), value)
    if keyword in _TIME_KEYWORDS:
        seconds = _seconds(value)
        value = value if seconds is None else str(seconds)
    return (value,)


def _integer(text: str) -> int | None:
    """sshd's atoi_err(): the value, or None when sshd refuses it."""
    match = _C_INTEGER.fullmatch(text)
    number = int(match.group(1)) if match else None
    return number if number is not None and 0 <= number <= _INT_MAX else None


def _seconds(text: str) -> int | None:
    """sshd's convtime: ``90``, ``2m``, ``1h30m`` -> seconds."""
    if not text or _TIME_PART.sub("", text):
        return None
    return sum(int(n) * _TIME_UNITS[u.lower()] for n, u in _TIME_PART.findall(text))


@dataclass(frozen=True)
class ConnectionSpec:
    """One client connection, as ``sshd -T -C`` takes it. Defaults describe an outside client."""

    user: str = "lappguard-audit"
    host: str = "audit.invalid"
    addr: str = "192.0.2.10"
    laddr: str | None = None
    lport: int | None = None
    #: The user's groups, for ``Match Group`` (sshd looks them up itself; the parser cannot).
    groups: tuple[str, ...] = ()

    def test_argument(self) -> str:
        """The ``-C`` argument of ``sshd -T``."""
        parts = [f"user={self.user}", f"host={self.host}", f"addr={self.addr}"]
        if self.laddr is not None:
            parts.append(f"laddr={self.laddr}")
        if self.lport is not None:
            parts.append(f"lport={self.lport}")
        return ",".join(parts)

    def __str__(self) -> str:
        return self.test_argument()


# --- OpenSSH pattern matching (match.c, addrmatch.c) -------------------------------------


def match_pattern(text: str, pattern: str) -> bool:
    """OpenSSH's match_pattern: ``*`` any run, ``?`` any one character, the rest literal.

    sshd recurses at each ``*``, which is exponential but harmless on its short names; a
    regex built from the pattern is as slow in Python (``Match User ****...z`` took over a
    minute). Here, the classic greedy scan: on a mismatch only the last ``*`` takes one more
    character, so the time is at most len(text) * len(pattern).
    """
    t = p = 0
    star = -1  # index in pattern of the last '*' seen
    resume = 0  # index in text where that '*' match ends so far
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, t
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", text[t]):
            t += 1
            p += 1
        elif star >= 0:
            resume += 1
            t, p = resume, star + 1
        else:
            return False
    return pattern[p:].strip("*") == ""


def match_pattern_list(text: str, patterns: str, lower: bool = False) -> int:
    """1 when a positive pattern matches, -1 when a negated one does (it wins), else 0."""
    if lower:
        text = text.lower()
    found = 0
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if lower:
            pattern = pattern.lower()
        if match_pattern(text, pattern):
            if negated:
                return -1
            found = 1
    return found


def parse_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A network for an address or CIDR; None when ``text`` is a wildcard pattern instead.

    Raises ValueError for a CIDR with host bits set (sshd rejects ``10.0.0.1/8``).
    """
    address, _, length = text.partition("/")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None
    if length and not length.isdigit():
        return None
    return ipaddress.ip_network(text, strict=True)


def addr_match_list(addr: str | None, patterns: str) -> int:
    """OpenSSH's addr_match_list: 1 match, 0 none, -1 negated match, -2 invalid list."""
    try:
        address = ipaddress.ip_address(addr) if addr is not None else None
    except ValueError:
        return 0
    result = 0
    for entry in patterns.split(","):
        negated = entry.startswith("!")
        entry = entry[1:] if negated else entry
        if not entry:
            return -2
        try:
            network = parse_cidr(entry)
        except ValueError:
            return -2
        if address is None:
            continue
        hit = address in network if network is not None else match_pattern(str(address), entry)
        if hit:
            if negated:
                return -1
            result = 1
    return result


def match_host_and_ip(host: str | None, addr: str | None, patterns: str) -> int:
    """OpenSSH's match_host_and_ip for ``user@HOST`` entries: 1, 0 or -1."""
    by_addr = addr_match_list(addr, patterns)
    if by_addr == -2:
        return -1
    if host is None or by_addr == -1:
        return by_addr
    by_name = match_pattern_list(host, patterns, lower=True)
    if by_name == -1:
        return -1
    return 1 if by_name or by_addr else 0


# --- the parsed configuration ------------------------------------------------------------


@dataclass(frozen=True)
class MatchBlock:
    """One ``Match`` line: all criteria must hold (``all`` holds for every connection)."""

    criteria: tuple[tuple[str, str], ...]
    origin: Origin
    text: str

    def matches(self, spec: ConnectionSpec) -> bool:
        return all(_criterion(name, arg, spec) for name, arg in self.criteria)


def _criterion(name: str, arg: str, spec: ConnectionSpec) -> bool:
    if name == "all":
        return True
    if name == "user":
        return match_pattern_list(spec.user, arg) == 1
    if name == "group":
        results = [match_pattern_list(group, arg) for group in spec.groups]
        return -1 not in results and 1 in results
    if name == "host":
        return match_pattern_list(spec.host, arg, lower=True) == 1
    if name == "address":
        return addr_match_list(spec.addr, arg) == 1
    if name == "localaddress":
        return spec.laddr is not None and addr_match_list(spec.laddr, arg) == 1
    if name == "localport":
        return spec.lport is not None and arg.isdigit() and int(arg) == spec.lport
    return False  # invalid-user, rdomain: an audit spec is never an invalid user / rdomain


@dataclass(frozen=True)
class Directive:
    """One keyword line; ``blocks`` are the Match blocks it sits in (all must match)."""

    keyword: str
    args: tuple[str, ...]
    origin: Origin
    blocks: tuple[MatchBlock, ...] = ()


@dataclass(frozen=True)
class Setting:
    """A keyword's effective value and where it came from."""

    keyword: str
    values: tuple[str, ...]
    origins: tuple[Origin, ...] = ()
    source: str = "file"  # "file", "default" or "sshd -T"

    @property
    def text(self) -> str:
        return " ".join(self.values)

    @property
    def where(self) -> str:
        if self.origins:
            return ", ".join(str(o) for o in self.origins)
        return "compiled-in default" if self.source == "default" else self.source

    def __str__(self) -> str:
        return f"{self.keyword} {self.text} ({self.where})"


@dataclass(frozen=True)
class EffectiveSshd:
    """Every known keyword's value for one connection, from the files or from ``sshd -T``."""

    settings: dict[str, Setting]
    source: str
    notes: tuple[str, ...] = ()

    def get(self, keyword: str) -> Setting | None:
        return self.settings.get(canonical_keyword(keyword))

    def values(self, keyword: str) -> tuple[str, ...]:
        setting = self.get(keyword)
        return setting.values if setting else ()

    def first(self, keyword: str) -> str | None:
        values = self.values(keyword)
        return values[0].lower() if values else None


@dataclass
class SshdConfig:
    """All directives of sshd_config and its includes, in the order sshd reads them.

    Read-only once parsed: the views below are worked out once and kept, because about
    fifty checks each ask for the view of the same connection."""

    main: str
    directives: list[Directive] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Every Match line read, an invalid one included (it never applies).
    match_blocks: list[MatchBlock] = field(default_factory=list)
    _by_keyword: dict[str, list[Directive]] | None = field(default=None, repr=False, compare=False)
    _views: dict[ConnectionSpec | None, EffectiveSshd] = field(
        default_factory=dict, repr=False, compare=False
    )

    def _index(self) -> dict[str, list[Directive]]:
        """The directives by keyword, in reading order."""
        if self._by_keyword is None:
            by_keyword: dict[str, list[Directive]] = {}
            for directive in self.directives:
                by_keyword.setdefault(directive.keyword, []).append(directive)
            self._by_keyword = by_keyword
        return self._by_keyword

    @property
    def same_for_every_client(self) -> bool:
        """Whether sshd's effective configuration is the same whoever connects: ``-C`` only
        selects Match blocks, so it is when no file read has a Match line. Any problem
        reported means a line was not understood (it might have been one): then no."""
        return not self.match_blocks and not self.problems

    def resolve(self, keyword: str, spec: ConnectionSpec | None) -> Setting | None:
        """The value sshd uses for ``spec`` (None: the global section only)."""
        keyword = canonical_keyword(keyword)
        lines = self._index().get(keyword, [])
        chosen = [d for d in lines if not d.blocks]
        if spec is not None:
            matched = [d for d in lines if d.blocks and all(b.matches(spec) for b in d.blocks)]
            chosen = matched or chosen
        if keyword not in ACCUMULATE:
            chosen = chosen[:1]
        if chosen:
            values = tuple(arg for d in chosen for arg in d.args)
            return Setting(
                keyword, normalize_values(keyword, values), tuple(d.origin for d in chosen)
            )
        if keyword in DEFAULTS:
            return Setting(keyword, DEFAULTS[keyword], source="default")
        return None

    def effective(self, spec: ConnectionSpec | None) -> EffectiveSshd:
        view = self._views.get(spec)
        if view is None:
            view = self._views[spec] = self._effective(spec)
        return view

    def _effective(self, spec: ConnectionSpec | None) -> EffectiveSshd:
        keywords = set(self._index()) | set(DEFAULTS)
        settings = {}
        for keyword in sorted(keywords):
            setting = self.resolve(keyword, spec)
            if setting is not None:
                settings[keyword] = setting
        extra = f" and {len(self.files) - 1} included file(s)" if len(self.files) > 1 else ""
        source = f"parsed {self.main}{extra}" + (f" for {spec}" if spec else "")
        return EffectiveSshd(settings, source, tuple(str(p) for p in self.problems))


def parse_sshd_config(host: Host, path: str = DEFAULT_CONFIG) -> SshdConfig:
    """Parse the main file and its includes. Raises HostError when the main file is unreadable."""
    config = SshdConfig(path)
    text = host.read_text(path)
    guard = IncludeGuard(config.problems.append, MAX_INCLUDE_DEPTH, "sshd refuses this")
    _parse_text(host, config, guard, text, (), (path,))
    return config


def _parse_text(
    host: Host,
    config: SshdConfig,
    guard: IncludeGuard,
    text: str,
    outer: tuple[MatchBlock, ...],
    chain: tuple[str, ...],
) -> None:
    """One file's lines; ``chain`` is the include chain, this file last."""
    path = chain[-1]
    config.files.append(path)
    blocks = outer
    for number, raw in joined_at_nul(text):
        origin = Origin(path, number)
        line = raw.rstrip(_WHITESPACE + "\f")  # servconf.c allows a trailing \f, no other
        word, rest = _keyword(line)
        if not word or word.startswith("#"):
            continue  # blank, comment, or a keyword with an unclosed quote: sshd skips it
        keyword = canonical_keyword(word)
        if not rest:
            config.problems.append(origin.problem(f"no argument after {word} (sshd refuses this)"))
            continue
        if not (word.isascii() and word.isalnum()):
            config.problems.append(
                origin.problem(f"bad configuration option {word!r} (sshd refuses this)")
            )
            continue
        args = _split_args(rest)
        if args is None:
            config.problems.append(origin.problem("invalid quotes (line ignored)"))
            continue
        if not args:
            config.problems.append(origin.problem(f"{word}: missing argument (sshd refuses this)"))
            continue
        shown = line.strip(_WHITESPACE)
        refused = _refused_value(keyword, args)
        if refused:
            config.problems.append(origin.problem(f"{word}: {refused} (sshd refuses this)"))
        elif keyword == "match":
            block = _parse_match(args, origin, shown, config) or _invalid_block(origin, shown)
            config.match_blocks.append(block)
            blocks = (*outer, block)
        elif keyword == "include":
            _include(host, config, guard, args, origin, blocks, chain)
        elif keyword in IGNORED:
            config.problems.append(origin.problem(f"{word} is obsolete: sshd ignores it"))
        elif blocks and keyword in GLOBAL_ONLY:
            config.problems.append(
                origin.problem(f"{word} is not allowed inside a Match block (sshd refuses this)")
            )
        else:
            config.directives.append(Directive(keyword, tuple(args), origin, blocks))


def _keyword(line: str) -> tuple[str | None, str]:
    """The keyword and the text after it, as servconf.c takes them with strdelim(): leading
    whitespace skipped once, None for an unclosed quote (sshd then skips the line)."""
    word, rest = _strdelim(line)
    if word == "":
        word, rest = _strdelim(rest)
    return word, rest


def _strdelim(text: str) -> tuple[str | None, str]:
    """misc.c strdelim(): a token ends at whitespace or one ``=``, or is a quoted string."""
    found = re.search(r'[ \t\r\n"=]', text)
    if found is None:
        return text, ""
    at = found.start()
    if text[at] == '"':
        close = text.find('"', at + 1)
        if close < 0:
            return None, ""
        return text[:at] + text[at + 1 : close], text[close + 1 :].lstrip(_WHITESPACE)
    rest = text[at + 1 :].lstrip(_WHITESPACE)
    if text[at] != "=" and rest.startswith("="):
        rest = rest[1:].lstrip(_WHITESPACE)
    return text[:at], rest


def _refused_value(keyword: str, args: list[str]) -> str | None:
    """Why sshd refuses the arguments of a keyword whose values it checks, else None."""
    if keyword not in CHOICES and keyword not in INTEGERS and keyword not in _TIME_KEYWORDS:
        return None
    if len(args) > 1:
        return "extra arguments at end of line"
    value = args[0]
    if keyword in CHOICES and value.lower() not in CHOICES[keyword]:
        return f"unsupported option {value!r}"
    if keyword in INTEGERS and _integer(value) is None:
        return f"integer value {value!r} invalid"
    if keyword in _TIME_KEYWORDS and _seconds(value) is None:
        return f"invalid time value {value!r}"
    return None


def _invalid_block(origin: Origin, text: str) -> MatchBlock:
    """An invalid Match line: sshd would refuse the file; here the block never applies."""
    return MatchBlock((("invalid", ""),), origin, text)


def _include(
    host: Host,
    config: SshdConfig,
    guard: IncludeGuard,
    args: list[str],
    origin: Origin,
    blocks: tuple[MatchBlock, ...],
    chain: tuple[str, ...],
) -> None:
    for pattern in args:
        if not pattern.startswith(("/", "~")):
            pattern = f"{SSH_DIR}/{pattern}"
        for included in host.glob(pattern):
            if not guard.admit(chain, included, origin):
                continue
            try:
                text = host.read_text(included)
            except HostError as exc:  # an unreadable include: sshd fails, so do we
                raise HostError(f"{origin}: Include {included}: {exc}") from exc
            if guard.charge(text, origin):
                _parse_text(host, config, guard, text, blocks, (*chain, included))


def _parse_match(
    args: list[str], origin: Origin, text: str, config: SshdConfig
) -> MatchBlock | None:
    """Criteria of a Match line, or None (reported) when sshd would reject it."""
    criteria: list[tuple[str, str]] = []
    items = iter(args)
    for item in items:
        if item.startswith("#"):
            break
        name, equals, value = item.partition("=")
        name = name.lower()
        if name == "all":
            criteria.append(("all", ""))
            continue
        if name == "invalid-user":
            criteria.append((name, ""))
            continue
        if not equals:
            value = next(items, "")
        if not value or value.startswith("#"):
            config.problems.append(origin.problem(f"Match {name} has no argument"))
            return None
        if name not in ("user", "group", "host", "address", "localaddress", "localport", "rdomain"):
            config.problems.append(origin.problem(f"unsupported Match criterion {name!r}"))
            return None
        if name in ("address", "localaddress") and addr_match_list(None, value) == -2:
            config.problems.append(origin.problem(f"invalid address list {value!r} in Match"))
            return None
        criteria.append((name, value))
    if not criteria:
        config.problems.append(origin.problem("Match without criteria"))
        return None
    if ("all", "") in criteria and len(criteria) > 1:
        config.problems.append(origin.problem("Match All cannot be combined with other criteria"))
        return None
    return MatchBlock(tuple(criteria), origin, text)


def _split_args(text: str) -> list[str] | None:
    """OpenSSH's argv_split: quotes group, backslash escapes, ``#`` at a token start ends it.

    A line without quotes or backslashes is split in one regex pass; otherwise runs of
    plain characters are still taken whole, so the time stays linear in the line.
    """
    if not _SPECIAL.search(text):
        comment = _COMMENT.search(text)
        words = text[: comment.start() if comment else None].strip(" \t")
        return _SPLIT.split(words) if words else []
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            break
        quote, token = "", []
        while i < n:
            ch = text[i]
            if ch not in _NOT_PLAIN[quote]:
                end = _PLAIN[quote].match(text, i).end()
                token.append(text[i:end])
                i = end
                continue
            escaped = text[i + 1] if i + 1 < n else ""
            if ch == "\\" and escaped and (escaped in "'\"\\" or (not quote and escaped == " ")):
                token.append(escaped)
                i += 2
                continue
            if not quote and ch in " \t":
                break
            if not quote and ch in "'\"":
                quote = ch
            elif quote and ch == quote:
                quote = ""
            else:
                token.append(ch)
            i += 1
        if quote:
            return None
        args.append("".join(token))
    return args


# --- sshd -T -----------------------------------------------------------------------------


def parse_sshd_t(text: str, source: str) -> EffectiveSshd:
    """``sshd -T`` output: one ``keyword value`` per line; repeated keywords add up.

    sshd prints values as they are written, so only LF ends a line and only a space
    separates values: a Banner path holding FS + ``authenticationmethods any`` stays one value
    instead of becoming a second ``authenticationmethods`` line.
    """
    collected: dict[str, list[str]] = {}
    for line in lf_lines(text):
        word, _, rest = line.partition(" ")
        if not word:
            continue
        keyword = canonical_keyword(word)
        if keyword != word.lower() and keyword in collected:
            continue  # an old alias printed next to the current name
        collected.setdefault(keyword, []).extend(v for v in rest.split(" ") if v)
    settings = {
        keyword: Setting(keyword, normalize_values(keyword, tuple(values)), source="sshd -T")
        for keyword, values in collected.items()
    }
    return EffectiveSshd(settings, source)


def sshd_t_command(config: str, spec: ConnectionSpec) -> PlannedCommand:
    """``sshd -T`` of ``config`` for the connection ``spec`` (``CheckType.commands``)."""
    return PlannedCommand(("sshd", "-T", "-f", config, "-C", spec.test_argument()))


def run_sshd_t(host: Host, config: str, spec: ConnectionSpec) -> EffectiveSshd:
    """Ask the installed sshd for its effective configuration; SshdUnavailable says why not."""
    if not host.is_live:
        raise SshdUnavailable("sshd cannot run when auditing a directory tree")
    try:
        done = host.run(sshd_t_command(config, spec).argv)
    except CommandNotFound as exc:
        raise SshdUnavailable("no sshd binary on this host") from exc
    except HostError as exc:
        raise SshdUnavailable(str(exc)) from exc
    if done.exit_code != 0 or not done.stdout.strip():
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.exit_code}"])[-1]
        raise SshdUnavailable(f"sshd -T failed: {reason}")
    return parse_sshd_t(done.stdout, "sshd -T -f " + config + " -C " + spec.test_argument())


# --- facts about users and listen addresses ---------------------------------------------


def user_groups(host: Host, user: str) -> tuple[str, ...]:
    """The local groups of ``user`` (primary first), for ``Match Group``; () when unknown."""
    try:
        passwd = host.read_text("/etc/passwd")
        group_text = host.read_text("/etc/group")
    except HostError:
        return ()
    gid = None
    for line in lf_lines(passwd):  # nss_files reads LF-ended lines
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == user:
            gid = fields[3]
            break
    if gid is None:
        return ()
    groups: list[str] = []
    for line in lf_lines(group_text):
        fields = line.split(":")
        if len(fields) < 4:
            continue
        members = fields[3].split(",")
        if fields[2] == gid or user in members:
            groups.append(fields[0])
    return tuple(groups)


def listen_host(value: str) -> str:
    """The address part of a ListenAddress value (``[::]:22``, ``0.0.0.0:22``, ``::1``)."""
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def listen_port(value: str) -> int | None:
    """The port of a ListenAddress value, when it names one."""
    if value.startswith("[") and "]:" in value:
        port = value.rsplit(":", 1)[1]
    elif value.count(":") == 1:
        port = value.split(":", 1)[1]
    else:
        return None
    return int(port) if port.isdigit() else None
