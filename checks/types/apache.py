"""Apache check types: loaded modules, effective directives, forbidden directives, HTTPS
redirects and TLS protocol versions, all judged on one memoised parse of the configuration.

A configuration problem (a missing Include target, an unclosed section, an unreadable file)
means httpd would not read what we read: it never turns a pass into a silent pass. A check
that finds a violation still fails (the violation is real); one that finds none errors.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from checks.hosts import HostError, PlannedCommand
from checks.params import Param
from checks.parsers.apache import (
    APACHECTL_MODULES,
    PROTOCOLS,
    SERVER_ROOT,
    ApacheConfig,
    ApacheConfigError,
    Directive,
    VirtualHost,
    load_apache_config,
    module_id,
    option_changes,
)
from checks.regexsafety import UnsafePattern, compile_safe
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType

_REDIRECTS = {"redirect", "redirectmatch", "redirectpermanent", "redirecttemp"}
_REDIRECT_STATUS = re.compile(r"^(permanent|temp|seeother|gone|\d{3})$", re.IGNORECASE)
#: Paths a whole-site redirect must catch (the root and something deep).
_PROBE_PATHS = ("/", "/lappguard/probe/index.html")
TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")


def apache_config(ctx: CheckContext) -> ApacheConfig:
    """The audited host's Apache configuration, parsed once per audit."""
    return ctx.memo(("apache", SERVER_ROOT), lambda: load_apache_config(ctx.host))


@dataclass
class Findings:
    """What a check saw: always-shown notes, violations, passing evidence, and undecidables."""

    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)


def conclude(findings: Findings, problems: Sequence[object]) -> Verdict:
    """Fail on any violation; without one, anything undecided or unread makes an error."""
    unread = [f"configuration problem: {p}" for p in problems]
    if findings.violations:
        return failed(*findings.notes, *findings.violations, *findings.undecided, *unread)
    doubts = findings.undecided + unread
    if doubts:
        more = f" (and {len(doubts) - 1} more)" if len(doubts) > 1 else ""
        return errored(f"{doubts[0]}{more}", *findings.notes, *doubts)
    return passed(*findings.notes, *findings.evidence)


class ApacheCheck(CheckType):
    """Load the configuration (an unreadable apache2.conf is an error), judge, conclude."""

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return (APACHECTL_MODULES,)

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            config = apache_config(ctx)
        except ApacheConfigError as exc:
            return errored(str(exc))
        return conclude(self.judge(config, ctx), config.problems)

    @abstractmethod
    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings: ...


class ApacheModules(ApacheCheck):
    """Modules that must be loaded (``present``) or must not be (``absent``), in any spelling
    (``cgi``, ``mod_cgi.c``, ``cgi_module``)."""

    name = "apache_modules"
    schema = {
        "present": Param("str_list", default=(), help="modules that must be loaded"),
        "absent": Param("str_list", default=(), help="modules that must not be loaded"),
        "present_any": Param("str_list", default=(), help="at least one of these must be loaded"),
    }

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        found = Findings(notes=[config.module_source])
        loaded_at = {module_id(d.args[0]): d.origin for d in config.load_modules}
        for module in map(module_id, self.params["absent"]):
            if module in config.modules:
                where = loaded_at.get(module)
                found.violations.append(
                    f"{module} is loaded ({f'LoadModule at {where}' if where else 'built in'})"
                )
            else:
                found.evidence.append(f"{module} is not loaded")
        for module in map(module_id, self.params["present"]):
            if module in config.modules:
                found.evidence.append(f"{module} is loaded")
            else:
                found.violations.append(f"{module} is not loaded")
        alternatives = [module_id(m) for m in self.params["present_any"]]
        loaded = [m for m in alternatives if m in config.modules]
        if alternatives and loaded:
            found.evidence.append(f"{' and '.join(loaded)} loaded")
        elif alternatives:
            found.violations.append(f"none of {', '.join(alternatives)} is loaded")
        return found


