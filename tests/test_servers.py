"""The real-server harness itself: daemons stop when the block ends, and a daemon that cannot
start fails the test with its own error message instead of a timeout."""

from __future__ import annotations

import psutil
import pytest
from servers import run_apache_ssl, run_sshd

from checks.hosts import LocalHost


def listening_ports() -> set[int]:
    return {s.port for s in LocalHost().listening_sockets() if s.proto == "tcp"}


@pytest.mark.parametrize("start", [run_sshd, run_apache_ssl])
def test_daemon_is_gone_after_the_block(tmp_path, start) -> None:
    with start(tmp_path) as server:
        pids = server.pids()
        assert server.port in listening_ports()
    assert server.port not in listening_ports()
    assert not any(psutil.pid_exists(pid) for pid in pids)


def test_sshd_config_error_is_reported(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="Bogus"), run_sshd(tmp_path, "Bogus yes"):
        pass


def test_apache_config_error_is_reported(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="SSLProtocol"), run_apache_ssl(tmp_path, "+NoSuchTLS"):
        pass
