"""Free text that libinjection or a SQL marker reads as SQL, and the SQL that stays SQL:
agent.detect.injection.prose through the real libinjection and inspect()."""

from __future__ import annotations

import pytest
from webcorpus import as_query_value, log_line

from agent.detect.http import AccessLogParser
from agent.detect.injection import inspect, prose

PARSER = AccessLogParser()


def families(target: str) -> set[str]:
    request = PARSER.parse(log_line(target))
    assert request is not None
    return {finding.family for finding in inspect(request)}


@pytest.mark.parametrize(
    "text",
    [
        "80% acrylic and 20% wool",  # a percentage
        "1611-iioxxig1ti8rspl2vbxfy--",  # a dash glued to a product code
        "x/*",
        "left (wa, rr), following wood edge south",  # three plain words in a row
        "year (2020) in review",  # IN takes a list
        "if(a>b, a, b) formula",  # an alias after a call, at the end
        "select 'and'",  # the keyword mentioned in quotes
        "union select committee minutes 2023",
    ],
)
def test_prose_is_not_sql(text: str) -> None:
    assert "sqli" not in families("/search?q=" + as_query_value(text))
    assert "sqli" not in families("/item?id=" + as_query_value(text))


@pytest.mark.parametrize(
    "text",
    [
        "1 or 1=1",
        "1 and 1=2",
        "x' or 'a'='a",
        "a'or'a",
        "1 --",
        "admin'--",
        "1 union select password from users",
        "1' union select 1,2,3-- prose after the comment does not count",
        "select * from information_schema.tables",
        "1 and sleep(5)",
        "hello there friend' or 1=1--",  # prose inside the string literal it leaves
    ],
)
def test_sql_stays_sql(text: str) -> None:
    assert "sqli" in families("/item?id=" + as_query_value(text))


def test_bare_statements_are_text_about_sql() -> None:
    assert prose.starts_a_bare_statement("select x from y where")
    assert prose.starts_a_bare_statement("select * from users")
    assert not prose.starts_a_bare_statement("select /**/ 1")
    assert not prose.starts_a_bare_statement("select 1; drop table users")
    assert not prose.starts_a_bare_statement("1 select")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # a search box: a command line, a path or a file name asked about
        ("/search?q=tar+-xzf+archive.tar.gz", set()),
        ("/search?q=edit+%2Fetc%2Fhosts+on+mac", set()),
        ("/search?q=php%3A%2F%2Finput+explained", set()),
        ("/search?q=config.php.bak", set()),
        # the same values where a file or a command is expected
        ("/run.php?cmd=tar+-xzf+archive.tar.gz", {"cmdi"}),
        ("/view.php?file=%2Fetc%2Fhosts", {"traversal"}),
        ("/view.php?file=php%3A%2F%2Finput", {"lfi_rfi"}),
        # syntax that breaks out counts in a search box too
        ("/search?q=x%3Bcat+%2Fetc%2Fpasswd", {"cmdi"}),
        ("/search?q=..%2F..%2Fetc%2Fpasswd", {"traversal"}),
        ("/search?q=%2Fetc%2Fpasswd", {"traversal"}),
    ],
)
def test_free_text_parameters(target: str, expected: set[str]) -> None:
    assert families(target) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("C:%5CWindows%5CSystem32%5Cls", set()),  # a command line's way of naming a program
        ("C:%5Cboot.ini", {"traversal"}),
        ("C:%2Fwindows%2Ftemp%2F", {"traversal"}),
        ("C:%2Fprogram+files%2Fmysql%2Fdata%2Fmysql.err", {"traversal"}),
    ],
)
def test_windows_paths(value: str, expected: set[str]) -> None:
    assert families("/view.php?file=" + value) & {"traversal", "lfi_rfi"} == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("cscli+alerts+list", {"cmdi"}),
        ("ansible-playbook+site.yml", {"cmdi"}),
        ("ansible+all+-m+ping", {"cmdi"}),
        ("netsh+firewall+set+opmode+disable", {"cmdi"}),
        ("python3.10+-c+id", {"cmdi"}),
        ("if+%2Fi+a%3D%3Db+foo", {"cmdi"}),  # cmd.exe
        ("cd+%2F%3Bcd+etc%3Bcolumn+passwd", {"cmdi"}),
        # words that name a tool, a plan or a thing
        ("ansible", set()),
        ("ansible+tutorials", set()),
        ("php8.2", set()),
        ("python3.11+hosting", set()),
        ("nft+art", set()),
        ("cd+player", set()),
    ],
)
def test_command_lines_of_tools_and_words_that_name_them(value: str, expected: set[str]) -> None:
    assert families("/page.php?tag=" + value) & {"cmdi"} == expected
