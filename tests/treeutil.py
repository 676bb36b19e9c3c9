"""Build host trees for ``--root`` style tests: files, modes and symlinks from one dict."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from conftest import FIXTURES

from checks.hosts import CachedHost, LocalHost
from checks.types.base import CheckContext

#: Stands for the key file's bytes: the audit looks at its owner and mode, never its content.
TEST_KEY = b"-----BEGIN PRIVATE KEY-----\n(test placeholder)\n-----END PRIVATE KEY-----\n"


def make_tree(
    root: Path,
    files: dict[str, str | bytes],
    modes: dict[str, int] | None = None,
    links: dict[str, str] | None = None,
) -> Path:
    """Write ``files`` (host path -> content) under root, then chmod ``modes`` and add ``links``."""
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    for path, mode in (modes or {}).items():
        os.chmod(root / path.lstrip("/"), mode)
    for path, destination in (links or {}).items():
        link = root / path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(destination)
    return root


def context(root: Path | None = None, variables: dict | None = None, clock=None) -> CheckContext:
    host = CachedHost(LocalHost(root=str(root) if root else None))
    ctx = CheckContext(host, dict(variables or {}))
    if clock is not None:
        ctx.clock = clock
    return ctx


def dpkg_status(*packages: str) -> str:
    """A dpkg status file listing ``packages`` as installed (plus one removed, for realism)."""
    stanzas = [
        f"Package: {name}\nStatus: install ok installed\nVersion: 1.0-1\n" for name in packages
    ]
    stanzas.append("Package: gone\nStatus: deinstall ok config-files\nVersion: 0.9\n")
    return "\n".join(stanzas)


#: Modes git cannot keep, of the hardened tree's PostgreSQL files (all owned by postgres).
POSTGRES_MODES = {
    "etc/postgresql/15/main": 0o700,
    "etc/postgresql/15/main/postgresql.conf": 0o640,
    "etc/postgresql/15/main/pg_hba.conf": 0o600,
    "var/lib/postgresql/15/main": 0o700,
    "var/lib/postgresql/15/main/PG_VERSION": 0o600,
    "var/log/postgresql/postgresql-15-main.log": 0o640,
}
#: The postgres account's uid in the hardened tree when this machine has none.
POSTGRES_UID = 105


def hardened_root(tmp_path: Path) -> Path:
    """A copy of the fully hardened host tree (tests/fixtures/hardened-root) with fresh
    backups, the modes git does not keep, a TLS key (made here: no key is committed), and
    its PostgreSQL files owned by its postgres account: this machine's (the tree's passwd
    names that uid), or the auditing user when that is not root (which cannot give files
    away)."""
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "hardened-root", root, symlinks=True)
    for path in [root / "etc/apache2", *(root / "etc/apache2").rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, 0o750 if path.is_dir() else 0o640)
    key = root / "etc/ssl/private/ssl-cert-snakeoil.key"
    key.parent.mkdir(parents=True)
    key.write_bytes(TEST_KEY)
    os.chmod(key.parent, 0o710)
    os.chmod(key, 0o640)
    an_hour_ago = int(time.time()) - 3600  # whole seconds: SFTP carries no fractions
    for backup in (root / "srv/backup").rglob("*"):
        os.utime(backup, (an_hour_ago, an_hour_ago))
        os.chmod(backup, 0o700 if backup.is_dir() else 0o600)  # git keeps no modes
    for pattern, mode in HARDENED_MODES.items():
        for path in root.glob(pattern):
            os.chmod(path, mode)
    if os.geteuid() == 0:  # the login account owns its home (uid 1000 in the tree's passwd)
        os.chown(root / "home/admin", 1000, 1000)
    shadow = root / "etc/shadow"  # the login account changed its password yesterday
    yesterday = str(int(time.time() // 86400) - 1)
    shadow.write_text(re.sub(r"^(admin:[^:]*):\d+:", rf"\g<1>:{yesterday}:", shadow.read_text(),
                             flags=re.MULTILINE))  # fmt: skip
    uid = _postgres_uid()
    passwd = root / "etc/passwd"
    passwd.write_text(re.sub(r"^postgres:x:\d+:", f"postgres:x:{uid}:", passwd.read_text(),
                             flags=re.MULTILINE))  # fmt: skip
    for path, mode in POSTGRES_MODES.items():
        if uid != os.geteuid():
            os.chown(root / path, uid, -1)
        os.chmod(root / path, mode)
    os.chmod(root / "var/log/postgresql", 0o1775)  # as postgresql-common leaves it
    return root


def _postgres_uid() -> int:
    if os.geteuid() != 0:
        return os.geteuid()
    try:
        return pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return POSTGRES_UID


#: The modes of the hardened tree's files that git cannot keep (it keeps only x bits).
HARDENED_MODES = {
    "etc/ssh/sshd_config": 0o600,
    "etc/ssh/sshd_config.d/*.conf": 0o600,
    "etc/ssh/ssh_host_*_key": 0o600,
    "etc/shadow": 0o640,
    "etc/gshadow": 0o640,
    "etc/sudoers": 0o440,
    "etc/sudoers.d/*": 0o440,
    "home/admin": 0o750,
    "etc/crontab": 0o600,
    "etc/cron.*": 0o700,
    "var/log/audit/audit.log": 0o600,
    "var/log/account/pacct": 0o640,
}


def replace_with_link(root: Path, path: str, target: str) -> None:
    """Put a symbolic link where a file or directory of the tree was."""
    where = root / path.lstrip("/")
    if where.is_dir() and not where.is_symlink():
        shutil.rmtree(where)
    else:
        where.unlink(missing_ok=True)
    where.symlink_to(target)


@dataclass(frozen=True)
class Outside:
    """Canary files beside an audited tree, which only an escape from the tree could reach.

    A unique marker is in every file's content and in the names only a listing finds; every
    file has a mode (0741) nothing inside uses, so even a stat that escaped would show.
    """

    path: Path
    marker: str

    MODE = 0o741

    @classmethod
    def plant(cls, base: Path) -> Outside:
        marker = f"canary-{uuid.uuid4().hex}"
        path = base / "outside"
        config = f"PasswordAuthentication yes\nMaxAuthTries 99\nBanner /{marker}\n"
        files = {
            "sshd_config": config,
            "ssh/sshd_config": config,
            f"dropins/{marker}.conf": config,
            f"backups/{marker}.tar": marker,
            "php/apache2/php.ini": f"expose_php = On\nerror_log = /{marker}\n",
            "postgresql/main/postgresql.conf": f"listen_addresses = '*' # {marker}\n",
            "postgresql/main/pg_hba.conf": f"host all all 0.0.0.0/0 trust # {marker}\n",
            "apt.conf": f'Unattended-Upgrade::Mail "{marker}";\n',
            f"wants/{marker}.service": "[Unit]\n",
        }
        for name, content in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(content)
            os.chmod(path / name, cls.MODE)
        return cls(path, marker)

    def climb(self, name: str) -> str:
        """A relative link target that climbs far above any tree, then down to ``name``."""
        return "../" * 30 + str(self.path / name).lstrip("/")

    def leaks(self, output: str, results: Iterable[dict]) -> list[str]:
        """What of the outside shows in an audit's output and its (JSON) results."""
        found = [what for what in (self.marker, str(self.path)) if what in output]
        mode = re.compile(rf"\b{self.MODE:04o}\b")
        for result in results:
            if mode.search(" ".join([result["reason"], *result["evidence"]])):
                found.append(f"mode {self.MODE:04o} in {result['id']}")
        return found
