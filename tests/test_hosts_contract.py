"""One contract for every Host: the same files give the same answers, whether read on this
machine (``LocalHost``), under ``--root`` (``LocalHost(root=...)``) or over SSH (``SSHHost``
to a real sshd in a network namespace). Errors read the same too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from namespaces import entered
from remote_hosts import Lan, counted_sftp_requests, lan_of_one
from treeutil import make_tree

from checks.hosts import CommandNotFound, Host, HostError, LocalHost
from checks.rootfs import MAX_READ_BYTES
from checks.ssh_host import SSHHost
from checks.ssh_snapshot import Layout

MTIME = 1_700_000_000


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[Lan]:
    with lan_of_one(tmp_path_factory.mktemp("contract"), "contract") as net:
        yield net


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Files every host sees: under /tmp for live hosts, as / for the --root host."""
    root = make_tree(
        tmp_path_factory.mktemp("files"),
        {
            "/etc/app.conf": "key = value\n",
            "/etc/conf.d/a.conf": "a\n",
            "/etc/conf.d/b.conf": "b\n",
            "/etc/conf.d/.hidden.conf": "h\n",
            "/etc/secret": "s\n",
            # the --root host names owners from the tree's own files, as the others do
            "/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
            "/etc/group": "root:x:0:\n",
        },
        modes={"/etc/secret": 0o600, "/etc/app.conf": 0o640},
        links={"/etc/link.conf": "app.conf", "/etc/dangling.conf": "nowhere", "/etc/d": "conf.d"},
    )
    os.mkfifo(root / "etc/fifo")
    with open(root / "etc/big", "wb") as handle:
        handle.truncate(MAX_READ_BYTES + 1)
    for path in root.rglob("*"):
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    return root


@pytest.fixture(params=["local", "root", "ssh", "ssh-snapshot", "ssh-listed"])
def subject(request, network, tree) -> Iterator[tuple[Host, str]]:
    """(host, prefix): the tree's /x is prefix + /x on that host. ``ssh-snapshot`` answers
    from a snapshot of the tree's /etc what it can (checks.ssh_snapshot), SFTP the rest;
    ``ssh-listed`` from one that lists /etc one level deep and brings named files."""
    if request.param == "root":
        yield LocalHost(root=str(tree)), ""
    elif request.param == "local":
        yield LocalHost(), str(tree)
    else:
        with entered(network.auditor):
            host = SSHHost.open("contract", network.options())
            if request.param == "ssh-snapshot":
                assert host.take_snapshot(snapshot_of(tree))
            elif request.param == "ssh-listed":
                assert host.take_snapshot(listing_of(tree))
        with host:
            yield host, str(tree)


def snapshot_of(tree: Path) -> Layout:
    """The tree's /etc listed whole, with its small files' contents."""
    return Layout(trees=(f"{tree}/etc",), content=(f"{tree}/etc",))


def listing_of(tree: Path) -> Layout:
    """The tree's /etc listed one level deep (its subdirectories left to SFTP), with the
    contents of the files it names."""
    etc = f"{tree}/etc"
    return Layout(trees=(), listed=(etc,), files=(f"{etc}/*.conf", f"{etc}/secret", f"{etc}/big"))


def test_files_read_alike(subject):
    host, at = subject
    assert host.read_text(f"{at}/etc/app.conf") == "key = value\n"
    assert host.read_bytes(f"{at}/etc/link.conf", limit=3) == b"key"
    assert host.read_bytes(f"{at}/etc/big", limit=4) == b"\0\0\0\0"
    for path, message in [
        ("/etc/missing", "No such file or directory"),
        ("/etc/conf.d", "Is a directory"),
        ("/etc/fifo", "not a regular file (a FIFO)"),
        ("/etc/dangling.conf", "No such file or directory"),
        ("/etc/big", f"file too large ({MAX_READ_BYTES + 1} bytes, limit {MAX_READ_BYTES})"),
    ]:
        with pytest.raises(HostError) as caught:
            host.read_bytes(f"{at}{path}")
        assert str(caught.value) == f"{at}{path}: {message}"
    with pytest.raises(HostError, match="not an absolute path"):
        host.read_bytes("etc/app.conf")