class ApacheDirective(ApacheCheck):
    """A directive's effective value, at server level and/or in every virtual host, meets
    ``expect``; ``default`` is httpd's built-in value, used when the directive is not set."""

    name = "apache_directive"
    schema = {
        "directive": Param("str", required=True),
        "expect": Param("expect", required=True),
        "scope": Param("choice", default="all", choices=("all", "server", "vhosts", "ssl_sites")),
        "default": Param("str", help="httpd's compiled-in value when the directive is unset"),
    }

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        name, scope = self.params["directive"], self.params["scope"]
        targets: list[VirtualHost | None] = []
        if scope == "ssl_sites":
            targets.extend(site for site in config.sites() if site.ssl)
        elif scope != "vhosts" or not config.vhosts:
            targets.append(None)
        if scope in ("all", "vhosts"):
            targets.extend(config.vhosts)
        found = Findings()
        if not targets:
            found.evidence.append("no SSL site in the configuration")
        for vhost in targets:
            label = "server level" if vhost is None else str(vhost)
            setting = config.effective(name, vhost)
            if setting is not None:
                value = setting.value
                where = f" at {setting.sources[-1].origin}"
                where += " (inherited from the server level)" if setting.inherited else ""
            else:
                value = self.params["default"]
                where = " (not set: httpd's default)" if value is not None else ""
            problem = self.params["expect"].violation(value)
            if problem:
                found.violations.append(f"{label}: {name} {problem}{where}")
            elif value is None:
                found.evidence.append(f"{label}: {name} not set")
            else:
                found.evidence.append(f"{label}: {name} {value!r}{where}")
        return found


class ApacheForbidden(ApacheCheck):
    """No line of ``directives`` anywhere in the effective configuration (any section).

    ``enables`` counts only lines that switch that keyword on (``ExecCGI``, ``+ExecCGI``,
    and for Options ``All``; ``-ExecCGI`` is fine). ``except_values`` are harmless values
    (``Off``). ``allowed_in_ssl_vhosts`` accepts lines inside virtual hosts that run SSL.
    """

    name = "apache_forbidden"
    schema = {
        "directives": Param("str_list", required=True),
        "enables": Param("str", help="only lines turning this keyword on count"),
        "except_values": Param("str_list", default=()),
        "allowed_in_ssl_vhosts": Param("bool", default=False),
        "value_pattern": Param("regex", help="only lines whose value matches count"),
    }

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        harmless = {v.lower() for v in self.params["except_values"]}
        pattern = self.params["value_pattern"]
        keyword = (self.params["enables"] or "").lower()
        found = Findings()
        for directive in config.anywhere(self.params["directives"]):
            if directive.value.lower() in harmless:
                continue
            if keyword and keyword not in option_changes(directive)[1]:
                continue
            if pattern is not None and not pattern.search(directive.value):
                continue
            vhost = config.vhost_of(directive)
            if self.params["allowed_in_ssl_vhosts"] and vhost is not None and vhost.ssl:
                found.evidence.append(f"allowed in an SSL virtual host: {directive}")
            else:
                found.violations.append(str(directive))
        what = ", ".join(self.params["directives"])
        what += f" turning {self.params['enables']} on" if keyword else ""
        where = "outside SSL virtual hosts " if self.params["allowed_in_ssl_vhosts"] else ""
        found.notes.append(f"looked for {what} {where}in {len(config.files)} files")
        return found


class ApacheHttpsRedirect(ApacheCheck):
    """Every plain-HTTP site (virtual host, or the main server on a Listen port no vhost
    claims) sends every path to an ``https://`` URL: ``Redirect``/``RedirectMatch`` covering
    ``/`` (mod_alias ones at server level are inherited), or a ``RewriteRule`` with
    ``RewriteEngine on`` in that host. ``RewriteCond`` restrictions are not evaluated."""

    name = "apache_https_redirect"
    schema: dict[str, Param] = {}

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        found = Findings()
        plain = [site for site in config.sites() if not site.ssl]
        for site in plain:
            redirect, doubts = _https_redirect(config, site)
            if redirect is not None:
                found.evidence.append(f"{site}: {redirect}")
            elif doubts:
                found.undecided.extend(f"{site}: {doubt}" for doubt in doubts)
            else:
                found.violations.append(f"{site}: serves plain HTTP without an https:// redirect")
        if not plain:
            found.evidence.append("no plain-HTTP site in the configuration")
        return found


def _https_redirect(config: ApacheConfig, site: VirtualHost) -> tuple[Directive | None, list[str]]:
    """The directive sending every path of ``site`` to https, or None and the redirects whose
    pattern could not be evaluated safely (then nobody can tell)."""
    level = (site.section,) if site.section else ()
    doubts: list[str] = []
    inherited = [] if site.is_main_server else config.anywhere(_REDIRECTS)
    candidates = [d for d in inherited if not d.sections]
    candidates += [d for d in site.directives if d.sections == level or _in_root_location(d, level)]
    rewriting = [d.value.lower() for d in site.own if d.key == "rewriteengine"][-1:] == ["on"]
    for directive in candidates:
        try:
            if directive.key in _REDIRECTS:
                target = _redirect_target(directive)
            elif directive.key == "rewriterule" and rewriting and directive.sections == level:
                args = directive.args
                target = args[1] if len(args) >= 2 and _catches_all(args[0], regex=True) else None
            else:
                continue
        except UnsafePattern as exc:
            doubts.append(
                f"{directive.origin}: {directive.name}: cannot evaluate pattern safely ({exc})"
            )
            continue
        if target is not None and target.lower().startswith("https://"):
            return directive, []
    return None, doubts


