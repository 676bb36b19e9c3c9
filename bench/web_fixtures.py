"""Rebuild tests/fixtures/web from ../shared/data: deterministic samples of the copyable
attack and benign sets (see tests/fixtures/web/SOURCE.txt for what and why).

    .venv/bin/python bench/web_fixtures.py

Only sets whose licence allows copying are read (libinjection, CRS regression tests,
PayloadsAllTheThings, fuzzdb, SecLists, elastic's access log); the output is what the
tests and bench/injection.py read, so neither needs ../shared/data.
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "tests" / "fixtures" / "web"

#: Lines kept from one source file at most (every k-th line, so the sample spans it).
PER_FILE_CAP = 300
#: Every k-th line of elastic's 10,000-line access log is kept.
ACCESS_LOG_STEP = 4
#: Placeholders in the payload lists, filled with values that help no detector: a
#: traversal must be found by its dot-dots, not by a well-known target file.
PLACEHOLDERS = {"{FILE}": "app/config.inc", "{cmd}": "uname -a", "__TIME__": "5"}
#: A line shorter than this, one bare word, or the encoding of one character (its URL,
#: HTML and JavaScript escapes undone) is an error probe (``'``, ``|``, ``&#x3c;``,
#: ``\\u003c``, ``desc``) or an attribute name (``onload``), not an injection: the lists
#: hold all of these.
MIN_PAYLOAD = 4
_BARE_WORD = re.compile(r"[\w-]+")
_JS_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4}))")
#: Request headers an access log shows, or that carry no payload in CRS's tests; a test
#: with another header (Cookie, Authorization, X-...) may hide its payload there.
_SHOWN_HEADERS = frozenset(
    [
        "host",
        "user-agent",
        "referer",
        "accept",
        "accept-encoding",
        "accept-language",
        "accept-charset",
        "content-type",
        "content-length",
        "connection",
        "cache-control",
        "keep-alive",
        "proxy-connection",
        "pragma",
        "te",
        "upgrade-insecure-requests",
    ]
)
#: CRS rules of paranoia level 1 among those the regression tests exercise, from the
#: ``paranoia-level/1`` tags of coreruleset's rules/REQUEST-9xx-*.conf (v4.21 to v4.31
#: development versions, 2025-2026); every other tested rule is level 2 to 4.
CRS_PL1_RULES = frozenset(
    {
        913100,
        930100,
        930110,
        930120,
        930130,
        930140,
        932120,
        932125,
        932130,
        932140,
        932160,
        932170,
        932171,
        932175,
        932180,
        932230,
        932235,
        932250,
        932260,
        932261,
        932270,
        932280,
        932330,
        932370,
        932380,
        941100,
        941110,
        941120,
        941130,
        941140,
        941160,
        941170,
        941180,
        941190,
        941200,
        941210,
        941220,
        941230,
        941240,
        941250,
        941260,
        941270,
        941280,
        941290,
        941300,
        941310,
        941350,
        941360,
        941370,
        941390,
        941400,
        942100,
        942140,
        942151,
        942160,
        942170,
        942190,
        942220,
        942230,
        942240,
        942250,
        942270,
        942280,
        942290,
        942320,
        942350,
        942360,
        942500,
        942540,
        942550,
        942560,
    }
)

PAT = "payloads/PayloadsAllTheThings"
FUZZDB = "payloads/fuzzdb/attack"
# corpus -> source globs (relative to SHARED). Left out on purpose, as they hold no
# attacks: lists of bare command names, bare event-attribute names, bare shell
# operators, the encodings of "<" alone, PAT's Web-files.txt (robots.txt, style.css), and
# PAT's MarioXSSVectors.txt (multi-line vectors cut into lines: each line a fragment).
CORPORA: dict[str, list[str]] = {
    "sqli": [
        "libinjection/data/sqli-*.txt",
        "payloads/SecLists/Generic-SQLi.txt",
        f"{PAT}/SQL_Injection/Intruder/*",
        f"{FUZZDB}/sql-injection/*/*.txt",
    ],
    "xss": [
        "libinjection/data/xss-*.txt",
        *(
            f"{PAT}/XSS_Injection/Intruders/{name}.txt"
            for name in (
                "BRUTELOGIC-XSS-JS",
                "BRUTELOGIC-XSS-STRINGS",
                "IntrudersXSS",
                "JHADDIX_XSS",
                "RSNAKE_XSS",
                "XSSDetection",
                "XSS_Polyglots",
                "jsonp_endpoint",
                "xss_alert",
                "xss_alert_identifiable",
                "xss_payloads_quick",
                "xss_swf_fuzz",
            )
        ),
        f"{FUZZDB}/xss/XSSPolyglot.txt",
        f"{FUZZDB}/xss/xss-other.txt",
        f"{FUZZDB}/xss/xss-rsnake.txt",
        f"{FUZZDB}/xss/xss-uri.txt",
    ],
    "traversal": [
        f"{PAT}/Directory_Traversal/Intruder/*.txt",
        f"{FUZZDB}/path-traversal/*.txt",
        f"{PAT}/File_Inclusion/Intruders/Traversal.txt",
        f"{PAT}/File_Inclusion/Intruders/dot-slash-PathTraversal_and_LFI_pairing.txt",
    ],
    "lfi": [
        f"{PAT}/File_Inclusion/Intruders/BSD-files.txt",
        f"{PAT}/File_Inclusion/Intruders/JHADDIX_LFI.txt",
        f"{PAT}/File_Inclusion/Intruders/LFI-FD-check.txt",
        f"{PAT}/File_Inclusion/Intruders/LFI-WindowsFileCheck.txt",
        f"{PAT}/File_Inclusion/Intruders/Linux-files.txt",
        f"{PAT}/File_Inclusion/Intruders/List_Of_File_To_Include*.txt",
        f"{PAT}/File_Inclusion/Intruders/Mac-files.txt",
        f"{PAT}/File_Inclusion/Intruders/Windows-files.txt",
        f"{PAT}/File_Inclusion/Intruders/php-filter-iconv.txt",
        f"{PAT}/File_Inclusion/Intruders/simple-check.txt",
        f"{FUZZDB}/lfi/*.txt",
    ],
    "cmdi": [
        f"{PAT}/Command_Injection/Intruder/*.txt",
        f"{FUZZDB}/os-cmd-execution/command-execution-unix.txt",
        f"{FUZZDB}/os-cmd-execution/command-injection-template.txt",
        f"{FUZZDB}/os-cmd-execution/OSCommandInject.Windows.txt",
        f"{FUZZDB}/os-cmd-execution/source-disc-cmd-exec-traversal.txt",
    ],
}
#: Probe lists: (corpus, where a scanner puts the payload, source glob).
PROBES: list[tuple[str, str, str]] = [
    ("crlf", "path", f"{PAT}/CRLF_Injection/Files/crlfinjection.txt"),
    ("crlf", "query", f"{FUZZDB}/http-protocol/crlf-injection.txt"),
    *(("sqli_probe", "query", pattern) for pattern in CORPORA["sqli"]),
]
#: An error probe: at most one letter or digit, then only characters that break a SQL
#: literal or call (``'``, ``1"``, ``')``, ``\``); the payload lists hold them among the
#: injections, and attack_payloads.jsonl leaves them out as too short.
_ERROR_PROBE = re.compile(r"[\w]?['\"`\\()]{1,3}")
_LINE_BREAK_THEN_TEXT = re.compile(r"[\r\n][^\r\n]*[A-Za-z<]")
LICENSES = {
    "libinjection-COPYING.txt": "libinjection/COPYING",
    "coreruleset-LICENSE.txt": "crs_regression/LICENSE",
    "PayloadsAllTheThings-LICENSE.txt": f"{PAT}/LICENSE",
    "fuzzdb-copyright.txt": "payloads/fuzzdb/_copyright.txt",
    "elastic-examples-LICENSE.txt": "apache_access/LICENSE.elastic-examples",
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "licenses").mkdir(exist_ok=True)
    for name, source in LICENSES.items():
        shutil.copyfile(SHARED / source, OUT / "licenses" / name)
    log = (SHARED / "apache_access/elastic_examples_apache_logs.log").read_bytes().splitlines()
    (OUT / "access_elastic.log").write_bytes(b"\n".join(log[::ACCESS_LOG_STEP]) + b"\n")
    shutil.copyfile(
        SHARED / "apache_access/benign_urls_with_query_from_elastic.txt",
        OUT / "benign_query_uris.txt",
    )
    shutil.copyfile(
        SHARED / "libinjection/data/false_positives.txt",
        OUT / "libinjection_false_positives.txt",
    )
    units = OUT / "libinjection-sqli-tests"
    units.mkdir(exist_ok=True)
    for path in sorted(SHARED.glob("libinjection/tests/test-sqli-*.txt")):
        shutil.copyfile(path, units / path.name)
    with (OUT / "attack_payloads.jsonl").open("w", encoding="utf-8") as out:
        for corpus, globs in CORPORA.items():
            for pattern in globs:
                for path in sorted(SHARED.glob(pattern)):
                    source = str(path.relative_to(SHARED))
                    for payload in _sample(_payloads(path, corpus)):
                        row = {"corpus": corpus, "source": source, "payload": payload}
                        out.write(json.dumps(row) + "\n")
    with (OUT / "probe_payloads.jsonl").open("w", encoding="utf-8") as out:
        for row in _probe_rows():
            out.write(json.dumps(row) + "\n")
    with (OUT / "crs_requests.jsonl").open("w", encoding="utf-8") as out:
        for row in _crs_rows():
            out.write(json.dumps(row) + "\n")


def _payloads(path: Path, corpus: str) -> list[str]:
    """Payload lines (no blanks, comments, probes); bytes that are not UTF-8 survive as
    surrogates. Command lists write a newline as the two characters ``\\n``."""
    lines = []
    for raw in path.read_bytes().splitlines():
        line = raw.decode("utf-8", "surrogateescape").rstrip("\r")
        bare = line.strip()
        if len(bare) < MIN_PAYLOAD or _BARE_WORD.fullmatch(bare) or line.startswith("#"):
            continue
        if len("".join(_unescaped(bare).split())) < 2:
            continue
        for placeholder, value in PLACEHOLDERS.items():
            line = line.replace(placeholder, value)
        if corpus == "cmdi":
            line = line.replace("\\n", "\n")
        lines.append(line)
    return lines


def _probe_rows() -> list[dict[str, str]]:
    """CRLF payloads that inject something after their line break (a bare ``%0d%0a``, or
    the escapes written out, ``0x0D0x0A``, is a fuzzing building block, left out), and
    the SQL error probes of the SQL lists, once each."""
    rows, seen = [], set()
    for corpus, place, pattern in PROBES:
        for path in sorted(SHARED.glob(pattern)):
            source = str(path.relative_to(SHARED))
            for raw in path.read_bytes().splitlines():
                payload = raw.decode("utf-8", "surrogateescape").strip()
                if corpus == "crlf":
                    keep = _LINE_BREAK_THEN_TEXT.search(_fully_unquoted(payload)) is not None
                else:
                    keep = _ERROR_PROBE.fullmatch(payload) is not None
                if keep and (corpus, payload) not in seen:
                    seen.add((corpus, payload))
                    rows.append(
                        {"corpus": corpus, "place": place, "source": source, "payload": payload}
                    )
    return rows


def _fully_unquoted(text: str) -> str:
    for _ in range(3):
        text = unquote(text, errors="surrogateescape")
    return text


def _unescaped(text: str) -> str:
    """What a probe stands for: URL, HTML-entity and JavaScript escapes undone."""
    text = html.unescape(unquote(text, errors="surrogateescape"))
    return _JS_ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), text)


def _sample(lines: list[str]) -> list[str]:
    step = max(1, math.ceil(len(lines) / PER_FILE_CAP))
    return lines[::step]


def _crs_rows() -> list[dict[str, object]]:
    """One row per CRS regression test, with what an access log can show of it."""
    rows = []
    for path in sorted(SHARED.glob("crs_regression/REQUEST-9*/*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in document["tests"]:
            stage = test["stages"][0]
            given = stage.get("input", {})
            headers = {str(k).lower(): str(v) for k, v in (given.get("headers") or {}).items()}
            log = (stage.get("output") or {}).get("log") or {}
            rows.append(
                {
                    "rule": document["rule_id"],
                    "test": test["test_id"],
                    "pl1": document["rule_id"] in CRS_PL1_RULES,
                    "label": "attack" if log.get("expect_ids") else "negative",
                    "desc": " ".join(str(test.get("desc", "")).split())[:200],
                    "method": given.get("method", "GET"),
                    "uri": given.get("uri", "/"),
                    "data": str(given.get("data") or ""),
                    "user_agent": headers.get("user-agent", ""),
                    "referer": headers.get("referer", ""),
                    "hidden_headers": sorted(set(headers) - _SHOWN_HEADERS),
                    "encoded_request": "encoded_request" in given,
                }
            )
    return rows


if __name__ == "__main__":
    main()
