"""Window counting: thresholds, windows, ban time, allowlists and bounded memory; evidence
weighed by confidence and added up per address across jails in the long window."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from agent.bans.jails import (
    EVIDENCE_CAP,
    Decision,
    Evidence,
    Jail,
    JailConfig,
    Jails,
    load_jails,
    with_overrides,
)
from agent.detect.events import Event
from agent.detect.rules import load_rules
from checks.yamlsource import InputError

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


# --- per-address evidence: confidence, the long window, several jails and logs ---------

ATTACKS = Jail("web-attacks", ("http-*",), maxretry=3, findtime=600.0, bantime=3600.0)
LOGINS = Jail("sshd", ("sshd-*",), maxretry=5, findtime=600.0, bantime=3600.0,
              weights={"weak": 0.2})  # fmt: skip
DAY = Evidence(findtime=86400.0, weights={"certain": 1.0, "likely": 0.5, "weak": 0.0})


def web(ip: str, at: float, rule: str, confidence: str) -> Event:
    return Event(at, rule, "apache_access", ip, None, "access.log", int(at), "line", confidence)


def test_one_certain_injection_bans_at_once_and_names_itself():
    clock = Clock()
    jails = Jails([ATTACKS, LOGINS], clock=clock, evidence=DAY)
    [decision] = replay(jails, clock, [web("203.0.113.5", 1000, "http-sqli", "certain")])
    assert (decision.ip, decision.jail, decision.count, decision.until) == (
        "203.0.113.5", "web-attacks", 1, 4600.0)  # fmt: skip
    assert decision.events == ((1000.0, "http-sqli"),)
    assert decision.last_line == "access.log:1000: line"
    assert decision.why(ATTACKS) == "http-sqli: one event of jail web-attacks is enough to ban"


def test_a_jail_can_make_certain_events_count_like_others():
    clock = Clock()
    patient = replace(ATTACKS, weights={"certain": 0.5})
    jails = Jails([patient], clock=clock, evidence=DAY)
    once = replay(jails, clock, [web("203.0.113.5", 1000, "http-sqli", "certain")])
    assert once == []
    twice = replay(jails, clock, [web("203.0.113.5", 5000, "http-sqli", "certain")])
    assert [(d.count, d.window) for d in twice] == [(2, 86400.0)]


def test_a_weak_signal_alone_bans_nobody_until_the_long_window_fills():
    """Five failed logins an hour apart: never a burst, but 5 x 0.2 within a day."""
    clock = Clock()
    jails = Jails([ATTACKS, LOGINS], clock=clock, evidence=DAY)
    slow = [event("203.0.113.5", 1000 + 3600 * i) for i in range(5)]
    assert replay(jails, clock, slow[:1]) == []
    assert replay(jails, clock, slow[1:4]) == []
    [decision] = replay(jails, clock, slow[4:])
    assert (decision.jail, decision.count, decision.time, decision.window) == (
        "sshd", 5, 1000 + 4 * 3600.0, 86400.0)  # fmt: skip
    assert decision.why(LOGINS) == (
        "5 events weighing 1.00 within 1d (sshd-failed-auth; last: sshd-failed-auth)"
    )


def test_the_long_window_forgets_what_is_older_than_it():
    clock = Clock()
    jails = Jails([LOGINS], clock=clock, evidence=DAY)
    spread = [event("203.0.113.5", 1000 + 30000 * i) for i in range(8)]  # 4 within a day
    assert replay(jails, clock, spread) == []


def test_one_weak_likely_request_bans_nobody_and_a_second_one_does():
    clock = Clock()
    jails = Jails([ATTACKS], clock=clock, evidence=DAY)
    first = [web("203.0.113.5", 1000, "http-traversal", "likely")]
    assert replay(jails, clock, first) == []
    later = [web("203.0.113.5", 1000 + 5 * 3600, "http-cmdi", "likely")]
    [decision] = replay(jails, clock, later)
    assert (decision.count, decision.events) == (
        2, ((1000.0, "http-traversal"), (19000.0, "http-cmdi")))  # fmt: skip


def test_evidence_of_several_families_and_logs_adds_up_to_one_decision():
    """An address probes (a likely sensitive-file request), then guesses passwords: one
    attacker. Two other addresses do one of each and are left alone."""
    clock = Clock()
    probes = Jail("web-scanners", ("http-sensitive-*",), 3, 600.0, 3600.0)
    jails = Jails([ATTACKS, LOGINS, probes], clock=clock, evidence=DAY)
    mixed = [
        web("203.0.113.5", 1000, "http-sensitive-file", "likely"),  # 0.5
        web("198.51.100.7", 1100, "http-sensitive-file", "likely"),  # 0.5, alone
        event("203.0.113.5", 2000),  # 0.2
        event("192.0.2.9", 2100),  # 0.2, alone
        event("203.0.113.5", 9000),  # 0.2
        event("203.0.113.5", 20000),  # 0.2: 1.1
        event("203.0.113.5", 20001),  # banned: not counted
    ]
    [decision] = replay(jails, clock, mixed)
    assert (decision.ip, decision.jail, decision.count, decision.time) == (
        "203.0.113.5", "sshd", 4, 20000.0)  # fmt: skip
    rules = [rule for _, rule in decision.events]
    assert rules == ["http-sensitive-file"] + 3 * ["sshd-failed-auth"]
    assert decision.why(LOGINS).startswith(
        "4 events weighing 1.10 within 1d (http-sensitive-file, sshd-failed-auth;"
    )


def test_a_burst_still_bans_and_empties_the_long_window():
    clock = Clock()
    jails = Jails([LOGINS], clock=clock, evidence=DAY)
    burst = [event("203.0.113.5", 1000 + i) for i in range(5)]
    [decision] = replay(jails, clock, burst)
    assert (decision.count, decision.window) == (5, None)  # the jail's own window
    # after the ban: the long window starts from nothing (4 more within the day: no ban)
    after = [event("203.0.113.5", 5000 + 3600 * i) for i in range(4)]
    assert replay(jails, clock, after) == []


def test_a_decision_names_the_first_and_latest_counted_events():
    clock = Clock()
    many = Jail("sshd", ("sshd-*",), 1000, 600.0, 3600.0, weights={"weak": 0.05})
    jails = Jails([many], clock=clock, evidence=DAY)
    [decision] = replay(jails, clock, [event("203.0.113.5", 1000 + 60 * i) for i in range(20)])
    assert decision.count == 20 and len(decision.events) == EVIDENCE_CAP
    assert [time for time, _ in decision.events] == [1000.0] + [
        1000.0 + 60 * i for i in range(20 - EVIDENCE_CAP + 1, 20)]  # fmt: skip


def test_a_flood_keeps_the_long_window_bounded_too():
    clock = Clock()
    jails = Jails([LOGINS], clock=clock, evidence=DAY, max_tracked=1000)
    flood = [event(str(ipaddress.ip_address(0x0A000000 + i)), 1000 + i / 1e4) for i in range(20000)]
    assert replay(jails, clock, flood) == []
    # 1000 addresses held, with their windows; the rest dropped, oldest first, and counted
    assert (jails.tracked, jails.evicted) == (1000, 19000)
    slow = [event("203.0.113.5", 2000 + 3600 * i) for i in range(5)]
    assert [d.ip for d in replay(jails, clock, slow)] == ["203.0.113.5"]


def test_backlog_older_than_the_long_window_is_not_counted():
    clock = Clock(now=1000.0 + 2 * 86400)
    jails = Jails([LOGINS], clock=clock, evidence=DAY)
    assert [jails.observe(event("203.0.113.5", 1000 + 3600 * i)) for i in range(5)] == [None] * 5
    assert jails.tracked == 0


def test_an_unknown_confidence_is_a_bug_not_a_weight():
    jails = Jails([LOGINS], clock=Clock(), evidence=DAY)
    with pytest.raises(ValueError, match="unknown confidence 'sure'"):
        jails.count("sshd-failed-auth", "203.0.113.5", 1000.0, 1000.0, "sure")


def test_weights_and_the_long_window_are_read_from_the_jails_file(tmp_path):
    path = tmp_path / "jails.yaml"
    path.write_text(
        "evidence: {findtime: 12h, weights: {weak: 0.25}}\n"
        "jails:\n"
        "  - {name: a, rules: [sshd-*], maxretry: 3, findtime: 1m, bantime: 1h,\n"
        "     weights: {likely: 1}}\n"
    )
    config = load_jails(path)
    assert config.evidence == Evidence(43200.0, {"certain": 1.0, "likely": 0.5, "weak": 0.25})
    assert config.jails[0].weights == {"likely": 1.0}
    assert config.jails[0].weight("likely", config.evidence.weights) == 1.0
    assert config.jails[0].weight("weak", config.evidence.weights) == 0.25


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("evidence: 1d\njails: []\n", "jails.yaml:1: evidence: a mapping of findtime, weights"),
        (
            "evidence: {window: 1d}\njails: []\n",
            "jails.yaml:1: evidence.window: unknown key (findtime, weights)",
        ),
        (
            "jails:\n  - {name: a, rules: [x], maxretry: 1, findtime: 1m, bantime: 1h,\n"
            "     weights: {sure: 1}}\n",
            "jails.yaml:3: jails[0](a).weights.sure: unknown confidence (certain, likely, weak)",
        ),
        (
            "jails:\n  - {name: a, rules: [x], maxretry: 1, findtime: 1m, bantime: 1h,\n"
            "     weights: {weak: 2}}\n",
            "jails.yaml:3: jails[0](a).weights.weak: a number from 0 (counts nothing) to 1"
            " (bans at once)",
        ),
    ],
)
def test_a_bad_weight_or_long_window_names_file_line_and_field(tmp_path, text, problem):
    path = tmp_path / "jails.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_jails(path)
    assert [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems] == [problem]


def test_agent_config_weights_keep_the_jails_others():
    config = JailConfig((ATTACKS, LOGINS), (), DAY)
    changed = with_overrides(config, {"sshd": {"weights": {"likely": 0.3}}})
    assert changed.jails[1].weights == {"weak": 0.2, "likely": 0.3}
    assert changed.evidence == DAY
