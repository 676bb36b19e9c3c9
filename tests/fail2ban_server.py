"""A throwaway fail2ban-server for tests and benches, running lappguard's documented jail.

Its config dir, socket, pid file and log live in a private directory, and it runs inside a
network namespace, so its nftables action changes that namespace's firewall only. The config
is what contrib/fail2ban/ tells admins to install, next to the distribution's own
nftables.conf, with fail2ban's database in memory (a restarted server has forgotten its bans)
and one more jail without any action (fail2ban's bookkeeping alone, for tests of volume).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTRIB = PROJECT_ROOT / "contrib" / "fail2ban"
SYSTEM_ACTIONS = Path("/etc/fail2ban/action.d")
SYSTEM_FILTERS = Path("/etc/fail2ban/filter.d")
JAIL = "lappguard"
BULK_JAIL = "lappguard-bulk"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Fail2banServer:
    """A running fail2ban-server: its namespace, private directory and main process."""

    namespace: str
    workdir: Path
    pid: int

    @property
    def conf(self) -> Path:
        return self.workdir / "conf"

    @property
    def socket(self) -> Path:
        return self.workdir / "fail2ban.sock"

    @property
    def log(self) -> Path:
        return self.workdir / "fail2ban.log"

    def client(self, *args: str) -> str:
        """fail2ban's own client (the oracle) on this server; its stdout."""
        done = subprocess.run(
            ["fail2ban-client", "-c", str(self.conf), "-s", str(self.socket), *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"fail2ban-client {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def nft(self, *args: str) -> str:
        """nft inside the server's namespace, where the jail's action keeps its set."""
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace, "nft", *args],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip


def write_config(conf: Path, workdir: Path, jails: str = "") -> None:
    """fail2ban.conf for a private server, the stock nftables action, contrib's two files.

    ``jails``: more jail.conf sections, for a server that also reads logs itself (the
    latency bench's sshd jail); the distribution's filters and nftables actions come along.
    """
    (conf / "action.d").mkdir(parents=True)
    (conf / "jail.d").mkdir()
    (conf / "fail2ban.conf").write_text(
        "[Definition]\nloglevel = INFO\n"
        f"logtarget = {workdir / 'fail2ban.log'}\nsyslogsocket = auto\nallowipv6 = auto\n"
        "dbfile = :memory:\ndbpurgeage = 1d\n"
    )
    shutil.copy(SYSTEM_ACTIONS / "nftables.conf", conf / "action.d")
    shutil.copy(CONTRIB / "action.d" / "lappguard-nftables.conf", conf / "action.d")
    shutil.copy(CONTRIB / "jail.d" / "lappguard.local", conf / "jail.d")
    (conf / "jail.conf").write_text(
        f"[{BULK_JAIL}]\nenabled = true\nfilter =\nbackend = polling\nbantime = -1\naction =\n"
        + jails
    )
    if jails:
        shutil.copytree(SYSTEM_FILTERS, conf / "filter.d")
        for action in ("nftables-allports.conf", "nftables-multiport.conf"):
            shutil.copy(SYSTEM_ACTIONS / action, conf / "action.d")


@contextmanager
def running_fail2ban(namespace: str, workdir: Path, jails: str = "") -> Iterator[Fail2banServer]:
    """fail2ban-server in ``namespace`` with its files in ``workdir`` (and ``jails``, see
    :func:`write_config`), stopped afterwards."""
    write_config(workdir / "conf", workdir, jails)
    output = workdir / "server.out"
    argv = [
        "ip", "netns", "exec", namespace, "fail2ban-server", "-f", "-x",
        "-c", str(workdir / "conf"), "-s", str(workdir / "fail2ban.sock"),
        "-p", str(workdir / "fail2ban.pid"), "--logtarget", str(workdir / "fail2ban.log"),
    ]  # fmt: skip
    with output.open("wb") as out:
        # ip netns exec execs the server: this is fail2ban-server's own process.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        _wait_ready(proc, output)
        yield Fail2banServer(namespace, workdir, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)  # fail2ban stops its jails, which run actionstop
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen, output: Path) -> None:
    """Until the server prints "Server ready", which it does once its jails have started."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = output.read_text(errors="replace")
        if "Server ready" in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"fail2ban-server exited {proc.returncode}:\n{text[-4000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"fail2ban-server did not get ready:\n{output.read_text()[-4000:]}")
