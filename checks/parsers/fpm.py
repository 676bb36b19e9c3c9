"""PHP-FPM's pools as Debian lays them out: ``/etc/php/VERSION/fpm/php-fpm.conf`` and the
files its ``include=`` globs name (``pool.d/*.conf``), each ``[name]`` section a pool.

A pool's ``php_admin_value[x]``/``php_value[x]`` (and the ``_flag`` forms) override
php.ini's ``x`` for that pool's scripts; ``listen``, ``listen.allowed_clients``,
``listen.mode``, ``user`` and ``group`` say who can reach it and whom it runs as.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from checks.hosts import Host
from checks.parsers.phpini import IniSetting, read_ini
from checks.yamlsource import Problem

_OVERRIDES = ("php_admin_value", "php_admin_flag", "php_value", "php_flag")
_INCLUDE_DEPTH = 8


@dataclass
class FpmPool:
    name: str
    version_dir: str  # /etc/php/8.2
    settings: dict[str, IniSetting] = field(default_factory=dict)

    def override(self, setting: str) -> IniSetting | None:
        """The last ``php_*[setting]`` line of this pool (admin ones win over the others,
        as FPM applies them after)."""
        for kind in _OVERRIDES:
            found = self.settings.get(f"{kind}[{setting}]")
            if found is not None:
                return found
        return None

    def get(self, key: str) -> IniSetting | None:
        return self.settings.get(key)

    def __str__(self) -> str:
        return f"{self.version_dir}/fpm pool [{self.name}]"


@dataclass
class FpmConfig:
    pools: list[FpmPool]
    problems: list[Problem]
    files: list[str]


def load_fpm_pools(host: Host) -> FpmConfig:
    """Every pool of every installed PHP-FPM version, in reading order."""
    config = FpmConfig([], [], [])
    for main in host.glob("/etc/php/*/fpm/php-fpm.conf"):
        version_dir = main.rpartition("/fpm/")[0]
        pools: dict[str, FpmPool] = {}
        _read(host, main, version_dir, pools, config, 0)
        config.pools.extend(pools.values())
    return config


def _read(
    host: Host,
    path: str,
    version_dir: str,
    pools: dict[str, FpmPool],
    config: FpmConfig,
    depth: int,
) -> None:
    for setting in read_ini(host, path, config.files, config.problems):
        if setting.key == "include":
            if depth >= _INCLUDE_DEPTH:
                config.problems.append(setting.origin.problem("includes nested too deep"))
                continue
            if not setting.value.startswith("/"):
                config.problems.append(
                    setting.origin.problem("a relative include depends on php-fpm's prefix")
                )
                continue
            for included in host.glob(setting.value):
                _read(host, included, version_dir, pools, config, depth + 1)
        elif setting.section and setting.section.lower() != "global":
            pool = pools.setdefault(setting.section, FpmPool(setting.section, version_dir))
            pool.settings[setting.key] = setting
