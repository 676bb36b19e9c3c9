"""Window counting: thresholds, windows, ban time, allowlists and bounded memory."""

from __future__ import annotations

import ipaddress

from agent.bans.jails import Decision, Jail, Jails, load_jails
from agent.detect.events import Event
from agent.detect.rules import load_rules

SSH = Jail("sshd", ("sshd-*",), maxretry=3, findtime=60.0, bantime=600.0)
WEB = Jail("web", ("http-404",), maxretry=2, findtime=10.0, bantime=60.0)


class Clock:
    """The time the jails believe it is; tests move it by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(ip: str, at: float, rule: str = "sshd-failed-auth") -> Event:
    return Event(at, rule, "sshd", ip, None, "auth.log", 1, "line")


def replay(jails: Jails, clock: Clock, events: list[Event]) -> list[Decision]:
    decisions = []
    for item in events:
        clock.now = item.time
        decision = jails.observe(item)
        if decision is not None:
            decisions.append(decision)
    return decisions


def test_maxretry_events_within_findtime_ban_once():
    clock = Clock()
    jails = Jails([SSH], clock=clock)
    decisions = replay(jails, clock, [event("203.0.113.5", 1000 + i) for i in range(5)])
    assert decisions == [Decision("203.0.113.5", "sshd", 1002.0, 1602.0, 3, "sshd-failed-auth")]


def test_events_spread_wider_than_findtime_never_ban():
    clock = Clock()
    jails = Jails([SSH], clock=clock)
    assert replay(jails, clock, [event("203.0.113.5", 1000 + 31 * i) for i in range(10)]) == []


def test_after_the_ban_expires_counting_starts_again():
    clock = Clock()
    jails = Jails([SSH], clock=clock)
    times = [1000, 1001, 1002, 1100, 1603, 1604, 1605]
    decisions = replay(jails, clock, [event("203.0.113.5", t) for t in times])
    assert [(d.time, d.until) for d in decisions] == [(1002, 1602), (1605, 2205)]


def test_addresses_and_jails_are_counted_separately():
    clock = Clock()
    jails = Jails([SSH, WEB], clock=clock)
    events = [
        event("203.0.113.5", 1000),
        event("203.0.113.6", 1001),
        event("203.0.113.5", 1002, "http-404"),
        event("2001:db8::5", 1003),
        event("203.0.113.5", 1004, "http-404"),
        event("203.0.113.5", 1005),
        event("203.0.113.5", 1006, "pg-password-failed"),  # in no jail
        event("203.0.113.5", 1007),
    ]
    assert [(d.ip, d.jail, d.time) for d in replay(jails, clock, events)] == [
        ("203.0.113.5", "web", 1004),
        ("203.0.113.5", "sshd", 1007),
    ]


def test_loopback_and_allowlisted_networks_are_never_banned():
    clock = Clock()
    office = Jail("sshd", ("sshd-*",), 1, 60.0, 60.0, (ipaddress.ip_network("198.51.100.0/24"),))
    jails = Jails([office], clock=clock, allowlist=[ipaddress.ip_network("2001:db8::/32")])
    addresses = ["127.0.0.1", "127.9.9.9", "::1", "2001:db8::7", "198.51.100.20", "203.0.113.5"]
    decisions = replay(jails, clock, [event(ip, 1000) for ip in addresses])
    assert [d.ip for d in decisions] == ["203.0.113.5"]


def test_backlog_older_than_findtime_is_not_counted():
    """Live, the clock is real time: lines replayed after a restart do not ban anyone."""
    clock = Clock(now=5000.0)
    jails = Jails([SSH], clock=clock)
    assert [jails.observe(event("203.0.113.5", 1000 + i)) for i in range(5)] == [None] * 5
    assert jails.tracked == 0


def test_a_flood_of_distinct_addresses_keeps_memory_bounded():
    clock = Clock()
    jails = Jails([SSH], clock=clock, max_tracked=1000)
    flood = [event(str(ipaddress.ip_address(0x0A000000 + i)), 1000 + i / 1e4) for i in range(20000)]
    assert replay(jails, clock, flood) == []
    assert (jails.tracked, jails.evicted) == (1000, 19000)
    # an attacker inside the flood is still caught when its attempts are close together
    attacker = [event("203.0.113.5", 1003 + i / 10) for i in range(3)]
    assert [d.ip for d in replay(jails, clock, attacker)] == ["203.0.113.5"]


def test_default_jails_file_loads_with_the_shipped_rules():
    rules = load_rules()
    config = load_jails(rule_ids=[rule.id for rule in rules])
    assert [(j.name, j.maxretry, j.findtime, j.bantime) for j in config.jails] == [
        ("sshd", 5, 600.0, 3600.0),
        ("postgresql", 5, 600.0, 3600.0),
        ("web-auth", 5, 600.0, 3600.0),
        ("web-attacks", 3, 600.0, 3600.0),
        ("web-scanners", 3, 600.0, 3600.0),
        ("web-probing", 20, 60.0, 3600.0),
    ]
    jails = Jails(config.jails, clock=Clock())
    assert jails.jail_for("php-cms-login-failed").name == "web-auth"
    assert jails.jail_for("sshd-pam-auth-failure") is None


def test_allowlist_membership_agrees_with_ipaddress():
    """Dotted quads are tested with integer masks (ipaddress is slow): same answers."""
    import random

    from agent.bans.jails import LOOPBACK, _listed

    networks = (
        *LOOPBACK,
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("192.0.2.128/25"),
        ipaddress.ip_network("203.0.113.7/32"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    rng = random.Random(9)
    addresses = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(20000)]
    addresses += ["127.0.0.1", "10.1.255.255", "10.2.0.0", "192.0.2.128", "192.0.2.127"]
    addresses += ["203.0.113.7", "203.0.113.8", "::1", "2001:db8::5", "2001:db9::1", "0.0.0.0"]
    for subset in (networks[:2], networks[2:5], networks):
        for ip in addresses:
            address = ipaddress.ip_address(ip)
            expected = any(address.version == n.version and address in n for n in subset)
            assert _listed(ip, subset) == expected, (ip, subset)
