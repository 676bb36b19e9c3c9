"""Attack and benign corpora (tests/fixtures/web) placed in access-log lines, and the
recall / false-positive measurement that tests assert on and bench/injection.py prints.

Attack payloads go into a query parameter the way a browser sends a form (already
URL-encoded payload lists are sent as they are); CRS regression requests keep their URI,
User-Agent and Referer, and a request body moves into the query, since an access log
never shows bodies. Every line then goes through the real parser and ``inspect``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

from agent.detect.http import AccessLogParser
from agent.detect.injection import inspect

WEB = Path(__file__).resolve().parent / "fixtures" / "web"
FREE_TEXT = Path(__file__).resolve().parent / "fixtures" / "detect" / "benign-free-text.tsv"
SCANNER_PROBES = Path(__file__).resolve().parent / "fixtures" / "detect" / "scanner-probes.tsv"
#: How benign-free-text.tsv writes a line break (a textarea sends CR LF).
LINE_BREAK = "\u23ce"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CRS_AGENT = "OWASP CRS test agent"
#: Which of our families count as catching an attack of each corpus.
ACCEPTED = {
    "sqli": {"sqli"},
    "xss": {"xss"},
    "traversal": {"traversal"},
    "lfi": {"traversal", "lfi_rfi"},
    "cmdi": {"cmdi", "shellshock"},
    "913": {"scanner"},
    "930": {"traversal", "lfi_rfi", "sensitive_file"},
    "932": {"cmdi", "shellshock", "jndi"},
    "941": {"xss"},
    "942": {"sqli"},
    "crlf": {"crlf"},
    "control_bytes": {"control_bytes"},
    "sqli_probe": {"sqli_probe", "sqli"},
    "foreign_product": {"foreign_product"},
    "scanner": {"scanner"},
}
#: The probe families, measured on probe_samples().
PROBE_FAMILIES = ("crlf", "control_bytes", "sqli_probe", "foreign_product", "scanner")
#: Families and the sets whose recall they are judged by: the payload lists and CRS's
#: paranoia-level-1 tests of the injection families, the probe sets of the others.
FAMILY_SETS = {
    "sqli": ("payloads:sqli", "crs-pl1:942"),
    "xss": ("payloads:xss", "crs-pl1:941"),
    "traversal and file inclusion": ("payloads:traversal", "payloads:lfi", "crs-pl1:930"),
    "cmdi": ("payloads:cmdi", "crs-pl1:932"),
    "scanner": ("crs-pl1:913", "probes:scanner"),
    **{family: (f"probes:{family}",) for family in PROBE_FAMILIES if family != "scanner"},
}
#: Goals: recall of every family, false positives of every benign set and of all together.
RECALL_GOAL = 0.95
FALSE_POSITIVE_GOAL = 0.005
# A byte no one types, once a payload's percent escapes are undone (tab, CR, LF excepted).
_CONTROL_BYTE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SECOND_HALF = re.compile(r"(?<=[\xc0-\xff]).")
_PERCENT_ESCAPE = re.compile(r"%(?:[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4})")
_MULTIPART_PART = re.compile(
    r'Content-Disposition: form-data; name="([^"]*)"(?:; filename="([^"]*)")?[^\n]*\n'
    r"(?:[^\n]+\n)*\n(.*?)(?=\n--|\Z)",
    re.DOTALL,
)
_BORING_URIS = {"/", "/get", "/post", "/anything", "/index.html"}
#: CRS "must not fire" rows that are attacks aimed at a sibling rule (their description or
#: payload says so), or requests CRS's own protocol rules reject, not benign traffic: left
#: out of the benign set.
CRS_NOT_BENIGN: dict[tuple[int, int], str] = {
    (932310, 8): "the control byte %02 ('is%020not', a typo for %20) that CRS 920271 rejects",
    (932320, 7): "the control byte %10 ('top%10%20rules') that CRS 920271 rejects",
    (930110, 7): "path traversal /../ (the rule misses it because httpd strips dots)",
    (932200, 13): "command injection ;/bin/ca? /et*/passwd",
    (932207, 3): "command injection in the Referer (';/bin/ca? /et*/passwd')",
    **{
        (932230, test): "command injection (system(...), ;/bin/bash, /etc/passwd) wrapped in"
        " HTML entities, or backticks around commands"
        for test in (1, 2, 9, 10, 11, 12, 14, 15, 16, 18, 19, 20, 21, 23, 26, 27, 46)
    },
    (932250, 1): "tar -xzf /var/www/exfiltrate.tar.gz /etc",
    **{
        (932260, test): "command injection time curl coreruleset.org (a bug-bounty finding),"
        " plain and with ti''me quoting"
        for test in (14, 15)
    },
    **{
        (932271, test): "tilde expansion ~+ / ~- that sibling rule 932270 detects"
        for test in (5, 6)
    },
    (932250, 2): "tar -xzf /var/www/exfiltrate.tar.gz /etc after text",
    (932260, 1): 'bash -c "echo test"',
    (932260, 3): "tar -xzf /var/www/exfiltrate.tar.gz /etc after text",
    (941100, 5): "<script> with setTimeout and a javascript: URL",
    (941110, 10): "script tags written in bytes a US-ASCII page reads as < and > around"
    " alert(1) (sibling rule 941310's attack)",
    (941140, 14): "url(javascript:alert(1))",
    (942160, 12): "blind SQLi BENCHMARK(...) in the path (syntax too broken for that rule)",
    (942350, 9): "MySQL INSERT injection with comment evasion",
    (942360, 30): "'||(select(pg_sleep(15))where(true))||'",
    (942360, 29): "Oracle out-of-band SQLi probe ||(SELECT(DBMS_LDAP.INIT('169.1.1.1',19))"
    "FROM(DUAL)), a scanner payload whatever that rule's test calls it",
    (942360, 31): "UNION ALL SELECT NULL,NULL,CONCAT(...)",
    (942521, 15): "\\'lol' or '1 (escaped-quote SQLi)",
    (942522, 5): "'or'1 (the description: 'doesn't block normal SQLi')",
}


@dataclass(frozen=True)
class Sample:
    corpus: str  # key of ACCEPTED, or the benign set's name
    line: str
    origin: str  # where the sample came from, for reading a miss


@dataclass
class Score:
    """Outcome of one set: ``hits`` are the samples flagged (caught attacks, or false
    positives on a benign set), ``families`` counts the families that fired."""

    name: str
    total: int = 0
    hits: int = 0
    misses: list[Sample] = field(default_factory=list)
    flagged: list[tuple[Sample, str]] = field(default_factory=list)
    families: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.hits / self.total if self.total else 0.0


def log_line(target: str, user_agent: str = BROWSER, referer: str = "", method: str = "GET") -> str:
    """A combined-format line as Apache writes it (quotes, backslashes, bytes escaped)."""
    request = f"{method} {target} HTTP/1.1"
    return (
        f'198.51.100.23 - - [01/Jan/2025:10:00:00 +0000] "{apache_escape(request)}" 200 512 '
        f'"{apache_escape(referer) or "-"}" "{apache_escape(user_agent) or "-"}"'
    )


def apache_escape(text: str) -> str:
    """mod_log_config's escaping: ``"`` and ``\\`` backslashed, other bytes as ``\\xhh``."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def as_query_value(payload: str) -> str:
    """A payload as a client puts it in a query: characters a URL cannot hold are
    percent-encoded, space as ``+``; a payload that is already encoded keeps its ``%XX``
    escapes, and one without spaces keeps its ``+`` (there it already means a space)."""
    safe = "-._~!$'()*,;:@/?="
    if _PERCENT_ESCAPE.search(payload):
        safe += "%"
    if " " not in payload:
        safe += "+"
    return quote_plus(payload, safe=safe, encoding="utf-8", errors="surrogateescape")


