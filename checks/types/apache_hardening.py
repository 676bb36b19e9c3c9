"""Apache hardening beyond single directives: directory options, allowed HTTP methods, access
logs per site, who may see the status pages, and who may read or change the configuration
and the private keys. Each is judged on the effective configuration (includes, conditionals
and inheritance resolved by ``checks.parsers.apache``)."""

from __future__ import annotations

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.apache import (
    ApacheConfig,
    Directive,
    Section,
    merge_options,
    option_changes,
)
from checks.types.apache import ApacheCheck, Findings
from checks.types.base import CheckContext

_LOG_DIRECTIVES = ("customlog", "transferlog")
#: Require forms that let anyone in; everything else (local, ip, host, users, denied) limits.
_PUBLIC_REQUIRE = ("all granted",)


class ApacheOptions(ApacheCheck):
    """``forbid`` (an Options keyword such as Indexes or FollowSymLinks) is off for the root
    directory, which every directory inherits (httpd's default turns FollowSymLinks on),
    and no Options line anywhere turns it on again."""

    name = "apache_options"
    schema = {"forbid": Param("str", required=True, help="Options keyword that must be off")}

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        keyword = self.params["forbid"]
        word = keyword.lower()
        found = Findings()
        root = [
            d
            for d in config.directives
            if d.key == "options" and (not d.sections or _is_root_directory(d.sections))
        ]
        where = f"'{root[-1]}'" if root else "httpd's default (no Options line)"
        if word in merge_options(root):
            found.violations.append(f"the root directory <Directory /> has {keyword}: {where}")
        else:
            found.evidence.append(f"the root directory has no {keyword}: {where}")
        for directive in config.anywhere(["Options"]):
            if word in option_changes(directive)[1]:
                found.violations.append(f"{directive} turns {keyword} on")
        found.notes.append(f"read {len(config.files)} files")
        return found


def _is_root_directory(sections: tuple[Section, ...]) -> bool:
    return len(sections) == 1 and sections[0].kind == "directory" and sections[0].args == ("/",)


class ApacheMethods(ApacheCheck):
    """Every site refuses HTTP methods outside ``allowed``, for every URL: a ``<LimitExcept>``
    listing only allowed methods that denies all (``Require all denied``), or an
    ``AllowMethods`` line, at the server or site level or in its ``<Location />``."""

    name = "apache_methods"
    schema = {
        "allowed": Param("str_list", default=("GET", "POST", "HEAD"), help="methods allowed"),
    }

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        allowed = {m.upper() for m in self.params["allowed"]}
        found = Findings()
        server = [d for d in config.directives if d.vhost_section is None]
        server_rule = _method_rule(server, (), allowed)
        for site in config.sites():
            level = (site.section,) if site.section else ()
            rule = server_rule or _method_rule(site.directives, level, allowed)
            if rule is None:
                found.violations.append(
                    f"{site}: no <LimitExcept {' '.join(sorted(allowed))}> denying other"
                    " methods and no AllowMethods for /"
                )
            else:
                found.evidence.append(f"{site}: {rule}")
        return found


def _method_rule(directives: list[Directive], level: tuple, allowed: set[str]) -> str | None:
    """A line restricting every URL's methods to ``allowed`` at ``level`` (or in its
    ``<Location />``), or None."""
    for directive in directives:
        extra = directive.sections[len(level) :]
        if directive.sections[: len(level)] != level:
            continue
        if extra and extra[0].kind == "location" and extra[0].args == ("/",):
            extra = extra[1:]
        if directive.key == "allowmethods" and not extra:
            methods = {m.upper() for m in directive.args}
            if methods and "RESET" not in methods and methods <= allowed:
                return str(directive)
        elif (
            len(extra) == 1
            and extra[0].kind == "limitexcept"
            and _denies_all(directive)
            and {m.upper() for m in extra[0].args} <= allowed
        ):
            return str(directive)
    return None


def _denies_all(directive: Directive) -> bool:
    value = directive.value.lower()
    return (directive.key == "require" and value == "all denied") or (
        directive.key == "deny" and value == "from all"
    )