def test_stat_listdir_readlink_alike(subject):
    host, at = subject
    info = host.stat(f"{at}/etc/link.conf")
    assert (info.mode, info.owner, info.group, info.size, info.mtime) == (
        0o640, "root", "root", 12, MTIME
    )  # fmt: skip
    assert (info.is_file, info.is_link, info.is_dir) == (True, True, False)
    link = host.stat(f"{at}/etc/link.conf", follow_symlinks=False)
    assert (link.is_link, link.is_file) == (True, False)
    assert host.stat(f"{at}/etc/d").is_dir
    assert host.listdir(f"{at}/etc/d") == [".hidden.conf", "a.conf", "b.conf"]
    assert host.readlink(f"{at}/etc/link.conf") == "app.conf"
    with pytest.raises(HostError, match="Invalid argument"):
        host.readlink(f"{at}/etc/app.conf")
    assert not host.exists(f"{at}/etc/dangling.conf")
    assert host.lexists(f"{at}/etc/dangling.conf")


def test_globs_alike(subject):
    host, at = subject
    assert host.glob(f"{at}/etc/*.conf") == [
        f"{at}/etc/app.conf", f"{at}/etc/dangling.conf", f"{at}/etc/link.conf"
    ]  # fmt: skip
    assert host.glob(f"{at}/etc/d/*") == [f"{at}/etc/d/a.conf", f"{at}/etc/d/b.conf"]
    assert host.glob(f"{at}/etc/*/.*.conf") == [
        f"{at}/etc/conf.d/.hidden.conf", f"{at}/etc/d/.hidden.conf"
    ]  # fmt: skip
    assert host.glob(f"{at}/etc/nothing/*") == []


def test_many_threads_at_once_get_the_answers_one_gets_alone(subject):
    """Checks run concurrently; over SSH they share one SFTP session, requests pipelined,
    so every answer (and every error) must reach the thread that asked for it."""
    host, at = subject

    def answers(path: str) -> tuple:
        found = []
        for ask in (host.read_bytes, host.stat, host.listdir, host.readlink):
            try:
                found.append(ask(f"{at}{path}"))
            except HostError as exc:
                found.append(str(exc))
        return tuple(found)

    paths = ["/etc/app.conf", "/etc/link.conf", "/etc/d", "/etc/missing", "/etc/fifo",
             "/etc/secret", "/etc/conf.d/a.conf", "/etc/dangling.conf"] * 8  # fmt: skip
    alone = [answers(path) for path in paths]
    with ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(answers, paths)) == alone


def test_commands_alike(subject):
    host, _ = subject
    if not host.is_live:
        with pytest.raises(CommandNotFound):
            host.run(["true"])
        return
    done = host.run(["sh", "-c", 'echo "$1"; echo oops >&2; exit 3', "sh", "a b;$(c)"])
    assert (done.exit_code, done.stdout, done.stderr) == (3, "a b;$(c)\n", "oops\n")
    assert host.which("sh") in ("/usr/bin/sh", "/bin/sh")
    with pytest.raises(CommandNotFound):
        host.run(["no-such-program-here"])
    with pytest.raises(HostError, match=r"timed out after 0\.5s"):
        host.run(["sleep", "10"], timeout=0.5)


def test_a_snapshot_answers_without_sftp_requests(network, tree, monkeypatch):
    """What the snapshot holds costs no SFTP request: listings, stats, links, contents,
    globs, and "no such file" inside a directory it listed."""
    requests = counted_sftp_requests(monkeypatch)
    with entered(network.auditor), SSHHost.open("contract", network.options()) as host:
        assert host.take_snapshot(snapshot_of(tree))
        requests.clear()  # the owners' names (passwd, group) are read over SFTP once
        host.stat(f"{tree}/etc/app.conf")
        assert requests
        requests.clear()
        assert host.read_text(f"{tree}/etc/link.conf") == "key = value\n"
        assert host.listdir(f"{tree}/etc/d") == [".hidden.conf", "a.conf", "b.conf"]
        assert host.readlink(f"{tree}/etc/d") == "conf.d"
        assert host.stat(f"{tree}/etc/d/../secret").mode == 0o600
        assert host.glob(f"{tree}/etc/*/*.conf") == [
            f"{tree}/etc/conf.d/a.conf", f"{tree}/etc/conf.d/b.conf",
            f"{tree}/etc/d/a.conf", f"{tree}/etc/d/b.conf",
        ]  # fmt: skip
        assert not host.exists(f"{tree}/etc/missing")
        assert not host.exists(f"{tree}/etc/app.conf/inside")  # ENOTDIR, as SFTP says
        assert requests == []
        assert not host.exists(f"{tree}/other")  # outside the snapshot: asked
        assert requests