@cache
def payload_samples() -> tuple[Sample, ...]:
    samples = []
    for row in _jsonl(WEB / "attack_payloads.jsonl"):
        payload = row["payload"]
        intruder_list = not row["source"].startswith("libinjection/")
        if row["corpus"] == "sqli" and intruder_list and not payload[:1].isalnum():
            payload = "1" + payload  # a continuation: intruder lists append it to a value
        target = "/index.php?id=" + as_query_value(payload)
        samples.append(Sample(row["corpus"], log_line(target), row["source"]))
    return tuple(samples)


@cache
def probe_samples() -> tuple[Sample, ...]:
    """Probes scanners send: CRLF payloads (in the path or a redirect parameter, where the
    list puts them) and SQL error probes from probe_payloads.jsonl; the payloads of the
    attack lists that carry a control byte (their escapes undone by urllib, not by the
    detector's decoder); the hand-written scanner-probes.tsv."""
    samples = []
    for row in _jsonl(WEB / "probe_payloads.jsonl"):
        payload = row["payload"]
        if row["place"] == "path":
            target = payload
        elif row["corpus"] == "crlf":
            target = "/redirect.php?url=" + as_query_value(payload)
        else:
            prefix = "" if payload[:1].isalnum() else "1"
            target = "/index.php?id=" + as_query_value(prefix + payload)
        samples.append(Sample(row["corpus"], log_line(target), row["source"]))
    for sample in payload_samples():
        if _CONTROL_BYTE.search(_unquoted(sample.line)):
            samples.append(Sample("control_bytes", sample.line, sample.origin))
    for line in _lines(SCANNER_PROBES):
        family, target, user_agent, source = line.split("\t")
        agent = BROWSER if user_agent == "-" else user_agent
        samples.append(Sample(family, log_line(target, agent), source))
    return tuple(samples)


