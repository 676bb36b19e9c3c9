"""The commands an audit announces run in one exec on a real remote host (a namespace sshd),
and each answers exactly as it would have run alone; what the batch cannot vouch for (a
command that timed out, one asked with less time) runs alone when asked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from namespaces import entered
from remote_hosts import Lan, lan_of_one

from checks.hosts import CommandNotFound, HostError, PlannedCommand
from checks.ssh_host import SSHHost

#: Words a shell would read as syntax, split or expand: each must reach the program as is.
HOSTILE = ["a b", "'single'", '"double"', "$(id -u)", "`id -u`", "x;y", "a|b", "line\nbreak",
           "", "-n", "*", "\\", "$HOME", "ünïcode", "--"]  # fmt: skip


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[Lan]:
    with lan_of_one(tmp_path_factory.mktemp("batch"), "batched") as net:
        yield net


@pytest.fixture
def execs(monkeypatch) -> list[str]:
    """Every exec channel opened on any SSHHost, by its command line."""
    opened: list[str] = []
    real = SSHHost._exec

    def counted(host, command, *rest):
        opened.append(command)
        return real(host, command, *rest)

    monkeypatch.setattr(SSHHost, "_exec", counted)
    return opened


def test_announced_commands_answer_from_one_exec_as_each_would_alone(network, execs):
    commands = [
        PlannedCommand(("printf", "%s\\0", *HOSTILE)),
        PlannedCommand(("sh", "-c", "echo out; echo err >&2; exit 3")),
        PlannedCommand(("/bin/echo", "by", "path")),
        PlannedCommand(("id", "-u")),
        PlannedCommand(("cat", "/etc/hostname", "/nonexistent")),
    ]
    with entered(network.auditor):
        with SSHHost.open("batched", network.options()) as alone:
            expected = [alone.run(command.argv) for command in commands]
        with SSHHost.open("batched", network.options()) as batched:
            before = len(execs)
            batched.prefetch(commands)
            assert len(execs) == before + 1
            answers = [batched.run(command.argv) for command in commands]
            assert len(execs) == before + 1  # every answer came from the batch
    assert answers == expected
    assert expected[0].stdout == "".join(f"{word}\0" for word in HOSTILE)
    assert (expected[1].exit_code, expected[1].stdout, expected[1].stderr) == (3, "out\n", "err\n")
    assert expected[4].exit_code == 1 and "/nonexistent" in expected[4].stderr


def test_what_the_batch_cannot_vouch_for_runs_alone(network, execs):
    with entered(network.auditor), SSHHost.open("batched", network.options()) as host:
        host.prefetch([
            PlannedCommand(("no-such-program-lappguard",)),
            PlannedCommand(("/nonexistent/program",)),
            PlannedCommand(("sleep", "5"), timeout=0.5),
            PlannedCommand(("true",), timeout=15),
        ])  # fmt: skip
        after_batch = len(execs)
        for missing in (["no-such-program-lappguard"], ["/nonexistent/program"]):
            with pytest.raises(CommandNotFound, match="command not found"):
                host.run(missing)
        assert len(execs) == after_batch  # known missing: nothing asked again
        # timed out in the batch: how long it took is unknown, so it runs alone
        with pytest.raises(HostError, match=r"timed out after 0\.5s"):
            host.run(["sleep", "5"], timeout=0.5)
        assert len(execs) == after_batch + 1
        # the batch gave it 15 seconds: an answer for 1 second must come from a run of its own
        assert host.run(["true"], timeout=1).exit_code == 0
        assert len(execs) == after_batch + 2
        assert host.run(["true"], timeout=15).exit_code == 0
        assert len(execs) == after_batch + 2


def test_with_sudo_the_batch_runs_as_root(network, execs):
    with entered(network.auditor):
        with SSHHost.open("batched", network.options(user="auditor"), sudo=True) as root:
            root.prefetch([PlannedCommand(("id", "-u"))])
            batched = len(execs)
            assert root.run(["id", "-u"]).stdout == "0\n"
            assert len(execs) == batched
        with SSHHost.open("batched", network.options(user="auditor")) as plain:
            plain.prefetch([PlannedCommand(("id", "-u"))])
            assert plain.run(["id", "-u"]).stdout == "4242\n"
