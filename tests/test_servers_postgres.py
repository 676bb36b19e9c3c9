"""What LocalHost reports for a real PostgreSQL's listening sockets, by listen_addresses.

The ``listening`` check type builds on exactly these facts: '*' must show up as the
wildcard addresses, 'localhost' as loopback only, both owned by the postmaster.
"""

from __future__ import annotations

import pwd
import socket

import pytest
from servers import ServersOnlyHost, run_postgres

from checks.engine import run_check
from checks.hosts import CachedHost, ListeningSocket, LocalHost
from checks.policy import load_policy
from checks.types.base import CheckContext
from policies import builtin_policy


def resolved(name: str) -> set[str]:
    """What PostgreSQL binds for a host name: every address the resolver returns. For
    'localhost' that is 127.0.0.1, plus ::1 only where /etc/hosts lists it (not everywhere)."""
    found = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return {info[4][0] for info in found}


@pytest.mark.parametrize(
    ("listen_addresses", "addresses"),
    [
        ("*", {"0.0.0.0", "::"}),
        ("localhost", resolved("localhost")),
        ("127.0.0.1", {"127.0.0.1"}),
        ("127.0.0.1,::1", {"127.0.0.1", "::1"}),
    ],
)
def test_listening_sockets_follow_listen_addresses(
    tmp_path, listen_addresses: str, addresses: set[str]
) -> None:
    uid = pwd.getpwnam("postgres").pw_uid
    with run_postgres(tmp_path, listen_addresses) as pg:
        found = {s for s in LocalHost().listening_sockets() if s.port == pg.port}
    assert found == {ListeningSocket("tcp", a, pg.port, pg.pid, "postgres", uid) for a in addresses}


def test_postgres_is_stopped_and_cleaned_up(tmp_path) -> None:
    with run_postgres(tmp_path, "localhost") as pg:
        assert (pg.workdir / "data" / "PG_VERSION").exists()
    assert not pg.workdir.exists()
    assert not any(s.port == pg.port for s in LocalHost().listening_sockets())
    assert (tmp_path / f"postgresql-{pg.port}.log").exists()


@pytest.mark.parametrize(("listen_addresses", "status"), [("*", "fail"), ("localhost", "pass")])
def test_baseline_socket_check_tells_them_apart(tmp_path, listen_addresses: str, status: str):
    """LAPP-PG-010, as shipped, on a real cluster: '*' fails, 'localhost' passes."""
    policy = load_policy(builtin_policy("lapp-baseline"))
    (check,) = [c for c in policy.checks if c.id == "LAPP-PG-010"]
    with run_postgres(tmp_path, listen_addresses) as pg:
        result = run_check(check, CheckContext(CachedHost(ServersOnlyHost(pg)), policy.values))
    assert result.status.value == status
    if status == "fail":
        assert {e.split()[1] for e in result.evidence} == {f"0.0.0.0:{pg.port}", f"[::]:{pg.port}"}