def _unquoted(line: str) -> str:
    """The request of a line with its percent escapes undone (three rounds, by urllib),
    as Latin-1; a byte after one of 0xC0-0xFF is dropped: it is the second half of a
    two-byte sequence (``%c1%1c`` is a lenient decoder's backslash), no byte of its own."""
    request = line.split('"')[1]
    for _ in range(3):
        request = unquote(request, encoding="latin-1")
    return _SECOND_HALF.sub("", request)


@cache
def crs_rows() -> tuple[dict, ...]:
    return tuple(_jsonl(WEB / "crs_requests.jsonl"))


def crs_visible(row: dict) -> bool:
    """Whether an access log shows anything of the test's payload at all: payloads in a
    Cookie or another header never reach it, so a test that sends such a header counts
    only when its query, body, User-Agent or Referer carries something (its path alone,
    ``/get/baz``, is then just where the header was sent)."""
    shown = bool(
        row["data"]
        or "?" in row["uri"]
        or row["referer"]
        or row["user_agent"] not in ("", CRS_AGENT)
    )
    return shown or (not row["hidden_headers"] and row["uri"] not in _BORING_URIS)


def crs_line(row: dict) -> str:
    target = row["uri"]
    body = _multipart_fields(row["data"].strip("\r\n"))
    if body:
        if body[:1] in "{[<" or "=" not in body:
            body = "body=" + quote_plus(body, encoding="utf-8", errors="surrogateescape")
        else:
            body = quote(body, safe="=&%+;,/?:@!$'()*~-._", errors="surrogateescape")
        target += ("&" if "?" in target else "?") + body
    return log_line(target, row["user_agent"] or BROWSER, row["referer"])


def _multipart_fields(body: str) -> str:
    """A multipart/form-data body as the form fields it sends (each part's name and
    content, and its file name), form-encoded: its boundaries and part headers are no
    request text an access log could show. Any other body is returned as it is."""
    if not body.startswith("--") or "Content-Disposition" not in body:
        return body
    fields = []
    for name, filename, content in _MULTIPART_PART.findall(body):
        fields.append(f"{quote_plus(name)}={quote_plus(content.strip(), errors='surrogateescape')}")
        if filename:
            fields.append(f"filename={quote_plus(filename, errors='surrogateescape')}")
    return "&".join(fields)


