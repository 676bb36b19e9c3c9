"""Real /etc/apache2 trees for ``LocalHost(root=...)`` tests, laid out as Debian's package and
its a2enmod/a2enconf/a2ensite helpers leave them (relative symlinks in the *-enabled dirs)."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import FIXTURES

APACHE_FIXTURES = FIXTURES / "apache"
DEBIAN = APACHE_FIXTURES / "debian"
HARDENED = APACHE_FIXTURES / "hardened_synthetic"
OURS = APACHE_FIXTURES / "lappguard"
#: What a fresh Debian 12 apache2 install enables (mods-enabled/*.load), plus ssl as
#: ``a2enmod ssl`` adds it with its dependency socache_shmcb.
DEBIAN_MODULES = (
    "access_compat",
    "alias",
    "auth_basic",
    "authn_core",
    "authn_file",
    "authz_core",
    "authz_host",
    "authz_user",
    "autoindex",
    "deflate",
    "dir",
    "env",
    "filter",
    "mime",
    "mpm_event",
    "negotiation",
    "reqtimeout",
    "setenvif",
    "status",
)
DEBIAN_CONFS = ("other-vhosts-access-log", "security", "serve-cgi-bin")


class ApacheTree:
    """An /etc/apache2 under ``root``, started from the Debian package's files."""

    def __init__(self, root: Path):
        self.root = root
        self.etc = root / "etc" / "apache2"
        shutil.copytree(DEBIAN, self.etc)
        for kind in ("mods", "conf", "sites"):
            (self.etc / f"{kind}-enabled").mkdir()

    def put(self, relative: str, content: str | Path) -> None:
        """Write (or replace) a file under /etc/apache2, from text or a fixture file."""
        target = self.etc / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content.read_text() if isinstance(content, Path) else content)

    def enable_module(self, *names: str) -> None:
        for name in names:
            load = self.etc / "mods-available" / f"{name}.load"
            if not load.exists():
                so = f"/usr/lib/apache2/modules/mod_{name}.so"
                load.write_text(f"LoadModule {name}_module {so}\n")
            for suffix in (".load", ".conf"):
                self._link("mods", f"{name}{suffix}")

    def enable_conf(self, *names: str) -> None:
        for name in names:
            self._link("conf", f"{name}.conf")

    def enable_site(self, *names: str) -> None:
        for name in names:
            self._link("sites", f"{name}.conf")

    def disable_conf(self, name: str) -> None:
        (self.etc / "conf-enabled" / f"{name}.conf").unlink()

    def _link(self, kind: str, file_name: str) -> None:
        if (self.etc / f"{kind}-available" / file_name).exists():
            link = self.etc / f"{kind}-enabled" / file_name
            link.symlink_to(f"../{kind}-available/{file_name}")


def debian_stock(root: Path) -> ApacheTree:
    """Debian's defaults with ``a2enmod ssl`` and ``a2ensite default-ssl`` done."""
    tree = ApacheTree(root)
    tree.enable_module(*DEBIAN_MODULES, "socache_shmcb", "ssl")
    tree.enable_conf(*DEBIAN_CONFS)
    tree.enable_site("000-default", "default-ssl")
    return tree


def hardened(root: Path) -> ApacheTree:
    """The stock tree with the hardened_synthetic files and an HTTP site that only redirects."""
    tree = debian_stock(root)
    tree.put("conf-available/security.conf", HARDENED / "security.conf")
    tree.put("conf-available/hardening.conf", HARDENED / "hardening.conf")
    tree.put("mods-available/alias.conf", HARDENED / "alias.conf")
    tree.put("mods-available/ssl.conf", HARDENED / "ssl.conf")
    tree.put("sites-available/000-default.conf", OURS / "000-default-https-redirect.conf")
    tree.enable_conf("hardening")
    return tree
