"""The probe families through the real parser, inspect() and Detector: CRLF and header
injection, control bytes, SQL quote probes, other products' files and scanner markers.
Each has attacks that fire and near misses that do not, and the address an event names
is always the client field of the line, never one written in the request."""

from __future__ import annotations

import time
from datetime import UTC

import pytest
from webcorpus import BROWSER, log_line

from agent.detect.detector import Detector
from agent.detect.http import AccessLogParser
from agent.detect.injection import inspect, paths, patterns, probes, products, prose, shell
from agent.detect.rules import load_rules

PARSER = AccessLogParser()
PROBE_FAMILIES = {"crlf", "control_bytes", "sqli_probe", "foreign_product", "scanner"}


def families(target: str, user_agent: str = BROWSER, referer: str = "") -> set[str]:
    request = PARSER.parse(log_line(target, user_agent, referer))
    assert request is not None
    return {finding.family for finding in inspect(request)} & PROBE_FAMILIES


@pytest.mark.parametrize(
    ("target", "family"),
    [
        ("/%0d%0aSet-Cookie:crlf=injection", "crlf"),
        ("/%0aanything", "crlf"),  # a path never holds a line break
        ("/%E5%98%8A%E5%98%8DSet-Cookie:x=1", "crlf"),  # U+560A U+560D
        ("/r.php?url=%0d%0aLocation:%20http://example.org", "crlf"),
        ("/r.php?next=%0d%0a", "crlf"),  # a redirect parameter never holds one
        ("/p.php?x=a%0d%0aLocation:%20//example.org/", "crlf"),  # Location with its URL
        ("/p.php?x=a%0d%0aRefresh:%200;url=http://example.org/", "crlf"),
        ("/p.php?x=a%0d%0a%0d%0a%3Cscript%3E", "crlf"),  # a body after a blank line
        ("/p.php?x=a%0d%0aHTTP/1.1%20200%20OK", "crlf"),
        ("/p.php?x%0d%0aX-Injected:%201=y", "crlf"),  # in a parameter name
        ("/view.php?file=a.php%00.jpg", "control_bytes"),
        ("/view.php?file=a.php%2500.jpg", "control_bytes"),  # double-encoded
        ("/x%00.php", "control_bytes"),
        ("/p.php?a=%1b%5b31m", "control_bytes"),
        ("/item.php?id=1%27", "sqli_probe"),
        ("/item.php?id=1%22", "sqli_probe"),
        ("/item.php?id=1)", "sqli_probe"),
        ("/item.php?id=1%5C", "sqli_probe"),
        ("/item.php?id=1,%27(.%22.,(", "sqli_probe"),  # sqlmap's heuristic check
        ("/shop.php?cat=books%27", "sqli_probe"),
        ("/search?q=1%27%22", "sqli_probe"),  # two breaking characters, even in a search box
        ("/_vti_bin/shtml.dll", "foreign_product"),
        ("/CFIDE/administrator/", "foreign_product"),  # any case
        ("//cgi-bin//test-cgi", "foreign_product"),  # doubled slashes
        ("/manager/html/upload?x=1", "foreign_product"),  # under a listed path
        ("/?u=http://a1b2.oast.fun/", "scanner"),
        ("/?u=https%3A%2F%2Fx.burpcollaborator.net", "scanner"),
        ("/acunetix-wvs-test-for-some-inexistent-file", "scanner"),
    ],
)
def test_probes_fire(target: str, family: str) -> None:
    assert family in families(target)


@pytest.mark.parametrize(
    "target",
    [
        "/contact.php?msg=Dear%20team,%0d%0aNote:%20call%20me",  # a textarea
        "/contact.php?msg=Name:%20John%0d%0aPhone:%20555",
        "/contact.php?msg=Dear%20Anna,%0d%0aLocation:%20Berlin%0d%0aHost:%20the%20Smiths",
        "/contact.php?msg=line%09one",  # a tab
        "/people.php?name=O%27Brien",
        "/people.php?name=l%27ami",
        "/people.php?name=Mary%20O%27Connor-Smith",
        "/search?q=12%22",  # inches in a search box
        "/search?q=1)",  # a list item in a search box
        "/search?q=James%27+car",
        "/item.php?id=(1)",
        "/item.php?id=42",
        "/cgi-bin/status.cgi",
        "/manager/",  # a generic name, not Tomcat's manager/html
        "/ecp-old/",
        "/search?q=burp+collaborator+explained",
        "/search?q=boast.fun",  # not the oast.fun domain
        "/search?q=sqlmap+tutorial",  # a tool named in a search, no marker
    ],
)
def test_near_misses_do_not_fire(target: str) -> None:
    assert families(target) == set()


