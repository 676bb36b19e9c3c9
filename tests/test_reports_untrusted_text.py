"""Reports carry text from the audited host (file contents, file names): it is shown, never
obeyed. No escape sequence reaches the terminal, JUnit stays well-formed XML, JSON and SARIF
stay valid, and a file name that is not UTF-8 cannot crash ``--output``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import unicodedata
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from treeutil import make_tree

from agent.cli import main
from checks.engine import HostReport
from checks.report import RENDERERS
from checks.result import Result, Severity, Status
from checks.visible import visible

#: Our own colour codes (text report on a terminal); nothing else may start with ESC.
OUR_SGR = re.compile(r"\x1b\[[\d;]+m")
#: Characters a terminal acts on or hides: controls, format (bidi), surrogates, separators.
HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}
#: A URI (reference) as RFC 3986 spells one: unreserved, reserved and percent-encoded only.
URI = re.compile(r"(file://)?[A-Za-z0-9\-._~%!$&'()*+,;=:@/]*")

#: Every code point: controls, bidi overrides, noncharacters and lone surrogates included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)
EVIDENCE = st.one_of(ANY_TEXT, st.builds("/etc/{}:7: {}".format, ANY_TEXT, ANY_TEXT))
RESULTS = st.builds(
    Result,
    check_id=ANY_TEXT,
    title=ANY_TEXT,
    area=st.one_of(st.sampled_from(["SSH", "PG"]), ANY_TEXT),
    severity=st.sampled_from(Severity),
    status=st.sampled_from(Status),
    evidence=st.lists(EVIDENCE, max_size=4).map(tuple),
    reason=ANY_TEXT,
    remediation=ANY_TEXT,
    rationale=ANY_TEXT,
    references=st.lists(ANY_TEXT, max_size=2).map(tuple),
)
REPORTS = st.builds(
    lambda host, results: [HostReport(host, tuple(results), 0.0, 0.1)],
    ANY_TEXT,
    st.lists(RESULTS, min_size=1, max_size=4),
)


def render(kind: str, reports: list[HostReport], colour: bool = False) -> str:
    rendered = RENDERERS[kind](reports, fail_on=Severity.MEDIUM, colour=colour)
    rendered.encode("utf-8")  # what --output does: must never raise
    return rendered


def hidden_characters(text: str) -> list[str]:
    return [char for char in text if char != "\n" and unicodedata.category(char) in HIDDEN]


@settings(max_examples=150, deadline=None)
@given(reports=REPORTS, colour=st.booleans())
def test_text_report_shows_any_text_without_obeying_it(reports, colour):
    text = render("text", reports, colour)
    assert hidden_characters(OUR_SGR.sub("", text) if colour else text) == []
    words = " ".join(text.split())  # lines wrap at 100 columns
    for result in reports[0].results:
        assert " ".join(visible(result.check_id).split()) in words


@settings(max_examples=150, deadline=None)
@given(reports=REPORTS)
def test_junit_is_well_formed_xml_for_any_text(reports):
    suites = ET.fromstring(render("junit", reports).encode("utf-8"))
    for case, result in zip(suites.iter("testcase"), reports[0].results, strict=True):
        if result.status is Status.FAIL:  # a failure, or below --fail-on a passed case's output
            shown = case.find("failure") if result.severity.at_least(Severity.MEDIUM) else None
            text = (shown if shown is not None else case.find("system-out")).text or ""
            assert all(visible(line) in text for line in result.evidence)


@settings(max_examples=150, deadline=None)
@given(reports=REPORTS)
def test_json_and_sarif_are_valid_for_any_text(reports):
    document = json.loads(render("json", reports))
    (host,) = document["hosts"]
    expected = [[visible(line) for line in r.evidence] for r in reports[0].results]
    assert [r["evidence"] for r in host["results"]] == expected
    json.dumps(document, ensure_ascii=False).encode("utf-8")  # no lone surrogate in any string
    sarif = json.loads(render("sarif", reports))
    assert sarif["version"] == "2.1.0"
    json.dumps(sarif, ensure_ascii=False).encode("utf-8")
    for result in sarif["runs"][0]["results"]:
        for location in result["locations"]:
            uri = location.get("physicalLocation", {}).get("artifactLocation", {}).get("uri")
            assert uri is None or URI.fullmatch(uri), uri


# --- the command line on a tree whose file name and content are hostile -------------------------

POLICY = textwrap.dedent("""
    id: hostile
    title: Hostile text
    version: "1"
    checks:
      - id: LAPP-WEB-009
        title: No secret in the application config
        severity: high
        remediation: remove it
        type: file_content
        params: {paths: ["/etc/app/*"], pattern: secret, match: none}
""")
#: An OSC title change, a screen clear and a right-to-left override, in a non-UTF-8 file name.
HOSTILE_NAME = b"/etc/app/conf\xff.ini"
HOSTILE_LINE = "secret = 1 \x1b]0;pwned\x07\x1b[2J \u202eelif\u202c"


@pytest.fixture()
def hostile_root(tmp_path):
    (tmp_path / "policy.yaml").write_text(POLICY)
    root = make_tree(tmp_path / "root", {"/etc/app/.keep": ""})
    with open(os.fsencode(root) + HOSTILE_NAME, "w", encoding="utf-8") as handle:
        handle.write(HOSTILE_LINE + "\n")
    return tmp_path


@pytest.mark.parametrize("kind", ["text", "json", "junit", "sarif"])
def test_output_file_takes_a_non_utf8_name_and_escape_sequences(hostile_root, kind):
    output = hostile_root / f"report.{kind}"
    argv = ["audit", "--policy", str(hostile_root / "policy.yaml")]
    argv += ["--root", str(hostile_root / "root"), "--format", kind, "--output", str(output)]
    assert main(argv) == 1
    written = output.read_text(encoding="utf-8")
    assert "\x1b" not in written and "\u202e" not in written
    if kind == "junit":
        failure = ET.fromstring(written.encode()).find(".//failure")
        assert failure.text.startswith(
            "/etc/app/conf\\xff.ini:1: secret = 1 \\x1b]0;pwned\\x07\\x1b[2J \\u202eelif\\u202c"
        )


@pytest.mark.parametrize("colour", ["never", "always"])
def test_terminal_gets_only_our_colour_codes(hostile_root, colour):
    tree = ["--policy", str(hostile_root / "policy.yaml"), "--root", str(hostile_root / "root")]
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "audit", "--color", colour, *tree],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    shown = done.stdout.decode("utf-8")
    assert "\\x1b]0;pwned\\x07\\x1b[2J \\u202eelif\\u202c" in shown
    assert hidden_characters(OUR_SGR.sub("", shown)) == []
    assert ("\x1b[31m" in shown) == (colour == "always")