def test_an_unreadable_file_is_refused_alike_and_sudo_reads_it(network, tree):
    """A root-only file and directory, looked at as an unprivileged user: here, over SSH
    as ``auditor`` (with and without a snapshot, which leaves what it could not read to
    SFTP), and over SSH with sudo (which reads them)."""
    path = f"{tree}/etc/secret"
    modes = {directory: directory.stat().st_mode for directory in (tree.parent, tree.parent.parent)}
    for directory in modes:  # pytest's own: the user may pass through them to the tree
        directory.chmod(0o711)
    os.chmod(tree, 0o755)
    private = tree / "etc/private"
    private.mkdir(mode=0o700)
    (private / "key").write_text("k\n")
    local = subprocess.run(
        ["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", sys.executable, "-c",
         "import sys; from checks.hosts import LocalHost\n"
         "try: LocalHost().read_bytes(sys.argv[1])\n"
         "except Exception as e: print(e)", path],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    with entered(network.auditor):
        plain = SSHHost.open("contract", network.options(user="auditor"))
        snapshot = SSHHost.open("contract", network.options(user="auditor"))
        root = SSHHost.open("contract", network.options(user="auditor"), sudo=True)
        assert snapshot.take_snapshot(snapshot_of(tree))
        assert root.take_snapshot(snapshot_of(tree))
    try:
        with plain, snapshot, root:
            for host in (plain, snapshot):
                with pytest.raises(HostError) as caught:
                    host.read_bytes(path)
                assert str(caught.value) == local.stdout.strip() == f"{path}: Permission denied"
                for look in (host.listdir, host.exists, host.glob):
                    with pytest.raises(HostError, match="Permission denied"):
                        look(f"{private}/{'*' if look == host.glob else 'key'}")
                assert host.run(["id", "-u"]).stdout == "4242\n"
            assert root.read_text(path) == "s\n"
            assert root.listdir(str(private)) == ["key"]
            assert root.read_text(f"{private}/key") == "k\n"
            assert root.run(["id", "-u"]).stdout == "0\n"
    finally:
        shutil.rmtree(private)
        for directory, mode in modes.items():
            directory.chmod(mode)


def test_sockets_and_processes_are_those_psutil_sees(network):
    """On the host itself LocalHost (psutil) lists them; over SSH, ss and ps must agree."""
    host = network.hosts["contract"]
    script = (
        "import json; from checks.hosts import LocalHost; h = LocalHost()\n"
        "print(json.dumps([[s.proto, s.address, s.port, s.pid, s.process, s.uid]"
        " for s in h.listening_sockets()]))"
    )
    local = subprocess.run(
        ["ip", "netns", "exec", host.namespace, sys.executable, "-c", script],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    with entered(network.auditor), SSHHost.open("contract", network.options()) as ssh:
        sockets = [[s.proto, s.address, s.port, s.pid, s.process, s.uid]
                   for s in ssh.listening_sockets()]  # fmt: skip
        remote = {p.pid: p for p in ssh.processes()}
    import json

    assert sockets == json.loads(local.stdout)
    assert [s[:5] for s in sockets] == [["tcp", host.address, 22, host.pid, "sshd"]]
    here = {p.pid: p for p in LocalHost().processes()}
    assert remote[host.pid].name == here[host.pid].name == "sshd"
    assert remote[host.pid].user == here[host.pid].user == "root"
    assert " ".join(remote[host.pid].cmdline) == " ".join(here[host.pid].cmdline)
    assert remote[1].name == here[1].name
