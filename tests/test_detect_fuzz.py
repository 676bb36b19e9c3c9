"""Fuzzing the log-line parsers and the detector with lines built from their own syntax.

Lines are random sequences of the pieces the formats are made of (time stamps of every
shape, valid and absurd, brackets, quotes, escapes, IPv4 and IPv6 in every spelling,
ports, program tags, rule phrases, controls, NUL, invalid UTF-8, long runs of one
character). Whatever the line: no exception escapes, every event names a normalised
address that the line spells (agent.detect.events.normalise_ip: brackets, zone and port
dropped, IPv4-mapped IPv6 shown as IPv4, IPv6 compressed), a line costs a bounded CPU
time, and a scan in ranges on worker processes finds exactly what one pass finds.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import UTC

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.detect.detector import MAX_LINE, Detector
from agent.detect.events import normalise_ip
from agent.detect.http import COMBINED, COMMON, VHOST_COMBINED, AccessLogParser
from agent.detect.logformats import (
    DEBIAN_PG_PREFIX,
    ApacheErrorParser,
    PostgresPrefix,
    SyslogParser,
)
from agent.detect.postgres import PostgresJson
from agent.detect.rules import load_rules

RULES = load_rules()
NOW = 1767225600.0
#: A hang detector, not a speed test: CPU seconds of this thread for a 16 KiB line, some
#: 50 times what one costs (1-5 ms). 0.05 failed CI on a busy machine at 53 ms, for a line
#: that was in fact quadratic (a run of colons in VHOST_COMBINED's %v:%p, 0.8 s at 16 KiB):
#: shapes like that are proven linear by test_detect_linear, which compares sizes.
BUDGET = 0.25
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

STAMPS = [
    "Jan  5 10:00:00", "Feb 30 25:61:61", "Dec 31 23:59:59.999999", "Jan 5 1:2:3",
    "2024-01-05T10:00:00+00:00", "2024-01-05T10:00:00.123456Z", "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00", "2024-02-30T10:00:00", "2024-01-05 10:00:00.123 UTC",
    "2024-01-05 10:00:00 CET", "9999-12-31 23:59:59.999 -14", "[05/Jan/2024:10:00:00 +0000]",
    "[01/Jan/0001:00:00:00 +1400]", "[31/Dec/9999:23:59:59 -1400]", "[32/Foo/2024:99:99:99 +9999]",
    "[Fri Jan 05 10:00:00.123456 2024]", "[Fri Jan 05 10:00:00 0001]", "100000000000000000000",
    "1767225600.123", "9" * 400, "<38>1 2019-07-08T17:40:16-04:00",
]  # fmt: skip
ADDRESSES = [
    "203.0.113.9", "198.51.100.200", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4",
    "1.2.3", "2001:db8::1", "2001:DB8:0:0:0:0:0:1", "::ffff:203.0.113.7", "::1", "fe80::1%eth0",
    "[2001:db8::5]", "[2001:db8::5]:443", "2001:db8::5:4000", "203.0.113.9:8080", "::",
    "1:2:3:4:5:6:7:8:9", "\u0661.2.3.4", "203.0.113.\u0669",
]  # fmt: skip
WORDS = [
    " ", "  ", " from ", " port ", " port 22", " ssh2", " on 10.0.0.1 port 22", "sshd[7]: ",
    "sshd[", "]: ", "web1 ", "httpd[1]: ", "CRON[8]: ", "postgres[9]: ", "Failed password for ",
    "invalid user ", "Invalid user ", "root", "Connection from ", "Disconnecting: ",
    "Too many authentication failures", "[preauth]", "message repeated 3 times: [ ",
    "[auth_basic:error] ", "[pid 1:tid 2] ", "[client ", "[remote ", "] ", "AH01617: ",
    "user bob: authentication failure for \"/\": Password Mismatch", "(70014)End of file: ",
    "LOG:  ", "FATAL:  ", "DETAIL:  ", "connection received: host=", "password authentication "
    "failed for user \"", "[unknown]@[unknown] ", "app@shop ", "\t", "GET ", "POST ", "/",
    "/?q=", "' OR 1=1--", "<script>", "%27", "%u2215", "%c0%af", "../", " HTTP/1.1", "\"", "\\",
    "\\\"", "\\x22", "-", " 200 ", " 404 1 ", "'", "{", "}", "[", "]", ":", ";", "%",
    "\ufdfa", "\u0f73", "\u0301", "\x00", "\x1b[31m", "\r", "\u202e", "\n",
]  # fmt: skip
PIECES = st.sampled_from(STAMPS + ADDRESSES + WORDS) | st.text(max_size=8)


def runs(longest: int) -> st.SearchStrategy[str]:
    """One character (or a few) repeated up to ``longest`` times."""
    return st.tuples(
        st.sampled_from(["a", " ", "'", "%", "\ufdfa", "1.1.", "::", "\\"]),
        st.integers(1, longest),
    ).map(lambda pair: pair[0] * pair[1])


def lines(run: st.SearchStrategy[str], most: int) -> st.SearchStrategy[str]:
    """Up to ``most`` pieces and runs, joined."""
    return st.lists(PIECES | run, max_size=most).map("".join)


def raw_lines(line: st.SearchStrategy[str], run: st.SearchStrategy[str]) -> st.SearchStrategy:
    """Lines as bytes: sometimes with a byte that is not UTF-8, sometimes with one long run."""
    return st.one_of(
        line.map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.tuples(line, st.binary(min_size=1, max_size=4), line).map(
            lambda parts: parts[0].encode() + b"\xff" + parts[1] + parts[2].encode()
        ),
        st.tuples(line, run, line).map(lambda parts: "".join(parts).encode()),
    )


LONG_RUN = runs(MAX_LINE + 100)
LINE = lines(LONG_RUN.filter(lambda run: len(run) < 4096), 30)
RAW = raw_lines(LINE, LONG_RUN)
#: RAW's kind of line, under 2000 bytes: drawn short, since filtering RAW threw most away
#: (hundreds of draws for six examples)
SHORT_RAW = raw_lines(lines(runs(150), 10), runs(300)).filter(lambda raw: len(raw) < 2000)
FORMATS = [
    COMBINED,
    COMMON,
    VHOST_COMBINED,
    '%a %{X-Forwarded-For}i %t "%r" %s %{ms}T',
    '%h %l %u [%{%d/%b/%Y %T}t] "%m %U%q %H" %>s "%{Referer}i"',
    "%{c}a %{begin:msec}t %r",
]
PG_PREFIXES = [DEBIAN_PG_PREFIX, "%m [%p] %h %q%u@%d ", "%n [%p] %r ", "%t [%p-%l] %q%a "]
_ADDRESSY = re.compile(r"[0-9A-Fa-f:.]+")


def cpu(call, *args) -> tuple[object, float]:
    started = time.thread_time()
    result = call(*args)
    return result, time.thread_time() - started


def within_budget(call, text, *args, fresh=None) -> object:
    """Call, and fail when it takes more CPU than a 16 KiB line may (measured twice before
    it counts: a busy machine can steal a slice). ``fresh()`` gives what to call the second
    time when ``call`` keeps state (a detector would count the line twice)."""
    result, spent = cpu(call, text, *args)
    allowed = BUDGET * max(1.0, len(text) / MAX_LINE)
    if spent > allowed:
        spent = min(spent, cpu(fresh() if fresh else call, text, *args)[1])
    assert spent <= allowed, f"{spent * 1000:.0f} ms for a line of {len(text)}: {text[:80]!r}"
    return result


def spelled(ip: str, line: str) -> bool:
    """Whether the line spells ``ip``, as normalise_ip reads what it spells."""
    if ip != normalise_ip(ip):
        return False
    texts = [line]
    if line.startswith("{"):  # jsonlog: the address is a JSON string
        with contextlib.suppress(ValueError, AttributeError):
            texts += [str(value) for value in json.loads(line).values()]
    for text in texts:
        for token in _ADDRESSY.findall(text):
            for candidate in (token, token.rpartition(":")[0], token.strip(":.")):
                if candidate and normalise_ip(candidate) == ip:
                    return True
    return False


@given(LINE)
@FUZZ
def test_header_parsers_never_raise(line: str):
    for parser in (SyslogParser(lambda: NOW, UTC), ApacheErrorParser(lambda: NOW, UTC)):
        header = within_budget(parser.parse, line)
        if header is not None and header.address is not None:
            assert spelled(header.address, line)
    for prefix in PG_PREFIXES:
        parser = PostgresPrefix(prefix, UTC)
        for call in (parser.parse, parser.shape, parser.head_pid):
            within_budget(call, line)
    within_budget(PostgresJson(UTC).parse, line)


@given(LINE, st.sampled_from(FORMATS))
@FUZZ
def test_access_log_parser_never_raises(line: str, log_format: str):
    request = within_budget(AccessLogParser(log_format, ["10.0.0.0/8"]).parse, line)
    if request is not None and request.client_ip is not None:
        assert spelled(request.client_ip, line)


def _check_feed(kind: str, raw: bytes, **options) -> None:
    detectors: list[Detector] = []

    def fresh():
        detectors.append(Detector(RULES, level="aggressive", tz=UTC, clock=lambda: NOW, **options))
        return detectors[-1].feed

    events = within_budget(fresh(), raw, kind, "fuzz.log", 1, fresh=fresh)
    text = raw.decode("utf-8", "replace")
    for event in events:
        assert spelled(event.ip, text), (event, raw[:200])
    assert [detector.counters.lines for detector in detectors] == [1] * len(detectors)


@given(RAW)
@FUZZ
def test_sshd_lines(raw: bytes):
    _check_feed("sshd", raw)


@given(RAW)
@FUZZ
def test_apache_error_lines(raw: bytes):
    _check_feed("apache_error", raw)


@given(RAW, st.sampled_from(FORMATS))
@FUZZ
def test_apache_access_lines(raw: bytes, log_format: str):
    _check_feed("apache_access", raw, access_log_format=log_format)


@given(RAW, st.sampled_from(PG_PREFIXES))
@FUZZ
def test_postgresql_lines(raw: bytes, prefix: str):
    _check_feed("postgresql", raw, postgres_prefix=prefix)


JSON_KEYS = ["timestamp", "pid", "remote_host", "user", "message", "error_severity", "line_num"]
JSON_VALUES = st.one_of(LINE, st.integers(), st.none(), st.lists(st.integers()))


@given(st.dictionaries(st.sampled_from(JSON_KEYS), JSON_VALUES))
@FUZZ
def test_jsonlog_records(record: dict):
    base = {
        "timestamp": "2024-01-05 10:00:00.123 UTC",
        "pid": 7,
        "session_id": "x",
        "line_num": 1,
        "error_severity": "FATAL",
        "message": 'password authentication failed for user "x"',
        "remote_host": "203.0.113.9",
    }
    line = json.dumps(base | record, ensure_ascii=False).encode("utf-8", "surrogatepass")
    _check_feed("postgresql", line, postgres_format="jsonlog")


@given(st.lists(SHORT_RAW, min_size=20, max_size=60), st.data())
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_scan_in_ranges_finds_what_one_pass_finds(tmp_path_factory, lines, data):
    """Fuzz lines between real attack lines and connection records, scanned in ranges
    of about 2 KB (so that processes straddle many of them) and in one pass."""
    from agent import scan_ranges
    from agent.bans.jails import load_jails
    from agent.scan import ScanOptions, scan

    kind = data.draw(st.sampled_from(["sshd", "postgresql"]))
    real = {
        "sshd": [
            b"Jan  5 10:00:0%d web1 sshd[%d]: Connection from 203.0.113.%d port 4 on x port 22",
            b"Jan  5 10:00:0%d web1 sshd[%d]: Disconnecting: Too many authentication failures%.0d",
        ],
        "postgresql": [
            b"2024-01-05 10:00:0%d.000 UTC [%d] [unknown]@[unknown] LOG:  connection received: "
            b"host=203.0.113.%d port=5",
            b"2024-01-05 10:00:0%d.500 UTC [%d] app@shop FATAL:  password authentication failed "
            b'for user "app"%.0d',
        ],
    }[kind]
    body = []
    for number, raw in enumerate(lines):
        pid = number % 5
        host = pid if number % 2 == 0 else 0
        body += [real[number % 2] % (number % 10, pid, host), raw.replace(b"\n", b" ")]
    log = tmp_path_factory.mktemp("fuzz") / f"{kind}.log"
    log.write_bytes(b"\n".join(body) + b"\n")
    options = ScanOptions(
        rules=RULES, jails=load_jails(rule_ids=[r.id for r in RULES]), kind=kind,
        keep_events=True,
    )  # fmt: skip
    serial = scan([str(log)], options)
    saved = scan_ranges.PARALLEL_MIN_BYTES, scan_ranges.RANGE_BYTES, scan_ranges.BLOCK_SIZE
    scan_ranges.PARALLEL_MIN_BYTES, scan_ranges.RANGE_BYTES, scan_ranges.BLOCK_SIZE = 1, 2003, 512
    try:
        parallel = scan([str(log)], options)
    finally:
        scan_ranges.PARALLEL_MIN_BYTES, scan_ranges.RANGE_BYTES, scan_ranges.BLOCK_SIZE = saved
    assert [e for _, e in parallel.events] == [e for _, e in serial.events]
    assert parallel.counters == serial.counters
