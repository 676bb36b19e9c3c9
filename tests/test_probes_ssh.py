"""The SSH auth-method probe and the ssh_probe check against real OpenSSH servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import paramiko
import pytest
from conftest import free_port
from servers import ServersOnlyHost, new_audit, run_canned_server, run_check, run_sshd

from checks.probes.ssh import PROBE_USER, probe_ssh_auth
from checks.probes.wire import ProbeError, Target
from checks.result import Status, Verdict
from checks.types.probes import SSHProbeCheck

KEYS_ONLY = "PasswordAuthentication no\nKbdInteractiveAuthentication no"
# What Debian 12's sshd offers with passwords on (and UsePAM no, as in the harness).
WITH_PASSWORD = "publickey, password, keyboard-interactive"


@pytest.mark.parametrize(
    ("config", "status", "evidence"),
    [
        (
            "PasswordAuthentication yes",
            Status.FAIL,
            f"offers {WITH_PASSWORD}; not expected: password, keyboard-interactive",
        ),
        (KEYS_ONLY, Status.PASS, "offers publickey"),
        (
            "PasswordAuthentication no\nKbdInteractiveAuthentication yes\nUsePAM yes",
            Status.FAIL,
            "offers publickey, keyboard-interactive; not expected: keyboard-interactive",
        ),
    ],
)
def test_explicit_target(tmp_path, config: str, status: Status, evidence: str) -> None:
    with run_sshd(tmp_path, config) as sshd:
        verdict = run_check(SSHProbeCheck, {"targets": [sshd.target]})
    assert verdict == Verdict(status, (f"{sshd.target} {evidence}",))


@pytest.mark.parametrize(
    ("config", "status", "evidence"),
    [
        ("PasswordAuthentication yes", Status.FAIL, f"offers {WITH_PASSWORD}; not expected: "),
        (KEYS_ONLY, Status.PASS, "offers publickey"),
    ],
)
def test_discovers_the_sshd_socket(tmp_path, config: str, status: Status, evidence: str) -> None:
    with run_sshd(tmp_path, config) as sshd:
        verdict = run_check(SSHProbeCheck, {}, new_audit(ServersOnlyHost(sshd)))
    assert verdict.status is status
    assert len(verdict.evidence) == 1
    assert verdict.evidence[0].startswith(f"127.0.0.1:{sshd.port} {evidence}")


def test_discovers_every_sshd_port_including_ipv6(tmp_path) -> None:
    with (
        run_sshd(tmp_path, KEYS_ONLY) as keys_only,
        run_sshd(tmp_path, "PasswordAuthentication yes", listen="::1") as with_password,
    ):
        verdict = run_check(SSHProbeCheck, {}, new_audit(ServersOnlyHost(keys_only, with_password)))
    lines = {
        keys_only.port: f"127.0.0.1:{keys_only.port} offers publickey",
        with_password.port: f"[::1]:{with_password.port} offers {WITH_PASSWORD}; "
        "not expected: password, keyboard-interactive",
    }
    assert verdict == Verdict(Status.FAIL, tuple(lines[port] for port in sorted(lines)))


def test_expected_methods_is_a_parameter(tmp_path) -> None:
    with run_sshd(tmp_path, "PasswordAuthentication yes") as sshd:
        params = {"targets": [sshd.target], "expected": ["publickey", "password"]}
        verdict = run_check(SSHProbeCheck, params)
    assert verdict == Verdict(
        Status.FAIL, (f"{sshd.target} offers {WITH_PASSWORD}; not expected: keyboard-interactive",)
    )


def test_probe_sees_match_blocks_that_a_global_reading_misses(tmp_path) -> None:
    """Globally keys only, but a Match for our own address turns passwords back on."""
    config = f"{KEYS_ONLY}\nMatch Address 127.0.0.1\n    PasswordAuthentication yes"
    with run_sshd(tmp_path, config) as sshd:
        probe = probe_ssh_auth(Target("127.0.0.1", sshd.port))
    assert probe.methods == ("publickey", "password")
    assert probe.banner.startswith("SSH-2.0-OpenSSH_")


def test_no_sshd_listening_skips() -> None:
    verdict = run_check(SSHProbeCheck, {}, new_audit(ServersOnlyHost()))
    assert verdict == Verdict(Status.SKIP, (), "no sshd process is listening on a TCP port")


def test_port_that_is_not_ssh_is_an_error() -> None:
    with run_canned_server(lambda _: b"HTTP/1.1 400 Bad Request\r\n\r\n") as server:
        verdict = run_check(SSHProbeCheck, {"targets": [server.target]})
    assert (verdict.status, verdict.reason) == (Status.ERROR, "not every port could be probed")
    assert len(verdict.evidence) == 1
    # paramiko appends the socket error, which depends on timing (reset or orderly close)
    assert verdict.evidence[0].startswith(f"{server.target}: Error reading SSH protocol banner")


def test_unreachable_port_is_an_error() -> None:
    port = free_port()
    with pytest.raises(ProbeError, match=f"127.0.0.1:{port}: Connection refused"):
        probe_ssh_auth(Target("127.0.0.1", port))


def test_probe_writes_no_known_hosts(tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    with run_sshd(tmp_path, KEYS_ONLY) as sshd:
        assert probe_ssh_auth(Target("127.0.0.1", sshd.port)).methods == ("publickey",)
    assert not home.exists()


class _LetsAnyoneIn(paramiko.ServerInterface):
    """The worst SSH server: ``none`` authentication succeeds (OpenSSH cannot be configured
    to do this for a user that does not exist, so paramiko's server plays it)."""

    def get_allowed_auths(self, username: str) -> str:
        return "none"

    def check_auth_none(self, username: str) -> int:
        return paramiko.AUTH_SUCCESSFUL if username == PROBE_USER else paramiko.AUTH_FAILED


@contextmanager
def run_open_ssh_server() -> Iterator[int]:
    host_key = paramiko.ECDSAKey.generate()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        conn, _ = listener.accept()
        transport = paramiko.Transport(conn)
        transport.add_server_key(host_key)
        transports.append(transport)
        transport.start_server(server=_LetsAnyoneIn())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(10)
        for transport in transports:
            transport.close()
        listener.close()


def test_server_letting_anyone_in_fails() -> None:
    with run_open_ssh_server() as port:
        verdict = run_check(SSHProbeCheck, {"targets": [f"127.0.0.1:{port}"]})
    assert verdict == Verdict(
        Status.FAIL, (f"127.0.0.1:{port} let {PROBE_USER} in without authentication",)
    )
