"""Debian version comparison against the oracle: dpkg --compare-versions itself."""

from __future__ import annotations

import itertools
import subprocess

import pytest
from conftest import require_program

from checks.parsers.deb_version import compare, version_key

VERSIONS = [
    "1.0",
    "1.0-1",
    "1.0-1+deb12u1",
    "1.0~rc1",
    "1.0~rc1-1",
    "1.0~~",
    "1.0~",
    "1.0a",
    "1.0+",
    "1.0.0",
    "1.00",
    "1:0.9",
    "0:1.0",
    "2:1.0",
    "3.0.15-1~deb12u1",
    "3.0.17-1~deb12u2",
    "3.0.17-1~deb12u10",
    "6.1.115-1",
    "6.1.119-1",
    "15.18-0+deb12u1",
    "15.8-0+deb12u1",
    "18~beta1-1.pgdg120+1",
    "2.36-9+deb12u9",
    "2.36-9+deb12u10",
    "1.2.3-4-5",
    "a",
    "a.b",
    "1.0-0",
    "9",
    "10",
]


def dpkg_says(a: str, b: str, dpkg: str) -> int:
    def holds(relation: str) -> bool:
        done = subprocess.run([dpkg, "--compare-versions", a, relation, b], check=False)
        return done.returncode == 0

    return -1 if holds("lt") else 1 if holds("gt") else 0


def sign(n: int) -> int:
    return (n > 0) - (n < 0)


def test_every_pair_orders_as_dpkg_orders_it():
    dpkg = require_program("dpkg")
    for a, b in itertools.combinations(VERSIONS, 2):
        assert sign(compare(a, b)) == dpkg_says(a, b, dpkg), (a, b)


@pytest.mark.parametrize(
    ("older", "newer"),
    [("1.0~rc1", "1.0"), ("1.0", "1.0+deb12u1"), ("9", "10"), ("2.0", "1:0.1")],
)
def test_documented_orders(older, newer):
    assert compare(older, newer) < 0 < compare(newer, older)
    assert sorted([newer, older], key=version_key) == [older, newer]
