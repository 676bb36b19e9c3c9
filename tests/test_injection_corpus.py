"""Recall on attack corpora and false positives on benign sets, measured through the real
parser and inspect() (see webcorpus.py; bench/injection.py prints the same figures).

Floors are the measured figures rounded down, so a regression fails. The goal is 95 %
recall on the payload sets and on CRS's paranoia-level-1 regression tests (CRS's default
level, "crs-pl1:*"); the "crs:*" sets also hold levels 2 to 4, whose tests include
fragments (``cast(``, ``~+``, SMTP verbs) a precise detector does not flag. Where a figure
misses a goal, the known false positives below say why.
"""

from __future__ import annotations

import pytest
from webcorpus import ACCEPTED, attack_scores, benign_scores, free_text_rows

#: set -> minimum share of attack samples caught by an accepted family.
RECALL_FLOORS = {
    "payloads:sqli": 0.969,
    "payloads:xss": 0.98,
    "payloads:traversal": 0.97,
    "payloads:lfi": 0.99,
    "payloads:cmdi": 0.96,
    "crs-pl1:913": 1.0,
    "crs-pl1:930": 0.96,
    "crs-pl1:932": 0.90,
    "crs-pl1:941": 0.86,
    "crs-pl1:942": 0.93,
    "crs:913": 1.0,
    "crs:930": 0.96,
    "crs:932": 0.61,
    "crs:941": 0.82,
    "crs:942": 0.53,
}
#: set -> maximum share of benign samples flagged at all.
FALSE_POSITIVE_CEILINGS = {
    "elastic-access-log": 0.0,
    "elastic-query-uris": 0.0,
    "crs-negatives": 0.005,
    "libinjection-false-positives": 0.005,
    "free-text": 0.005,
}
#: CRS must-not-fire tests still flagged: a Wikipedia article about SQL injection that
#: quotes its examples (``name = 'susan' and age = 2``).
KNOWN_CRS_FALSE_POSITIVES = {
    "942521-16",
    "942522-8",
}


@pytest.fixture(scope="module")
def attacks() -> dict:
    return {score.name: score for score in attack_scores()}


@pytest.fixture(scope="module")
def benign() -> dict:
    return {score.name: score for score in benign_scores()}


@pytest.mark.parametrize("name", sorted(RECALL_FLOORS))
def test_recall(attacks: dict, name: str) -> None:
    score = attacks[name]
    assert score.total >= 5
    missed = [sample.origin for sample in score.misses[:5]]
    assert score.rate >= RECALL_FLOORS[name], f"{name}: {score.rate:.3f}, e.g. {missed}"


@pytest.mark.parametrize("name", sorted(FALSE_POSITIVE_CEILINGS))
def test_false_positives(benign: dict, name: str) -> None:
    score = benign[name]
    assert score.total >= 100
    flagged = [evidence for _, evidence in score.flagged[:5]]
    assert score.rate <= FALSE_POSITIVE_CEILINGS[name], f"{name}: {score.rate:.4f}: {flagged}"


def test_real_access_log_raises_nothing(benign: dict) -> None:
    assert benign["elastic-access-log"].total == 2500
    assert benign["elastic-access-log"].flagged == []


def test_known_false_positives_only(benign: dict) -> None:
    flagged = {sample.origin.split()[1] for sample, _ in benign["crs-negatives"].flagged}
    assert flagged == KNOWN_CRS_FALSE_POSITIVES


def test_libinjection_false_positive_set_is_flagged_by_libinjection_alone(benign: dict) -> None:
    # These inputs are in libinjection's own list of its false positives; 3.9.2 still
    # flags nine of them, seven of which agent.detect.injection.prose reads as free text
    # ("80% ACRYLIC AND 20% WOOL", "select x from y where"), and no lappguard pattern adds
    # to the two left: "1,1--" and a product name followed by a run of quotes.
    flagged = benign["libinjection-false-positives"].flagged
    assert len(flagged) == 2
    assert all("[libinjection " in evidence for _, evidence in flagged)


def test_every_set_is_measured(attacks: dict) -> None:
    assert set(attacks) == set(RECALL_FLOORS)
    assert {name.split(":")[1] for name in attacks} == set(ACCEPTED)


def test_free_text_corpus_is_hundreds_of_reasoned_values() -> None:
    rows = free_text_rows()
    assert len(rows) >= 300
    assert len({value for value, _, _ in rows}) == len(rows)
    assert all(value and family and why for value, family, why in rows)


def test_free_text_flags_only_a_command_in_markdown_backticks(benign: dict) -> None:
    # "use `ls -la` to list files": Markdown's code span is the shell's command
    # substitution, and nothing in the value tells them apart.
    flagged = [sample.origin for sample, _ in benign["free-text"].flagged]
    assert flagged == ["cmdi: use `ls -la` to list files"]