@cache
def crs_samples(label: str, pl1_only: bool = False) -> tuple[Sample, ...]:
    """CRS requests with an attack (label "attack") or benign ones ("negative"); with
    ``pl1_only`` only the tests of paranoia-level-1 rules (CRS's default level)."""
    samples = []
    for row in crs_rows():
        key = (row["rule"], row["test"])
        if row["label"] != label or not crs_visible(row) or key in CRS_NOT_BENIGN:
            continue
        if pl1_only and not row["pl1"]:
            continue
        corpus = str(row["rule"])[:3] if label == "attack" else "crs-negatives"
        samples.append(Sample(corpus, crs_line(row), f"CRS {key[0]}-{key[1]} {row['desc']}"))
    return tuple(samples)


@cache
def benign_sets() -> dict[str, tuple[Sample, ...]]:
    access = (WEB / "access_elastic.log").read_text(encoding="utf-8", errors="surrogateescape")
    uris = _lines(WEB / "benign_query_uris.txt")
    values = _lines(WEB / "libinjection_false_positives.txt")
    return {
        "elastic-access-log": tuple(
            Sample("elastic-access-log", line, "elastic") for line in access.splitlines()
        ),
        "elastic-query-uris": tuple(Sample("elastic-query-uris", log_line(u), u) for u in uris),
        "libinjection-false-positives": tuple(
            Sample("libinjection-false-positives", log_line("/search?q=" + as_query_value(v)), v)
            for v in values
        ),
        "crs-negatives": crs_samples("negative"),
        "free-text": tuple(
            Sample(
                "free-text", log_line("/search?q=" + as_query_value(value)), f"{family}: {value}"
            )
            for value, family, _ in free_text_rows()
        ),
    }


@cache
def free_text_rows() -> tuple[tuple[str, str, str], ...]:
    """(value, family it could be mistaken for, why it is benign) of benign-free-text.tsv,
    line breaks made real."""
    rows = []
    for line in _lines(FREE_TEXT):
        value, family, why = line.split("\t")
        rows.append((value.replace(LINE_BREAK, "\r\n"), family, why))
    return tuple(rows)


def score(name: str, samples: Iterable[Sample], accepted: set[str] | None = None) -> Score:
    """Run samples through the parser and inspect(); with ``accepted`` count the samples
    caught by one of those families, without it count every sample flagged at all."""
    parser = AccessLogParser()
    result = Score(name)
    for sample in samples:
        request = parser.parse(sample.line)
        if request is None:
            raise AssertionError(f"corpus line does not parse: {sample.line!r}")
        findings = inspect(request)
        result.total += 1
        result.families.update({f.family for f in findings})
        relevant = [f for f in findings if accepted is None or f.family in accepted]
        if relevant:
            result.hits += 1
            result.flagged.append((sample, f"{relevant[0].family}: {relevant[0].evidence}"))
        else:
            result.misses.append(sample)
    return result


def attack_scores() -> list[Score]:
    scores = []
    for corpus in ("sqli", "xss", "traversal", "lfi", "cmdi"):
        samples = [s for s in payload_samples() if s.corpus == corpus]
        scores.append(score(f"payloads:{corpus}", samples, ACCEPTED[corpus]))
    for category in ("913", "930", "932", "941", "942"):
        samples = [s for s in crs_samples("attack", pl1_only=True) if s.corpus == category]
        scores.append(score(f"crs-pl1:{category}", samples, ACCEPTED[category]))
    for category in ("913", "930", "932", "941", "942"):
        samples = [s for s in crs_samples("attack") if s.corpus == category]
        scores.append(score(f"crs:{category}", samples, ACCEPTED[category]))
    for family in PROBE_FAMILIES:
        samples = [s for s in probe_samples() if s.corpus == family]
        scores.append(score(f"probes:{family}", samples, ACCEPTED[family]))
    return scores


def family_totals(attacks: dict[str, Score]) -> dict[str, tuple[int, int]]:
    """family -> (caught, samples) over the sets it is judged by (FAMILY_SETS)."""
    return {
        family: (
            sum(attacks[name].hits for name in names),
            sum(attacks[name].total for name in names),
        )
        for family, names in FAMILY_SETS.items()
    }


def benign_scores() -> list[Score]:
    return [score(name, samples) for name, samples in benign_sets().items()]


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
