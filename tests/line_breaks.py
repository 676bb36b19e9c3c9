"""The characters that make Python's ``str.splitlines()`` end a line where the daemons do not.

Every parser's oracle test writes the same bytes around each of them, hands the file to the
real daemon and to our parser, and requires the same reading. NUL is in the table because
the C daemons read lines with fgets()/getline() and strlen(): a NUL ends a line early for
some of them and joins it to the next for others.
"""

from __future__ import annotations

import pytest

SEPARATORS = {
    "FF": "\f",
    "VT": "\v",
    "FS": "\x1c",
    "GS": "\x1d",
    "RS": "\x1e",
    "NEL": "\x85",
    "LS": "\u2028",
    "PS": "\u2029",
    "CR": "\r",
    "NUL": "\0",
}

#: ``@each_separator`` on a test taking ``sep``: one test per character, named after it.
each_separator = pytest.mark.parametrize("sep", SEPARATORS.values(), ids=SEPARATORS.keys())
