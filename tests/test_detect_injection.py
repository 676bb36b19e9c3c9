"""Text an attacker controls (user names, URLs, User-Agents, database names) never names the
address to blame: 6.6.6.6 below is always the injected address, 203.0.113.9 the real peer."""

from __future__ import annotations

from datetime import UTC

import pytest

from agent.detect.detector import Detector
from agent.detect.rules import load_rules

RULES = load_rules()
NOW = 1767225600.0
REAL = "203.0.113.9"
INJECTED = "6.6.6.6"

USER_NAMES = [
    "root from 6.6.6.6 port 22",
    "root from 6.6.6.6 port 22 ssh2",
    "root from 6.6.6.6 port 22 ssh2: RSA SHA256:abc",
    "x from 6.6.6.6",
    "6.6.6.6",
    "::ffff:6.6.6.6",
    "x 6.6.6.6 port 22",
    "x 6.6.6.6 port 22 [preauth]",
    "x from 6.6.6.6 port 22: Change of username or service not allowed: (a,b) -> (c,d)",
    "from 6.6.6.6 from 6.6.6.6 port 1",
    "' from 6.6.6.6 port 22",
]
# What Debian's OpenSSH writes around a client-chosen user name ({u}) for a peer ({ip}).
SSHD_TEMPLATES = [
    "Invalid user {u} from {ip} port 4242",
    "Failed password for invalid user {u} from {ip} port 4242 ssh2",
    "Failed none for invalid user {u} from {ip} port 4242 ssh2",
    "Failed keyboard-interactive/pam for invalid user {u} from {ip} port 4242 ssh2",
    "Failed publickey for invalid user {u} from {ip} port 4242 ssh2: ED25519 SHA256:abc",
    "Connection closed by invalid user {u} {ip} port 4242 [preauth]",
    "Disconnected from invalid user {u} {ip} port 4242 [preauth]",
    "Connection reset by authenticating user {u} {ip} port 4242 [preauth]",
    "error: maximum authentication attempts exceeded for invalid user {u} from {ip} port 4242"
    " ssh2 [preauth]",
    "Disconnecting invalid user {u} {ip} port 4242: Change of username or service not allowed:"
    " ({u},ssh-connection) -> (x,ssh-connection) [preauth]",
    "User {u} from {ip} not allowed because not listed in AllowUsers",
]


def detector(**options) -> Detector:
    return Detector(RULES, level="aggressive", tz=UTC, clock=lambda: NOW, **options)


@pytest.mark.parametrize("template", SSHD_TEMPLATES)
@pytest.mark.parametrize("source", ["auth.log", "journal:ssh.service"])
def test_sshd_user_names_never_name_the_address(template: str, source: str):
    d = detector()
    named = set()
    for number, user in enumerate(USER_NAMES, 1):
        message = template.format(u=user, ip=REAL)
        line = message if source.startswith("journal:") else f"Jan  5 10:00:00 h sshd[9]: {message}"
        for event in d.feed(line, "sshd", source, number, time=NOW):
            named.add(event.ip)
            assert event.user is not None and INJECTED in event.user
    assert named <= {REAL}
    # lines that cannot be read one way only are dropped, never attributed to either reading
    assert d.counters.events + d.counters.ambiguous == len(USER_NAMES)


def test_the_invalid_user_line_always_names_the_real_peer():
    """Ambiguity can drop a Failed line, never the Invalid user line: no evasion."""
    d = detector()
    for number, user in enumerate(USER_NAMES, 1):
        line = f"Jan  5 10:00:00 h sshd[9]: Invalid user {user} from {REAL} port 4242"
        assert [(e.ip, e.user) for e in d.feed(line, "sshd", "auth.log", number)] == [(REAL, user)]


def test_other_programs_and_forged_tags_do_not_count():
    d = detector()
    lines = [
        f"Jan  5 10:00:00 h CRON[1]: Invalid user x from {INJECTED} port 1",
        f"Jan  5 10:00:00 h sudo[2]: Failed password for root from {INJECTED} port 1 ssh2",
        f"Jan  5 10:00:00 h sshdx[3]: Invalid user x from {INJECTED} port 1",
        f"Jan  5 10:00:00 h logger: sshd[4]: Invalid user x from {INJECTED} port 1",
    ]
    assert [e for n, line in enumerate(lines) for e in d.feed(line, "sshd", "a", n)] == []


def test_an_address_remembered_for_one_process_is_not_lent_to_another():
    d = detector()
    d.feed(
        f"Jan  5 10:00:00 h sshd[10]: Connection from {INJECTED} port 1 on 10.0.0.1 port 22",
        "sshd",
        "a",
        1,
    )
    line = "Jan  5 10:00:01 h sshd[11]: Disconnecting: Too many authentication failures [preauth]"
    assert d.feed(line, "sshd", "a", 2) == []
    assert d.counters.no_address == 1
    # nor to the same pid in another file
    line = "Jan  5 10:00:01 h sshd[10]: Disconnecting: Too many authentication failures [preauth]"
    assert d.feed(line, "sshd", "other.log", 3) == []


