"""PHP settings of Apache's PHP module: php.ini (every installed version) and the
``php_admin_flag``/``php_flag``/``php_admin_value``/``php_value`` lines of the Apache
configuration, which override php.ini where they stand."""

from __future__ import annotations

from checks.expect import Expectation
from checks.params import Param
from checks.parsers.apache import SERVER_ROOT, ApacheConfigError, Directive
from checks.parsers.phpini import APACHE_SAPI_DIRS, PhpConfig, ini_bool, load_apache_php
from checks.result import Verdict, errored
from checks.types.apache import Findings, apache_config, conclude
from checks.types.base import CheckContext, CheckType

APACHE_PHP_DIRECTIVES = ("php_admin_flag", "php_flag", "php_admin_value", "php_value")


class PhpIni(CheckType):
    """``setting`` is off (PHP's boolean reading) or, with ``expect``, meets it, in every
    Apache PHP configuration found: each version's php.ini (``default`` stands for PHP's
    built-in value when unset) and every Apache ``php_*`` line naming the setting."""

    name = "php_ini"
    schema = {
        "setting": Param("str", required=True),
        "expect": Param("expect", help="instead of 'must be off'"),
        "default": Param("str", help="PHP's built-in value when php.ini does not set it"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        configs = ctx.memo(("php", "apache2"), lambda: load_apache_php(ctx.host))
        if not configs:
            return errored(f"no PHP configuration for Apache found ({APACHE_SAPI_DIRS})")
        overrides: list[Directive] = []
        problems: list[object] = [p for c in configs for p in c.problems]
        found = Findings()
        if ctx.host.exists(f"{SERVER_ROOT}/apache2.conf"):
            try:
                apache = apache_config(ctx)
            except ApacheConfigError as exc:
                return errored(str(exc))
            overrides = self._overrides(apache.anywhere(APACHE_PHP_DIRECTIVES))
            problems += apache.problems
        else:
            found.notes.append(f"no {SERVER_ROOT}/apache2.conf: php.ini values only")
        server_wide = [d for d in overrides if not d.sections][-1:]
        for config in configs:
            self._judge_ini(config, server_wide, found)
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

    def _judge(self, label: str, value: str | None, found: Findings) -> None:
        problem = _violation(self.params["expect"], value)
        if problem:
            found.violations.append(f"{label}: {problem}")
        else:
            found.evidence.append(label)


def _violation(expect: Expectation | None, value: str | None) -> str | None:
    if expect is not None:
        return expect.violation(value)
    if value is None:
        return "not set and PHP's built-in default is unknown (give the check a default)"
    state = ini_bool(value)
    if state is None:
        return f"{value!r} is not an on/off value"
    return "on, expected off" if state else None


__all__ = ["APACHE_PHP_DIRECTIVES", "PhpIni"]
