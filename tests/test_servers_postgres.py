"""What LocalHost reports for a real PostgreSQL's listening sockets, by listen_addresses.

The ``listening`` check type builds on exactly these facts: '*' must show up as the
wildcard addresses, 'localhost' as loopback only, both owned by the postmaster.
"""

from __future__ import annotations

import socket

import pytest
from servers import run_postgres

from checks.hosts import ListeningSocket, LocalHost


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
    with run_postgres(tmp_path, listen_addresses) as pg:
        found = {s for s in LocalHost().listening_sockets() if s.port == pg.port}
    assert found == {ListeningSocket("tcp", a, pg.port, pg.pid, "postgres") for a in addresses}


def test_postgres_is_stopped_and_cleaned_up(tmp_path) -> None:
    with run_postgres(tmp_path, "localhost") as pg:
        assert (pg.workdir / "data" / "PG_VERSION").exists()
    assert not pg.workdir.exists()
    assert not any(s.port == pg.port for s in LocalHost().listening_sockets())
    assert (tmp_path / f"postgresql-{pg.port}.log").exists()
