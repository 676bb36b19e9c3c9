"""Which logs to follow when the config names none: what a stock Debian LAPP host writes.

- sshd: ``/var/log/auth.log`` when rsyslog writes it, else the journal of ``ssh.service``
  (Debian 12 installs no syslog daemon by default; reading both would count twice).
- Apache: every ``/var/log/apache2/*access.log`` (``other_vhosts_access.log`` is in
  ``vhost_combined``, the rest in ``combined``, as Debian's config writes them) and
  ``/var/log/apache2/*error.log``.
- PostgreSQL: ``/var/log/postgresql/*.log``, with the ``log_line_prefix`` the cluster's
  own ``postgresql.conf`` sets (so a site that added ``%h`` is read with it).
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Callable

from agent.config import SourceConfig
from agent.detect.logformats import DEBIAN_PG_PREFIX

AUTH_LOG = "/var/log/auth.log"
APACHE_DIR = "/var/log/apache2"
POSTGRES_LOGS = "/var/log/postgresql/*.log"
POSTGRES_CONFIGS = "/etc/postgresql/*/*/postgresql.conf"


def discover_sources(
    exists: Callable[[str], bool] = os.path.exists,
    find: Callable[[str], list[str]] = glob.glob,
    journalctl: str | None = None,
) -> list[SourceConfig]:
    """The sources of this host (see the module docstring), possibly none."""
    found: list[SourceConfig] = []
    if exists(AUTH_LOG):
        found.append(SourceConfig("sshd", path=AUTH_LOG))
    elif (journalctl or shutil.which("journalctl")) is not None:
        found.append(SourceConfig("sshd", journal_unit="ssh.service"))
    for path in sorted(find(f"{APACHE_DIR}/*access.log")):
        log_format = "vhost_combined" if path.endswith("other_vhosts_access.log") else "combined"
        found.append(SourceConfig("apache_access", path=path,
                                  options={"access_log_format": log_format}))  # fmt: skip
    if find(f"{APACHE_DIR}/*error.log"):
        found.append(SourceConfig("apache_error", path=f"{APACHE_DIR}/*error.log"))
    if find(POSTGRES_LOGS):
        prefix = postgres_prefix(find(POSTGRES_CONFIGS))
        found.append(SourceConfig("postgresql", path=POSTGRES_LOGS,
                                  options={"pg_prefix": prefix}))  # fmt: skip
    return found


def postgres_prefix(configs: list[str]) -> str:
    """The ``log_line_prefix`` the clusters' configs agree on, else Debian's default."""
    from checks.hosts import HostError, LocalHost
    from checks.parsers.postgres import parse_postgresql_conf

    host = LocalHost()
    prefixes = set()
    for path in configs:
        try:
            settings = parse_postgresql_conf(host, path)
        except (HostError, ValueError):
            continue
        value = settings.get("log_line_prefix")
        prefixes.add(value.value if value is not None else DEBIAN_PG_PREFIX)
    return prefixes.pop() if len(prefixes) == 1 else DEBIAN_PG_PREFIX