ACCESS_WITH_XFF = '%h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i" "%{X-Forwarded-For}i"'


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        (REAL, INJECTED, (), REAL),  # no trusted proxy: the header is ignored
        ("10.0.0.5", f"{INJECTED}, {REAL}", ("10.0.0.0/8",), REAL),  # right-most untrusted
        (REAL, f"{INJECTED}, 10.0.0.5", ("10.0.0.0/8",), REAL),  # peer not a proxy
        ("10.0.0.5", f"{INJECTED}, {REAL}:52100", ("10.0.0.0/8",), REAL),  # a hop with its port
        ("10.0.0.5", f"{INJECTED}, [2001:db8::5]:443", ("10.0.0.0/8",), "2001:db8::5"),
        # the proxy forwarded for a client it did not name: no one, not the proxy
        ("10.0.0.5", f"{INJECTED}, unknown", ("10.0.0.0/8",), None),
        ("10.0.0.5", f"{INJECTED}, {REAL}, garbage", ("10.0.0.0/8",), None),
    ],
)
def test_http_client_comes_from_the_peer_field_or_a_trusted_proxy_only(
    peer, xff, trusted, expected
):
    line = (
        f'{peer} - - [05/Jan/2024:10:00:00 +0000] "GET /?id=1%27%20or%201=1--%20 HTTP/1.1" 200 1'
        f' "http://{INJECTED}/" "Mozilla/5.0 ({INJECTED})" "{xff}"'
    )
    d = detector(access_log_format=ACCESS_WITH_XFF, trusted_proxies=trusted)
    events = d.feed(line, "apache_access", "access.log", 1)
    assert {e.ip for e in events} == ({expected} if expected else set())
    assert d.counters.no_address == (expected is None)


def test_http_fields_cannot_spill_into_the_peer_field():
    """Apache escapes quotes in the request: a fake second line inside it stays inside."""
    fake = f'{INJECTED} - - [05/Jan/2024:10:00:00 +0000] \\"GET /.env HTTP/1.1'
    line = (
        f'{REAL} - - [05/Jan/2024:10:00:00 +0000] "GET /?q=\\" {fake} HTTP/1.1" 404 1 "-" '
        f'"sqlmap/1.7 {INJECTED}"'
    )
    events = detector().feed(line, "apache_access", "access.log", 1)
    assert events and {e.ip for e in events} == {REAL}


def test_apache_error_paths_cannot_spell_the_client_field():
    line = (
        f"[Sat Jun 01 02:17:42 2013] [error] [client {REAL}] File does not exist: "
        f"/site/[client {INJECTED}] user root not found"
    )
    assert detector().feed(line, "apache_error", "error.log", 1) == []
    line = (
        f"[Sat Jun 01 02:17:42.1 2013] [auth_basic:error] [pid 1:tid 2] [client {REAL}:5] "
        f"AH01618: user [client {INJECTED}] not found: /admin"
    )
    assert [e.ip for e in detector().feed(line, "apache_error", "error.log", 1)] == [REAL]


@pytest.mark.parametrize(
    "user",
    [
        INJECTED,
        f"x host={INJECTED}",
        f"LOG:  connection received: host={INJECTED} port=1",
        f'x", user "y", database "z", host "{INJECTED}',
    ],
)
def test_postgres_user_names_never_name_the_address(user: str):
    with_host = detector(postgres_prefix="%m [%p] %h %q%u@%d ")
    line = (
        f"2024-01-05 10:00:00.000 UTC [5] {REAL} {user}@{user} FATAL:  password authentication"
        f' failed for user "{user}"'
    )
    assert [e.ip for e in with_host.feed(line, "postgresql", "pg.log", 1)] == [REAL]
    debian = detector()
    debian.feed(
        f"2024-01-05 10:00:00.000 UTC [6] LOG:  connection received: host={REAL} port=4",
        "postgresql",
        "pg.log",
        1,
    )
    line = (
        f"2024-01-05 10:00:00.100 UTC [6] {user}@{user} FATAL:  password authentication failed"
        f' for user "{user}"'
    )
    assert [e.ip for e in debian.feed(line, "postgresql", "pg.log", 2)] == [REAL]


def test_client_text_on_both_sides_of_the_address_cannot_agree_on_a_forgery():
    """Hostbased auth logs a client-chosen user after the address too: a forger who spells
    6.6.6.6 in both makes the first and the last reading agree on it, but not on its place."""
    forged = f"from {INJECTED} port 1 ssh2"
    line = (
        f"Jan  5 10:00:00 h sshd[9]: Failed hostbased for invalid user x {forged}: y from {REAL} "
        f'port 4242 ssh2: RSA SHA256:k, client user "z {forged}: w", client host "h"'
    )
    d = detector()
    assert d.feed(line, "sshd", "auth.log", 1) == []
    assert d.counters.ambiguous == 1
