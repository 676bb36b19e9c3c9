"""Every shipped detection rule against its own annotated samples (fail2ban's discipline).

A rule without samples, a pattern no sample exercises, a sample whose line lacks every
prefilter literal, or a sample giving another address or user than annotated fails here.
Samples run through a Detector holding *all* rules of their kind, so a rule shadowed by an
earlier one in the file is caught too.
"""

from __future__ import annotations

from datetime import UTC

import pytest

from agent.bans.jails import load_jails
from agent.detect.detector import Detector
from agent.detect.kinds import KINDS
from agent.detect.logformats import DEBIAN_PG_PREFIX
from agent.detect.rules import Rule, Sample, default_rule_files, load_rules

RULES = load_rules()
NOW = 1767225600.0  # 2026-01-01T00:00:00Z: syslog years resolve to 2025


def _detector(kind: str, sample: Sample) -> Detector:
    options: dict[str, str] = {}
    if kind == "apache_access" and sample.format:
        options["access_log_format"] = sample.format
    if kind == "postgresql":
        options["postgres_prefix"] = sample.format or DEBIAN_PG_PREFIX
    same_kind = [rule for rule in RULES if rule.kind == kind]
    return Detector(same_kind, level="aggressive", tz=UTC, clock=lambda: NOW, **options)


def _feed(rule: Rule, sample: Sample):
    detector = _detector(rule.kind, sample)
    for number, before in enumerate(sample.before, 1):
        detector.feed(before, rule.kind, "samples", number)
    return detector, detector.feed(sample.line, rule.kind, "samples", len(sample.before) + 1)


def _cases(attribute: str):
    return [
        pytest.param(rule, sample, id=f"{rule.id}:{sample.lineno}")
        for rule in RULES
        for sample in getattr(rule, attribute)
    ]


def test_every_kind_has_a_rule_file_and_ids_are_unique():
    assert {rule.kind for rule in RULES} == set(KINDS)
    assert len({rule.id for rule in RULES}) == len(RULES)
    assert {path.name for path in default_rule_files()} == {
        "sshd.yaml",
        "apache-access.yaml",
        "apache-error.yaml",
        "postgresql.yaml",
        "php-app.yaml",
    }


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.id)
def test_rule_has_samples_and_every_pattern_is_exercised(rule: Rule):
    assert rule.matches, f"{rule.id} has no matching sample"
    if rule.http is not None:
        return
    exercised = set()
    for sample in rule.matches:
        assert any(literal in sample.line for literal in rule.prefilter), (
            f"{sample.file}:{sample.lineno}: no prefilter literal of {rule.id} in the line"
        )
        header = _detector(rule.kind, sample).header(sample.line, rule.kind)
        assert header is not None, f"{sample.file}:{sample.lineno}: header not parsed"
        match = rule.regex.match(header.message)
        assert match is not None, f"{sample.file}:{sample.lineno}: no pattern of {rule.id} matches"
        exercised.add(rule.captured(match)[0])
    missing = sorted(set(range(len(rule.patterns))) - exercised)
    assert not missing, f"{rule.id}: patterns {missing} are exercised by no sample"


@pytest.mark.parametrize(("rule", "sample"), _cases("matches"))
def test_matching_sample_gives_exactly_the_annotated_event(rule: Rule, sample: Sample):
    detector, events = _feed(rule, sample)
    if rule.track:
        # a track rule gives no event: it makes its address available to the process
        # (PostgreSQL's once the next line shows it was no forgery: a whole record here)
        header = detector.header(sample.line, rule.kind)
        assert events == []
        detector.settle(rule.kind, "samples", sample.line.encode())
        assert detector.memory.recall("samples", header.pid, header.time) == sample.ip
        return
    if rule.http is not None:
        # one request can be several things at once (a SQLi probe answered 404)
        events = [e for e in events if e.rule == rule.id]
    assert [(e.rule, e.ip, e.user, e.line) for e in events] == [
        (rule.id, sample.ip, sample.user, len(sample.before) + 1)
    ]
    assert events[0].kind == rule.kind and events[0].source == "samples"
    assert events[0].evidence == sample.line[:512]


@pytest.mark.parametrize(("rule", "sample"), _cases("no_matches"))
def test_non_matching_sample_gives_no_event_of_the_rule(rule: Rule, sample: Sample):
    _, events = _feed(rule, sample)
    assert [e for e in events if e.rule == rule.id] == []


def test_default_jails_name_existing_rules_and_leave_only_documented_ones_out():
    config = load_jails(rule_ids=[rule.id for rule in RULES])
    covered = {rule.id for rule in RULES if any(j.covers(rule.id) for j in config.jails)}
    unjailed = {rule.id for rule in RULES} - covered
    assert unjailed == {"sshd-pam-auth-failure", "sshd-connection-from", "pg-connection-received"}