class ApacheAccessLog(ApacheCheck):
    """Every site writes an access log: its own CustomLog/TransferLog, or (having none) the
    server level's, which mod_log_config then uses for it; never only /dev/null."""

    name = "apache_access_log"
    schema: dict[str, Param] = {}

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        found = Findings()
        server = [d for d in config.directives if not d.sections and d.key in _LOG_DIRECTIVES]
        for site in config.sites():
            own = [] if site.is_main_server else [d for d in site.own if d.key in _LOG_DIRECTIVES]
            logs = own or server
            real = [d for d in logs if d.args and d.args[0] != "/dev/null"]
            source = "" if own or site.is_main_server else " (inherited from the server level)"
            if real:
                found.evidence.append(f"{site}: {real[0]}{source}")
            elif logs:
                found.violations.append(f"{site}: logs only to /dev/null ({logs[0]})")
            else:
                found.violations.append(f"{site}: no CustomLog or TransferLog")
        return found


class ApacheStatusPages(ApacheCheck):
    """Every ``SetHandler`` of ``handlers`` (server-status, server-info, ...) stands in a
    section that limits who may ask (``Require local``, ``ip``, ``host``, a user), with no
    ``Require all granted`` there; one outside any section would serve every URL."""

    name = "apache_status_pages"
    schema = {
        "handlers": Param(
            "str_list",
            default=("server-status", "server-info", "balancer-manager"),
            help="handlers that must not be public",
        ),
    }

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        handlers = {h.lower() for h in self.params["handlers"]}
        found = Findings()
        uses = [d for d in config.anywhere(["SetHandler"]) if d.value.lower() in handlers]
        for use in uses:
            problem = _access_problem(config, use)
            (found.violations if problem else found.evidence).append(
                f"{use}" + (f": {problem}" if problem else ": access limited")
            )
        if not uses:
            found.evidence.append(f"no SetHandler {', '.join(sorted(handlers))}")
        return found


def _access_problem(config: ApacheConfig, use: Directive) -> str | None:
    scope = tuple(s for s in use.sections if s.kind != "virtualhost")
    if not scope:
        return "outside any <Location>: every URL of the site is this page"
    inside = [
        d
        for d in config.directives
        if d.sections[: len(use.sections)] == use.sections and d.key in ("require", "allow")
    ]
    public = [
        d
        for d in inside
        if (d.key == "require" and d.value.lower() in _PUBLIC_REQUIRE and not _in_require_all(d))
        or (d.key == "allow" and d.value.lower() == "from all")
    ]
    if public:
        return f"public: {public[0]}"
    if not inside:
        return "no Require line: whoever may read the document root may read it"
    return None


def _in_require_all(directive: Directive) -> bool:
    return any(s.kind == "requireall" for s in directive.sections)


class ApacheFileModes(ApacheCheck):
    """``config``: the server root and every file httpd reads are owned by root:root, not
    writable by group and not accessible to others. ``keys``: every SSLCertificateKeyFile is
    owned by root and readable by root (and its group) only."""

    name = "apache_file_modes"
    schema = {"files": Param("choice", required=True, choices=("config", "keys"))}

    def judge(self, config: ApacheConfig, ctx: CheckContext) -> Findings:
        found = Findings()
        if self.params["files"] == "config":
            paths = [config.server_root, *dict.fromkeys(config.files)]
            for path in paths:
                self._judge(ctx, path, 0o027, root_group=True, found=found)
        else:
            keys = [d for d in config.anywhere(["SSLCertificateKeyFile"]) if d.args]
            for path in dict.fromkeys(d.args[0] for d in keys):
                self._judge(ctx, path, 0o137, root_group=False, found=found)
            if not keys:
                found.evidence.append("no SSLCertificateKeyFile in the configuration")
        return found

    @staticmethod
    def _judge(
        ctx: CheckContext, path: str, forbidden: int, root_group: bool, found: Findings
    ) -> None:
        try:
            info = ctx.host.stat(path)
        except HostError as exc:
            found.undecided.append(f"cannot stat {exc}")
            return
        line = f"{path}: {info.mode:04o} {info.owner}:{info.group}"
        problems = []
        if info.uid != 0:
            problems.append("not owned by root")
        if root_group and info.gid != 0:
            problems.append("group is not root")
        if info.mode & forbidden:
            problems.append(f"mode allows more than {0o777 & ~forbidden:04o}")
        (found.violations if problems else found.evidence).append(
            f"{line}: {', '.join(problems)}" if problems else line
        )


__all__ = [
    "ApacheAccessLog",
    "ApacheFileModes",
    "ApacheMethods",
    "ApacheOptions",
    "ApacheStatusPages",
]