def test_scanner_names_in_the_user_agent_are_whole_words() -> None:
    assert families("/", "sqlmap/1.7.2#stable (https://sqlmap.org)") == {"scanner"}
    assert families("/", "Mozilla/5.0 zgrab/0.x") == {"scanner"}
    assert families("/", "Mozilla/5.0 (compatible; Nmap Scripting Engine)") == {"scanner"}
    assert families("/", "Mozilla/5.0 (X11; Linux x86_64) UnmappedBrowser/1.0") == set()


def test_a_callback_domain_in_the_referer_is_a_scanner_marker() -> None:
    assert families("/", BROWSER, "http://abc.oast.pro/") == {"scanner"}


REAL, INJECTED = "203.0.113.9", "6.6.6.6"


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        (f"/r.php?url=%0d%0aLocation:%20http://{INJECTED}/", "http-crlf"),
        (f"/view.php?host={INJECTED}&file=a.php%00.jpg", "http-control-bytes"),
        (f"/item.php?ip={INJECTED}&id=1%27", "http-sqli-probe"),
        (f"/_vti_bin/shtml.dll?{INJECTED}", "http-foreign-product"),
        (f"/?u=http://{INJECTED}.oast.fun/", "http-scanner"),
    ],
)
def test_events_name_the_client_field_only(target: str, rule: str) -> None:
    detector = Detector(load_rules(), level="aggressive", tz=UTC, clock=lambda: 0.0)
    line = log_line(target, f"Mozilla/5.0 ({INJECTED})", f"http://{INJECTED}/").replace(
        "198.51.100.23", REAL, 1
    )
    events = detector.feed(line, "apache_access", "access.log", 1)
    assert rule in {event.rule for event in events}
    assert {event.ip for event in events} == {REAL}


def test_the_data_lists_load_and_name_their_sources() -> None:
    assert products.foreign_product("/_vti_pvt/service.pwd") == "/_vti_pvt"
    assert "crowdsec" in products.DATA.read_text(encoding="utf-8")
    assert "OWASP CRS" in patterns.SCANNER_DATA.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "check",
    [
        lambda text: probes.crlf(text),
        lambda text: probes.control_bytes(text),
        lambda text: probes.sql_quote_probe(text),
        lambda text: products.foreign_product(text),
        lambda text: patterns.scanner_marker(text),
        lambda text: patterns.scanner(text),
        lambda text: prose.cannot_parse(text),
        lambda text: prose.misread_as_sql(text, "s&s"),
        lambda text: shell.cmdi(text),
        lambda text: shell.cmdi(text, free_text=True),
        lambda text: paths.traversal(text),
        lambda text: paths.traversal(text, free_text=True),
    ],
)
@pytest.mark.parametrize(
    "unit", ["\r\nx", "1'", "a.", "/a", "oast.", "-", "( ", "'\"", "ab ", "{{1", "c:/a", "if a"]
)
def test_probe_checks_stay_linear(check, unit: str) -> None:
    """A near-miss value 16x longer costs about 16x, not 256x (cf. test_detect_linear): the
    probe checks and the free-text readings of SQL, shell and paths. The ratio's margin
    absorbs a loaded machine (a linear check measured 8.2x on 4x once, under load)."""

    def seconds(size: int) -> float:
        text = (unit * (size // len(unit) + 1))[:size]
        best = float("inf")
        for _ in range(5):
            start = time.thread_time()
            check(text)
            best = min(best, time.thread_time() - start)
        return best

    long = seconds(16384)
    if long < 0.002:
        return
    assert long / max(seconds(1024), 1e-6) < 40


@pytest.mark.parametrize(
    "target",
    [
        "/index.php~",
        "/.index.php.swp",
        "/index.php.bak",
        "/index.php_old",
        "/index.php-backup",
        "/%23index.php%23",  # Emacs
        "/Copy%20of%20config.php",  # Windows
        "/.git/HEAD",
        "/.svn/entries",
        "/.hg/store",
        "/CVS/Entries",
        "/dump.sql",
        "/backup.tar.gz",
    ],
)
def test_backups_version_control_and_dumps_of_the_site_are_sensitive_files(target: str) -> None:
    request = PARSER.parse(log_line(target))
    assert request is not None
    assert "sensitive_file" in {finding.family for finding in inspect(request)}


@pytest.mark.parametrize("target", ["/docs/cvs/entries.html", "/issue%23123", "/old/index.php"])
def test_pages_named_like_backups_are_not(target: str) -> None:
    request = PARSER.parse(log_line(target))
    assert request is not None
    assert "sensitive_file" not in {finding.family for finding in inspect(request)}
