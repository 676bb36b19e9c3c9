"""AccessLogParser on real Apache lines (elastic's log) and on the edge cases attackers and
broken clients produce: escaped quotes, IPv6, TLS bytes, spoofed X-Forwarded-For."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from agent.detect.http import COMMON, VHOST_COMBINED, AccessLogParser, HttpRequest

ELASTIC = FIXTURES / "web" / "access_elastic.log"
UA = "Mozilla/5.0 (X11; Linux x86_64)"


def _real_lines() -> list[str]:
    return ELASTIC.read_text(encoding="utf-8").splitlines()


def test_every_real_line_parses_with_its_fields() -> None:
    parser = AccessLogParser()
    requests = [parser.parse(line) for line in _real_lines()]
    assert len(requests) == 2500 and None not in requests
    assert requests[0] == HttpRequest(
        client_ip="83.149.9.216",
        time=1431857103.0,  # 17/May/2015:10:05:03 +0000
        method="GET",
        target="/presentations/logstash-monitorama-2013/images/kibana-search.png",
        protocol="HTTP/1.1",
        status=200,
        size=203023,
        user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36",
        referer="http://semicomplete.com/presentations/logstash-monitorama-2013/",
        vhost=None,
        request_line="GET /presentations/logstash-monitorama-2013/images/kibana-search.png"
        " HTTP/1.1",
        location=None,
    )


def test_apache_byte_escapes_are_undone() -> None:
    # A referer in cp1251 that Apache logged as \xNN: not UTF-8, kept byte for character.
    request = AccessLogParser().parse(_real_lines()[1463])
    assert request is not None
    assert request.referer.startswith("http://\xe4\xe5\xe3\xf2\xff")
    assert request.client_ip == "186.93.30.106"


def test_truncated_real_line_is_not_a_request() -> None:
    # elastic's log ends one line mid-User-Agent (the closing quote is missing).
    line = (
        '46.118.127.106 - - [20/May/2015:12:05:17 +0000] "GET /scripts/grok-py-test/configlib.py '
        'HTTP/1.1" 200 235 "-" "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html'
    )
    assert AccessLogParser().parse(line) is None


def test_escaped_quotes_stay_inside_their_field() -> None:
    # The client sent  "  and  \  in the target and User-Agent; Apache escaped them.
    line = (
        r'203.0.113.9 - - [01/Jan/2025:00:00:00 +0000] "GET /a\"b\\c HTTP/1.1" 404 10 '
        r'"-" "x\" 6.6.6.6 \"y"'
    )
    request = AccessLogParser().parse(line)
    assert request is not None
    assert (request.target, request.user_agent) == ('/a"b\\c', 'x" 6.6.6.6 "y')
    assert request.client_ip == "203.0.113.9"


def test_ipv6_peer_and_ipv4_mapped_peer() -> None:
    parser = AccessLogParser()
    v6 = parser.parse(
        f'2001:DB8::0:1 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "{UA}"'
    )
    mapped = parser.parse(
        f'::ffff:192.0.2.7 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "{UA}"'
    )
    assert v6 is not None and v6.client_ip == "2001:db8::1"
    assert mapped is not None and mapped.client_ip == "192.0.2.7"


def test_vhost_combined_and_common() -> None:
    vhost = AccessLogParser(VHOST_COMBINED).parse(
        "www.example.org:443 198.51.100.4 - alice [10/Oct/2000:13:55:36 -0700] "
        f'"POST /login HTTP/1.1" 302 0 "-" "{UA}"'
    )
    assert vhost is not None
    assert (vhost.vhost, vhost.client_ip, vhost.method, vhost.status) == (
        "www.example.org",
        "198.51.100.4",
        "POST",
        302,
    )
    assert vhost.time == 971211336.0  # 20:55:36 UTC
    common = AccessLogParser(COMMON).parse(
        '172.17.0.1 - - [30/Sep/2021:08:00:55 +0000] "GET /.htpasswd HTTP/1.1" 403 199'
    )
    assert common is not None
    assert (common.target, common.user_agent, common.referer, common.size) == (
        "/.htpasswd",
        "",
        "",
        199,
    )


@pytest.mark.parametrize(
    ("request_line", "method", "target"),
    [
        ("-", "", ""),  # a connection that sent nothing (408)
        (r"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "", ""),  # TLS to a plain-HTTP port
        (r"\x16\x03\x01\x01 \x02", "", ""),
        ("GET /index.html", "GET", "/index.html"),  # HTTP/0.9
        ("GET /a b HTTP/1.1", "GET", "/a b"),
    ],
)
def test_invalid_and_odd_request_lines(request_line: str, method: str, target: str) -> None:
    line = f'1.2.3.4 - - [17/Oct/2023:05:57:49 +1100] "{request_line}" 400 226 "-" "-"'
    request = AccessLogParser().parse(line)
    assert request is not None
    assert (request.method, request.target, request.client_ip) == (method, target, "1.2.3.4")
    assert request.time == 1697482669.0


@pytest.mark.parametrize(
    "line",
    [
        "",
        "garbage",
        'host.example.com - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"',
        '1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-"',
        '1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" abc 1 "-" "-"',
    ],
)
def test_garbled_lines_are_none(line: str) -> None:
    assert AccessLogParser().parse(line) is None


XFF_FORMAT = r"%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\" \"%{X-Forwarded-For}i\""


def _xff_line(peer: str, forwarded: str) -> str:
    return (
        f'{peer} - - [01/Jan/2025:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "{UA}" "{forwarded}"'
    )


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.50", "6.6.6.6", "203.0.113.50"),  # untrusted peer: the header is ignored
        ("10.0.0.2", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # right-most untrusted
        ("10.0.0.2", "198.51.100.7, 10.0.0.9", "198.51.100.7"),  # past a second trusted hop
        ("10.0.0.2", "10.0.0.8, 10.0.0.9", "10.0.0.8"),  # all trusted: the left-most
        ("10.0.0.2", "-", "10.0.0.2"),  # no header: the proxy's own request
        ("10.0.0.2", "2001:db8::7", "2001:db8::7"),
        # a port, as some proxies (Azure, IIS ARR) append it: the address before it
        ("10.0.0.2", "198.51.100.7:51234", "198.51.100.7"),
        ("10.0.0.2", "6.6.6.6, [2001:db8::7]:443", "2001:db8::7"),
        ("10.0.0.2", "[2001:db8::7]", "2001:db8::7"),
        ("10.0.0.2", "198.51.100.7:5123, 10.0.0.9:80", "198.51.100.7"),
        ("fd00::2", "2001:db8::7, fd00::9", "2001:db8::7"),
        # a hop that is no address stops the walk and names no one, never the proxy
        ("10.0.0.2", "unknown", None),
        ("10.0.0.2", "6.6.6.6, unknown", None),
        ("10.0.0.2", "6.6.6.6, _hidden", None),  # RFC 7239 obfuscated identifier
        ("10.0.0.2", "6.6.6.6, not-an-ip", None),
        ("10.0.0.2", "198.51.100.7, unknown, 10.0.0.9", None),
        ("10.0.0.2", "198.51.100.7:http", None),
        ("10.0.0.2", "[2001:db8::7]x", None),
        ("10.0.0.2", "[2001:db8::7", None),
        ("10.0.0.2", "6.6.6.6, , 10.0.0.9", None),
        ("10.0.0.2", "2001:db8::7:80:90", "2001:db8::7:80:90"),  # bare IPv6 has no port
        # an untrusted hop before garbage: the walk stopped there
        ("10.0.0.2", "unknown, 198.51.100.7", "198.51.100.7"),
    ],
)
def test_forwarded_for_only_from_trusted_proxies(
    peer: str, forwarded: str, client: str | None
) -> None:
    parser = AccessLogParser(XFF_FORMAT, trusted_proxies=["10.0.0.0/8", "fd00::/8"])
    request = parser.parse(_xff_line(peer, forwarded))
    assert request is not None and request.client_ip == client


def test_forwarded_for_ignored_without_trusted_proxies() -> None:
    request = AccessLogParser(XFF_FORMAT).parse(_xff_line("10.0.0.2", "6.6.6.6"))
    assert request is not None and request.client_ip == "10.0.0.2"


def test_custom_format_with_client_ip_location_and_split_request() -> None:
    fmt = '%a %{%Y-%m-%d}t "%m %U%q %H" %>s %B %D "%{Location}o" "%{User-Agent}i"'
    line = (
        '192.0.2.1 2025-01-01 "GET /old?x=1 HTTP/1.1" 301 0 1234 "https://example.org/new" "curl/8"'
    )
    request = AccessLogParser(fmt).parse(line)
    assert request is not None
    assert (request.client_ip, request.target, request.status, request.location) == (
        "192.0.2.1",
        "/old?x=1",
        301,
        "https://example.org/new",
    )
    assert request.time is None  # a strftime layout is in the server's unknown time zone


def test_epoch_time_directive() -> None:
    request = AccessLogParser('%h %{msec}t "%r" %>s').parse(
        '192.0.2.1 1700000000123 "GET / HTTP/1.1" 200'
    )
    assert request is not None and request.time == 1700000000.123


def test_format_without_client_address_is_refused() -> None:
    with pytest.raises(ValueError, match="no client address"):
        AccessLogParser('%t "%r" %>s')
