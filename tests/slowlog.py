"""Labelled low-and-slow access logs: attackers that mix a few attack requests into their
own ordinary browsing, minutes apart, among real benign visitors; and what the shipped
jails make of them per address. Tests assert on it and bench/per_address.py prints it.

Benign traffic is a real access log (the elastic examples log of semicomplete.com, see
tests/fixtures/web/SOURCE.txt): each of its addresses keeps its own requests and their
times. An attacker borrows the browsing of one of those visitors (its pages, its
User-Agent, its pace), under an address of its own, and sends 2 to 6 attack requests
during it, 2 to 30 minutes apart: requests of the attack corpora of tests/webcorpus.py
(payload lists in a query parameter, OWASP CRS regression requests), mostly of one
family, sometimes of another.
"""

from __future__ import annotations

import ipaddress
import random
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import webcorpus

from agent.bans.jails import load_jails
from agent.detect.rules import load_rules
from agent.scan import ScanOptions, scan

#: The attack corpora an attacker draws from (tests/webcorpus.py).
CORPORA = ("sqli", "xss", "traversal", "lfi", "cmdi", "crs")
_STAMP = re.compile(r"\[(\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\]")
_LOG_TIME = "%d/%b/%Y:%H:%M:%S %z"


@dataclass
class SlowLog:
    """A generated log: its lines in time order and who is who."""

    lines: list[str]
    attackers: set[str]
    benign: set[str]
    #: per attacker, the times of its attack requests, in order
    attacks: dict[str, list[float]] = field(default_factory=dict)
    #: per address, the times of all its requests, in order
    requests: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class AddressScore:
    """What the jails did to each kind of address."""

    attackers: int
    attackers_banned: int
    benign: int
    benign_banned: int
    #: per banned attacker: its attack requests (and all its requests) served up to and
    #: including the one that got it banned; per attacker never banned: all of them
    attacks_served: list[int]
    requests_served: list[int]
    banned_benign: list[str]

    @property
    def attacker_rate(self) -> float:
        return self.attackers_banned / self.attackers

    @property
    def benign_rate(self) -> float:
        return self.benign_banned / self.benign

    def served(self, what: str, quantile: float) -> float:
        """``quantile`` (0.5: the median) of the attack or all requests served."""
        values = sorted(self.attacks_served if what == "attacks" else self.requests_served)
        if quantile == 0.5:
            return statistics.median(values)
        return values[min(len(values) - 1, round(quantile * (len(values) - 1)))]


def generate(benign_lines: Sequence[str], attackers: int, seed: int = 13) -> SlowLog:
    """A log of the benign lines and ``attackers`` low-and-slow attackers (see the module
    docstring); the same seed gives the same log."""
    rng = random.Random(seed)
    visits: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for line in benign_lines:
        visits[line.split(" ", 1)[0]].append((_time_of(line), line))
    corpora = _attack_requests()
    start = min(time for visit in visits.values() for time, _ in visit)
    end = max(time for visit in visits.values() for time, _ in visit)
    # borrowed browsing: visitors with a few requests at least, as an attacker browses
    models = [visit for visit in visits.values() if len(visit) >= 3]
    out: list[tuple[float, str]] = [entry for visit in visits.values() for entry in visit]
    log = SlowLog([], set(), set(visits))
    for number in range(attackers):
        ip = _attacker_address(rng, number)
        model = rng.choice(models)
        offset = rng.randint(int(start), int(end)) - model[0][0]
        browsing = [(time + offset, _readdress(line, ip, time + offset)) for time, line in model]
        first = browsing[0][0] + rng.randint(0, 600)
        primary = rng.choice(CORPORA)
        attacks = []
        when = first
        for _ in range(rng.randint(2, 6)):
            corpus = primary if rng.random() < 0.7 else rng.choice(CORPORA)
            request = rng.choice(corpora[corpus])
            attacks.append((when, _readdress(request, ip, when)))
            when += rng.randint(120, 1800)  # whole seconds, as the log shows them
        out += browsing + attacks
        log.attackers.add(ip)
        log.attacks[ip] = [time for time, _ in attacks]
    out.sort(key=lambda entry: entry[0])
    log.lines = [line for _, line in out]
    for time, line in out:
        log.requests.setdefault(line.split(" ", 1)[0], []).append(time)
    return log


def score(log: SlowLog, path: Path) -> AddressScore:
    """Scan the log (written to ``path``) with the shipped rules and jails, as
    ``lappguard scan`` would, and score each address."""
    path.write_text("\n".join(log.lines) + "\n")
    rules = load_rules()
    jails = load_jails(rule_ids=[rule.id for rule in rules])
    result = scan([str(path)], ScanOptions(rules=rules, jails=jails, kind="apache_access"))
    banned_at: dict[str, float] = {}
    for decision in result.bans:
        banned_at.setdefault(decision.ip, decision.time)
    attacks_served, requests_served = [], []
    for ip in sorted(log.attackers):
        until = banned_at.get(ip, float("inf"))
        attacks_served.append(sum(1 for time in log.attacks[ip] if time <= until))
        requests_served.append(sum(1 for time in log.requests[ip] if time <= until))
    banned_benign = sorted(ip for ip in log.benign if ip in banned_at)
    return AddressScore(
        attackers=len(log.attackers),
        attackers_banned=sum(1 for ip in log.attackers if ip in banned_at),
        benign=len(log.benign),
        benign_banned=len(banned_benign),
        attacks_served=attacks_served,
        requests_served=requests_served,
        banned_benign=banned_benign,
    )


def _attack_requests() -> dict[str, list[str]]:
    """Access-log lines of each attack corpus, as tests/webcorpus.py builds them."""
    found: dict[str, list[str]] = {corpus: [] for corpus in CORPORA}
    for sample in webcorpus.payload_samples():
        found[sample.corpus].append(sample.line)
    found["crs"] = [sample.line for sample in webcorpus.crs_samples("attack", pl1_only=True)]
    return found


def _attacker_address(rng: random.Random, number: int) -> str:
    """An address no real visitor of the log has: IPv4 from 198.18.0.0/15 (benchmarking),
    every fourth one IPv6 from 2001:db8::/32 (documentation)."""
    if number % 4 == 3:
        return str(ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(96)))
    return str(ipaddress.IPv4Address((198 << 24 | 18 << 16) + rng.randrange(1 << 17)))


def _time_of(line: str) -> float:
    found = _STAMP.search(line)
    assert found, line
    return datetime.strptime(found.group(1), _LOG_TIME).timestamp()


def _readdress(line: str, ip: str, when: float) -> str:
    """The line as ``ip`` would have sent it at ``when``."""
    stamp = datetime.fromtimestamp(when, UTC).strftime(_LOG_TIME)
    rest = line.split(" ", 1)[1]
    return ip + " " + _STAMP.sub(f"[{stamp}]", rest, count=1)
