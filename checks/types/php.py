"""PHP settings of every web SAPI (mod_php and PHP-FPM), and PHP-FPM's pools.

A setting is judged where it takes effect: each version's php.ini (with conf.d) per SAPI; for
mod_php, the Apache configuration's ``php_admin_flag``/``php_flag``/``php_admin_value``/
``php_value`` lines, which override php.ini where they stand; for PHP-FPM, each pool's
``php_admin_value[...]``/``php_value[...]`` lines, which override php.ini for that pool.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from checks.expect import Expectation
from checks.hosts import PlannedCommand
from checks.params import Param
from checks.parsers.apache import APACHECTL_MODULES, SERVER_ROOT, ApacheConfigError, Directive
from checks.parsers.fpm import FpmConfig, FpmPool, load_fpm_pools
from checks.parsers.phpini import SAPI_DIRS, PhpConfig, ini_bool, load_php_sapis
from checks.result import Verdict, errored
from checks.types.apache import Findings, apache_config, conclude
from checks.types.base import CheckContext, CheckType

APACHE_PHP_DIRECTIVES = ("php_admin_flag", "php_flag", "php_admin_value", "php_value")
#: disable_functions set in a pool adds to php.ini's list (FPM disables both), not replaces.
_ADDITIVE = ("disable_functions", "disable_classes")
_LIST_SEPARATORS = re.compile(r"[,\s]+")


def php_sapis(ctx: CheckContext) -> list[PhpConfig]:
    return ctx.memo(("php", "sapis"), lambda: load_php_sapis(ctx.host))


def fpm_pools(ctx: CheckContext) -> FpmConfig:
    return ctx.memo(("php", "fpm-pools"), lambda: load_fpm_pools(ctx.host))


class PhpIni(CheckType):
    """``setting`` is off (PHP's boolean reading), or meets ``expect``, or lists every one of
    ``contains``, wherever PHP serves the web: each SAPI's php.ini (``default`` stands for
    PHP's built-in value when unset), every Apache ``php_*`` line and every FPM pool."""

    name = "php_ini"
    schema = {
        "setting": Param("str", required=True),
        "expect": Param("expect", help="instead of 'must be off'"),
        "contains": Param("str_list", default=(), help="items the list value must hold"),
        "default": Param("str", help="PHP's built-in value when php.ini does not set it"),
    }

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return (APACHECTL_MODULES,)  # Apache's php_* lines: its configuration

    def run(self, ctx: CheckContext) -> Verdict:
        configs = php_sapis(ctx)
        if not configs:
            return errored(f"no PHP configuration for a web server found ({', '.join(SAPI_DIRS)})")
        problems: list[object] = [p for c in configs for p in c.problems]
        found = Findings()
        overrides: list[Directive] = []
        if any(c.sapi == "apache2" for c in configs):
            if ctx.host.exists(f"{SERVER_ROOT}/apache2.conf"):
                try:
                    apache = apache_config(ctx)
                except ApacheConfigError as exc:
                    return errored(str(exc))
                overrides = self._overrides(apache.anywhere(APACHE_PHP_DIRECTIVES))
                problems += apache.problems
            else:
                found.notes.append(f"no {SERVER_ROOT}/apache2.conf: php.ini values only")
        fpm = fpm_pools(ctx) if any(c.sapi == "fpm" for c in configs) else FpmConfig([], [], [])
        problems += fpm.problems
        server_wide = [d for d in overrides if not d.sections][-1:]
        for config in configs:
            if config.sapi == "apache2":
                self._judge_ini(config, server_wide, found)
                continue
            pools = [p for p in fpm.pools if p.version_dir == config.version_dir]
            if not pools:
                self._judge_ini(config, [], found)
            for pool in pools:
                self._judge_pool(config, pool, found)
        for directive in overrides:
            self._judge(str(directive), directive.args[1], found)
        return conclude(found, problems)

    def _overrides(self, directives: list[Directive]) -> list[Directive]:
        setting = self.params["setting"]
        return [d for d in directives if len(d.args) == 2 and d.args[0] == setting]

    def _judge_ini(self, config: PhpConfig, server_wide: list[Directive], found: Findings) -> None:
        setting = config.settings.get(self.params["setting"])
        if server_wide:
            shadowed = f" ({setting} is overridden)" if setting else ""
            found.evidence.append(f"{config.directory}: set by {server_wide[0].origin}{shadowed}")
        elif setting is not None:
            self._judge(str(setting), setting.value, found)
        else:
            default = self.params["default"]
            label = f"{config.directory}: {self.params['setting']} not set"
            self._judge(label + (f", PHP default {default!r}" if default else ""), default, found)

    def _judge_pool(self, config: PhpConfig, pool: FpmPool, found: Findings) -> None:
        name = self.params["setting"]
        override = pool.override(name)
        ini = config.settings.get(name)
        if override is None:
            value = ini.value if ini else self.params["default"]
            where = str(ini) if ini else f"{config.directory}: {name} not set"
            self._judge(f"{pool}: {where}", value, found)
        elif name in _ADDITIVE and ini is not None:
            self._judge(f"{pool}: {ini} and {override}", f"{ini.value},{override.value}", found)
        else:
            self._judge(f"{pool}: {override}", override.value, found)

    def _judge(self, label: str, value: str | None, found: Findings) -> None:
        problem = _violation(self.params["expect"], self.params["contains"], value)
        if problem:
            found.violations.append(f"{label}: {problem}")
        else:
            found.evidence.append(label)


def _violation(
    expect: Expectation | None, contains: tuple[str, ...], value: str | None
) -> str | None:
    if contains:
        items = {i.lower() for i in _LIST_SEPARATORS.split(value or "") if i}
        missing = [c for c in contains if c.lower() not in items]
        return f"does not list {', '.join(missing)}" if missing else None
    if expect is not None:
        return expect.violation(value)
    if value is None:
        return "not set and PHP's built-in default is unknown (give the check a default)"
    state = ini_bool(value)
    if state is None:
        return f"{value!r} is not an on/off value"
    return "on, expected off" if state else None


class PhpFpmPools(CheckType):
    """Every PHP-FPM pool: ``listen`` (reachable from this host only: a unix socket that
    other local users cannot open, or a loopback address; another address only when
    ``listen.allowed_clients`` names loopback clients alone) or ``user`` (its workers run
    neither as root nor with group root)."""

    name = "php_fpm_pools"
    schema = {"aspect": Param("choice", required=True, choices=("listen", "user"))}

    def run(self, ctx: CheckContext) -> Verdict:
        fpm = fpm_pools(ctx)
        found = Findings()
        if not fpm.pools and not fpm.problems:
            return errored("no PHP-FPM pool found (/etc/php/*/fpm/php-fpm.conf and its includes)")
        for pool in fpm.pools:
            judge = _judge_listen if self.params["aspect"] == "listen" else _judge_user
            problem, detail = judge(pool)
            if problem:
                found.violations.append(f"{pool}: {detail}: {problem}")
            else:
                found.evidence.append(f"{pool}: {detail}")
        return conclude(found, fpm.problems)


def _judge_listen(pool: FpmPool) -> tuple[str | None, str]:
    listen = pool.get("listen")
    if listen is None:
        return "no listen address (FPM refuses to start such a pool)", f"{pool.name}"
    value = listen.value
    if value.startswith("/"):
        mode = pool.get("listen.mode")
        shown = f"{listen}" + (f", {mode}" if mode else "")
        if mode and _octal(mode.value) is not None and _octal(mode.value) & 0o006:
            return "other local users may connect to the socket", shown
        return None, shown
    host = value.rpartition(":")[0].strip("[]") if ":" in value else ""
    if _is_loopback(host):
        return None, str(listen)
    clients = pool.get("listen.allowed_clients")
    shown = f"{listen}" + (f", {clients}" if clients else "")
    if clients and all(_is_loopback(c.strip()) for c in clients.value.split(",") if c.strip()):
        return None, shown
    where = f"address {host}" if host else "every address"
    return f"listens on {where} for clients beyond this host", shown


def _judge_user(pool: FpmPool) -> tuple[str | None, str]:
    user, group = pool.get("user"), pool.get("group")
    shown = ", ".join(str(s) for s in (user, group) if s) or "no user line"
    if user is None:
        return "no user: the pool runs as the master's user (root on Debian)", shown
    if user.value in ("root", "0") or (group is not None and group.value in ("root", "0")):
        return "runs PHP as root", shown
    return None, shown


def _octal(text: str) -> int | None:
    try:
        return int(text, 8)
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["APACHE_PHP_DIRECTIVES", "PhpFpmPools", "PhpIni"]
