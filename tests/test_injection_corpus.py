"""Recall on attack corpora and false positives on benign sets, measured through the real
parser and inspect() (see webcorpus.py; bench/injection.py prints the same figures).

Floors are the measured figures rounded down, so a regression fails. The goals
(webcorpus.RECALL_GOAL, FALSE_POSITIVE_GOAL) are asserted too: 95 % recall for every family
over the sets it is judged by (webcorpus.FAMILY_SETS: the payload lists and CRS's
paranoia-level-1 regression tests, "crs-pl1:*", for the injection families; the probe sets
for the others), and at most 0.5 % false positives on every benign set and on all of them
together. The "crs:*" sets also hold levels 2 to 4, whose tests include fragments
(``cast(``, ``~+``, SMTP verbs) a precise detector does not flag.
"""

from __future__ import annotations

import pytest
from webcorpus import (
    ACCEPTED,
    FALSE_POSITIVE_GOAL,
    FAMILY_SETS,
    RECALL_GOAL,
    attack_scores,
    benign_scores,
    family_totals,
    free_text_rows,
)

#: set -> minimum share of attack samples caught by an accepted family.
RECALL_FLOORS = {
    "payloads:sqli": 0.969,
    "payloads:xss": 0.98,
    "payloads:traversal": 0.97,
    "payloads:lfi": 0.99,
    "payloads:cmdi": 0.96,
    "crs-pl1:913": 1.0,
    "crs-pl1:930": 0.96,
    "crs-pl1:932": 0.98,
    "crs-pl1:941": 0.86,
    "crs-pl1:942": 0.93,
    "crs:913": 1.0,
    "crs:930": 0.96,
    "crs:932": 0.66,
    "crs:941": 0.82,
    "crs:942": 0.53,
    "probes:crlf": 1.0,
    "probes:control_bytes": 1.0,
    "probes:sqli_probe": 1.0,
    "probes:foreign_product": 1.0,
    "probes:scanner": 1.0,
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
    assert {name for names in FAMILY_SETS.values() for name in names} <= set(attacks)


@pytest.mark.parametrize("family", sorted(FAMILY_SETS))
def test_every_family_reaches_the_recall_goal(attacks: dict, family: str) -> None:
    caught, total = family_totals(attacks)[family]
    assert total >= 25
    assert caught >= RECALL_GOAL * total, f"{family}: {caught}/{total}"


def test_false_positives_of_all_benign_sets_together(benign: dict) -> None:
    flagged = sum(score.hits for score in benign.values())
    total = sum(score.total for score in benign.values())
    assert flagged <= FALSE_POSITIVE_GOAL * total, f"{flagged}/{total}"
    assert all(score.rate <= FALSE_POSITIVE_GOAL for score in benign.values())


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