def _in_root_location(directive: Directive, level: tuple) -> bool:
    sections = directive.sections
    return (
        sections[:-1] == level
        and len(sections) == len(level) + 1
        and sections[-1].kind == "location"
        and sections[-1].args == ("/",)
    )


def _redirect_target(directive: Directive) -> str | None:
    """The URL a mod_alias redirect sends every path to, or None if it covers less."""
    args = list(directive.args)
    if directive.key in ("redirect", "redirectmatch") and args and _REDIRECT_STATUS.match(args[0]):
        args = args[1:]
    if len(args) == 1 and directive.sections and directive.sections[-1].kind == "location":
        return args[0]  # inside <Location />: the path is the location's
    if len(args) != 2:
        return None
    regex = directive.key == "redirectmatch"
    return args[1] if _catches_all(args[0], regex) else None


def _catches_all(pattern: str, regex: bool) -> bool:
    """Whether a redirect's path or regex covers every path; UnsafePattern when the regex
    cannot be run safely (httpd's PCRE is not ``re``, but a pattern ``re`` refuses or
    could run exponentially on is not judged either way)."""
    if not regex:
        return pattern == "/"
    compiled = compile_safe(pattern)
    return all(compiled.search(path) for path in _PROBE_PATHS)


class ApacheTlsProtocols(ApacheCheck):
    """Every SSL site's effective SSLProtocol set holds nothing older than ``min_version``
    (so never SSLv2/SSLv3). Unset means httpd's default ``all -SSLv3``; ``all`` counts SSLv3."""

    name = "apache_tls_protocols"
    schema = {
        "min_version": Param("choice", default="1.2", choices=TLS_VERSIONS),
    }

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        found = Findings()
        minimum = self.params["min_version"]
        floor = PROTOCOLS.index("TLSv1" if minimum == "1.0" else f"TLSv{minimum}")
        sites = [site for site in config.sites() if site.ssl]
        for site in sites:
            try:
                protocols = config.ssl_protocols(site)
            except ValueError as exc:
                found.undecided.append(f"{site}: {exc}")
                continue
            source = protocols.source
            where = (
                f"'SSLProtocol {source.value}' at {source.origin}"
                if source
                else "httpd's default 'all -SSLv3' (SSLProtocol not set)"
            )
            line = f"{site}: {', '.join(protocols.ordered) or 'no protocol'} from {where}"
            weak = [p for p in protocols.ordered if PROTOCOLS.index(p) < floor]
            if weak:
                found.violations.append(f"{line}; older than TLSv{minimum}: {', '.join(weak)}")
            else:
                found.evidence.append(line)
        if not sites:
            found.evidence.append("no SSL site in the configuration")
        elif found.violations and _openssl_refuses_old_tls(ctx, config):
            found.notes.append(OPENSSL3_NOTE)
        return found


#: Why the live probe (LAPP-TLS-050) can pass where the configuration fails.
OPENSSL3_NOTE = (
    "note: this host's OpenSSL 3 has no SSLv3 and refuses TLS 1.0 and 1.1 at security level 1 "
    "and above (Debian's default is 2, /etc/ssl/openssl.cnf), so the live probe LAPP-TLS-050 "
    "may see only TLS 1.2 and newer; the configuration still fails, since an SSLCipherSuite "
    "with @SECLEVEL=0 or a change of OpenSSL would serve what SSLProtocol allows"
)


def _openssl_refuses_old_tls(ctx: CheckContext, config: ApacheConfig) -> bool:
    """Whether mod_ssl links OpenSSL 3 (Debian's libssl3) and no cipher setting lowers its
    security level to 0, the only level at which OpenSSL 3 speaks TLS 1.0 or 1.1."""
    try:
        packages = ctx.host.packages()
    except HostError:
        return False
    if not any(name.startswith("libssl3") for name in packages):
        return False
    settings = config.anywhere(("SSLCipherSuite", "SSLOpenSSLConfCmd"))
    return not any("@seclevel=0" in directive.value.lower() for directive in settings)


__all__ = [
    "ApacheCheck",
    "ApacheDirective",
    "ApacheForbidden",
    "ApacheHttpsRedirect",
    "ApacheModules",
    "ApacheTlsProtocols",
    "Findings",
    "apache_config",
    "conclude",
]
