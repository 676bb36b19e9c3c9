"""SQL injection in one value: libinjection in every context the value can land in, and
the SQL it lets pass (statements, catalog names, SQL-only functions, tautologies).

libinjection judges a value as the start of an expression, and as the rest of a
single-quoted literal. A value is also judged as the rest of a MySQL double-quoted string
(there, a quoted word next to another is English: only a boolean, UNION, comment or
statement structure counts) and, when it opens with a boolean operator or UNION
(``or 1=1--``), as the continuation of a numeric comparison (``1 or 1=1--``), which is
where the application puts it. Patterns are linear: no nested quantifiers, bounded gaps.

A verdict is conclusive when two witnesses agree: libinjection's fingerprint (the value
parses as SQL) and one of our markers of injection mechanics (a quote breaking out, a
tautology, ``UNION SELECT``, stacked statements, delays, catalogs, SQL-only functions).
SQL words alone (``select x from y where``) are what people type into a search box.
"""

from __future__ import annotations

import re

from agent.detect.injection import libinj, prose
from agent.detect.injection.decode import strip_comments
from agent.detect.injection.value import Value, Verdict

__all__ = ["nosql", "sqli"]

# Fingerprint tokens that make a double-quote-context verdict more than quoted English.
_STRUCTURE = frozenset("U;c")
_CONTINUATION = re.compile(r"\s*(?:(?:and|or|xor|union)\b|&&|\|\|)")

# MongoDB query operators in a parameter name (``id[$ne]=1``) or a JSON key (``{"$where":``).
_NOSQL_OPERATORS = (
    r"ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|not|nor|or|and|elemmatch|text|expr|type"
    r"|size|all|mod|jsonschema"
)
_NOSQL_BRACKET = rf"\[\s*\$(?:{_NOSQL_OPERATORS})\s*\]"
# Functions no text calls but SQL: a call is an injection even with whitespace before "(".
_SQL_ONLY_CALLS = (
    r"group_concat|concat_ws|concat|substring_index|substring|substr|unhex|sha1|sha2|ifnull"
    r"|nullif|coalesce|isnull|iif|user_name|suser_s?name|json_extract|json_keys|json_object"
    r"|json_build_object|jsonb?_pretty|row_to_json|xmltype|name_const|make_set|find_in_set"
    r"|randomblob|zeroblob|sqlite_version|sqlite_compileoption_(?:used|get)|lo_import"
    r"|lo_export|lo_get"
    r"|pg_read_file|pg_ls_dir|pg_sleep|benchmark|load_file|extractvalue|updatexml|unistr"
    r"|starts_with|char_length|utl_http\.request|utl_inaddr\.get_host_\w+"
    r"|dbms_pipe\.receive_message|dbms_xmlgen\.\w+|procedure\s+analyse"
)
# SQL functions whose names are words too ("sin(x)", "Sleep_(film)"): only a call glued to
# its "(" whose argument starts like SQL (a number, quote, "@", a nested call, nothing)
# counts.
_WORDLIKE_CALLS = (
    r"cast|convert|compress|uncompress|char|chr|ascii|hex|md5|mid|ord|rand|floor|pow|sin"
    r"|cos|trim|rtrim|ltrim|insert|decode|encode|strcmp|elt"
)
_SQL_ARGUMENT = r"\s*(?:[\d'\"@(*)`]|$|select\b|[a-z_]\w{0,30}\s*\()"
# Functions SQL calls without arguments: "user()" is SQL, "User(login_name)" a field list.
_NO_ARGUMENT_CALLS = (
    r"database|schema|version|user|current_user|session_user|system_user|db_name|sysdate"
)
# Statements and clauses that free text does not hold (a value that merely starts with
# one holds no way into a query: prose.starts_a_bare_statement).
_STATEMENT_HINTS = (
    "select",
    "union",
    "drop",
    "truncate",
    "alter",
    "create",
    "insert",
    "replace",
    "delete",
    "update",
    "copy",
    "declare",
    "exec",
    "case",
    "having",
    "as",
)
_STATEMENTS = re.compile(
    r"\bunion\b[\s(]{1,40}(?:all\s+|distinct\s+)?select\b"
    r"|\b(?:drop|truncate|alter|create)\s+(?:table|database|schema|view|user|function"
    r"|procedure|trigger|index|role|login)\s+[\w`\"\[]"
    r"|\binsert\s+(?:ignore\s+)?into\s+[\w`\"\[]|\breplace\s+into\s+[\w`\"\[]"
    r"|\bdelete\s+from\s+[\w`\".\[\]]{1,64}\s*(?:where\b|;|--|#|$)"
    r"|\bupdate\s+[\w`\".\[\]]{1,64}\s+set\s+[\w`\".\[\]]{1,64}\s*="
    r"|\bcreate\s+function\b.{1,120}?\breturns\b"
    r"|\bselect\s+(?:\*|null\b|@@?\w|\d+\s*,"
    r"|(?:if|benchmark|sleep|pg_sleep|case|char)\s*\()"
    r"|\bselect\s+[\w.`\"]{1,64}\s+from\s+[\w.`\"]{1,64}\s*(?:where\b|limit\b|;|--|#|$)"
    r"|;\s*(?:declare\s*@|exec(?:ute)?\s*[(@]|truncate\s*(?:table\b|\[)"
    r"|(?:if|benchmark|sleep)\s*\("
    r"|select\s+(?:\*|@@|null\b|\d|[\w.]{1,64}\s*(?:,|\(|from\b)))"
    r"|\bcopy\s+[\w.]{1,64}(?:\s*\([^)]{0,80}\))?\s+(?:from|to)\s+(?:program\s+)?['\"]?/"
    r"|\bdeclare\s*@\w|\bexec(?:ute)?\s*\(\s*@|\bexec(?:ute)?\s+(?:master\.|xp_|sp_)"
    r"|\bexecute\s+immediate\b|\balter\s+\w{1,30}.{0,60}?\bchar(?:acter)?\s+set\s+\w"
    r"|\bcase\s+when\s+\S.{0,80}?\s+then\b|\bselect\b.{1,100}?\bhaving\s+\S{1,40}\s*[^\s\w]"
    r"|[\w'\")`]\s*\bas\s*['\"`][^'\"`]{1,40}['\"`]\s*from(?:\s+\w|\s*$)"
    r"|['\"`][\s;]{0,20}(?:select|having|union\s+(?:all|distinct|select))\b\s*[^\s'\"`]"
)
# SQL that libinjection lets pass, in groups: a group's regex runs only when the text holds
# one of its hints, so an ordinary value costs a few substring tests. The third member
# says whether the group matches SQL words people also write (statements): such a match
# shows injection mechanics only with a quote, a semicolon or UNION in it.
_MARKER_GROUPS: tuple[tuple[tuple[str, ...], re.Pattern[str], bool], ...] = (
    (  # time delays, file and OS access
        ("waitfor", "sleep", "benchmark", "xp_", "sp_", "into", "shutdown"),
        re.compile(
            r"\bwaitfor\s+(?:delay|time)\s*(?:['\"`]|\d)|\bselect\s+pg_sleep\b"
            rf"|\b(?:sleep|pg_sleep)\s*\({_SQL_ARGUMENT}|\bbenchmark\s*\([^)]{{0,80}},"
            r"|\bxp_(?:cmdshell|regread|dirtree|fileexist)\b"
            r"|\bsp_(?:executesql|oacreate|configure|makewebtask)\b|\binto\s+(?:out|dump)file\b"
            r"|;\s*shutdown\s*(?:[#;{]|/\*|--|$)"
        ),
        False,
    ),
    (  # catalogs and system tables
        (
            "schema",
            "sys",
            "mysql.",
            "pg_",
            "master.",
            "all_tab",
            "dba_",
            "rdb$",
            "tempdb",
            "msdb",
            "northwind",
            "sqlite",
            "@@",
        ),
        re.compile(
            r"\binformation_schema\b|\bsysibm\.|\bsys\.(?:objects|tables|columns|databases)\b"
            r"|\bmysql\.(?:user|db)\b|\bpg_(?:shadow|user|group|catalog|tables|database|roles"
            r"|authid|stat_activity|settings|proc|namespace|class|attribute)\b|\bsysobjects\b"
            r"|\bsyscolumns\b|\bsysusers\b|\bsysdatabases\b|\bmaster\.\.\w"
            r"|\ball_tab(?:les|_columns)\b|\bdba_users\b|\brdb\$"
            r"|\b(?:tempdb|msdb|northwind|sqlite_(?:temp_)?master|syscat\.\w+)\b"
            r"|\bmsys(?:accessobjects|accessstorage|accessxml|aces|modules2?|objects|queries"
            r"|relationships)\b|@@(?:version|servername|hostname|datadir|basedir"
            r"|microsoftversion|spid|global\.\w+)\b"
        ),
        False,
    ),
    (  # function calls and parenthesised SQL
        ("(",),
        re.compile(
            rf"\b(?:{_SQL_ONLY_CALLS})\s*\(|\b(?:{_WORDLIKE_CALLS})\({_SQL_ARGUMENT}"
            rf"|\b(?:{_NO_ARGUMENT_CALLS})\s*\(\s*(?:\)|$)"
            r"|\bchar\s*\(\s*\d+\s*,|\bdiv\s*\(\s*[-+]?[\d.\s]{1,20},\s*[-+]?[\d.\s]{1,20}\)"
            r"|\)\s*like\s*\(|\bif\s*\(\s*[\w'\"]{1,40}\s*[=<>!]"
            r"|\bmerge\b.{1,60}?\busing\s*\(|\bmatch\s*\([\w\s,.]{1,60}\)\s*against\s*\("
            r"|\(\s*[\w`\",\s]{1,200}\)\s*values\s*\("
        ),
        False,
    ),
    (_STATEMENT_HINTS, _STATEMENTS, True),
    (  # MySQL tokenizer tricks, PostgreSQL casts and JSON operators, NoSQL operators
        (".e", "::", "->", "#>", "#-", "@>", "<@", "@?", "@@", "[", "?"),
        re.compile(
            r"\d\.e(?:[(),]|\.[a-z_$])"
            r"|[\w'\")\]]\s*::\s*(?:int|integer|bigint|smallint|numeric|real|float|text|varchar"
            r"|char|bool|boolean|bytea|json|jsonb|oid|regclass|regproc|inet|xml)\b"
            r"|(?:'[\[{][^']{0,200}[\]}]'|\"[\[{][^\"]{0,200}[\]}]\")"
            r"\s*(?:::|->|#>|#-|@>|<@|@\?|@@|\?[|&]?|[<>]=?)"
            r"|(?:->>?|#>>?|#-|@>|<@|@\?|@@)\s*['\"`][\[{$]"
            rf"|{_NOSQL_BRACKET}"
        ),
        False,
    ),
)
# An injected quote ending the statement early (``admin@example.com';``), or followed only
# by a comment that cuts the rest of the query off (``admin'--``, ``admin" #``).
_STATEMENT_END = (
    r"\s*;\s*(?:$|--|#|/\*|(?:select|insert|update|delete|drop|create|alter|exec|execute"
    r"|declare|union|shutdown|truncate|grant|waitfor)\b)"
)
# (A digit before the quote makes it feet or minutes: "hat 18';".)
_SPLIT_QUERY = re.compile(
    rf"^(?:[^']*[^'\d\s])?'{_STATEMENT_END}|^(?:[^\"]*[^\"\d\s])?\"{_STATEMENT_END}"
    rf"|^[^`]*`{_STATEMENT_END}"
)
_QUOTE_COMMENT = re.compile(r"[^\s'\"`]['\"`][\s)]*(?:--[\s+-]*|#\s*|/\*\s*)$")
# A boolean keyword before a comparison: equal operands or two numbers are a tautology or
# a blind-injection probe (``or a=a``, ``AND 1083=1083``); a lone constant too (``AND 1``).
_COMPARISON = re.compile(
    r"(?:^|[\s'\"()`])(?:or|and|xor|\|\||&&)[\s(]*['\"`]?([\w.]{1,40})['\"`]?[\s)]*"
    r"(=|==|<=>|!=|<>|>=|<=|>|<|like\b|is\b)[\s(]*['\"`]?([\w.]{1,40})"
)
_EQUAL_OPS = frozenset(["=", "==", "<=>", "like", "is"])
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_LONE_CONSTANT = re.compile(
    r"\s*(?:and|or|xor|&&|\|\|)\s+(?:\d+|true|false|null)\s*(?:--|#|/\*|;|$)"
)
_MAX_COMPARISONS = 16

_NOSQL = re.compile(rf"{_NOSQL_BRACKET}|^\s*\$(?:{_NOSQL_OPERATORS})\s*$")
# What turns SQL words into an injection: leaving a quoted string, ending the statement,
# or grafting a UNION onto the application's query.
_MECHANICS = re.compile(r"['\"`;]|\bunion\b")


def sqli(value: Value) -> Verdict | None:
    """Evidence of SQL injection in any reading of the value, or None (see the module
    docstring for when it is conclusive)."""
    fingerprint = next(filter(None, map(_libinjection, value.readings())), None)
    marker = next(filter(None, map(_marker, value.readings())), None)
    if marker is None:
        return Verdict(f"[libinjection {fingerprint}]", False) if fingerprint else None
    text, mechanics = marker
    if fingerprint is None:
        return Verdict(f"[{text}]", False)
    return Verdict(f"[libinjection {fingerprint}] [{text}]", mechanics)


def nosql(name: str) -> str | None:
    """A MongoDB operator where a parameter name or JSON key is expected."""
    if "$" not in name:
        return None
    match = _NOSQL.search(name.lower())
    return f"[nosql {match.group().strip()}]" if match else None


def _libinjection(text: str) -> str | None:
    fingerprint = _fingerprint(text)
    if fingerprint is None or prose.misread_as_sql(text, fingerprint):
        return None
    return fingerprint


def _fingerprint(text: str) -> str | None:
    if prose.starts_a_bare_statement(text):
        return None
    fingerprint = libinj.sqli_fingerprint(text)
    if fingerprint:
        return fingerprint
    if '"' in text:
        fingerprint = libinj.sqli_fingerprint(text, double_quotes=True)
        if fingerprint and _beyond_quoted_words(fingerprint):
            return fingerprint
    if _CONTINUATION.match(text):
        return libinj.sqli_fingerprint("1 " + text)
    return None


def _beyond_quoted_words(fingerprint: str) -> bool:
    """A UNION, statement separator or comment, or a boolean with two more tokens after
    the closing quote: ``" or "1"="1`` (s&sos), not ``"NOT" STUFFER`` (sos)."""
    return bool(_STRUCTURE.intersection(fingerprint)) or (
        "&" in fingerprint and len(fingerprint) >= 4
    )


def _marker(reading: str) -> tuple[str, bool] | None:
    """The first marker in a reading, comments stripped if need be, and whether it shows
    injection mechanics."""
    found = _markers(reading)
    if found is None and "/*" in reading:
        found = _markers(strip_comments(reading))
        if found is None:
            versioned = _versioned_comment(reading)
            found = (versioned, True) if versioned else None
    return found


def _markers(text: str) -> tuple[str, bool] | None:
    bare = prose.starts_a_bare_statement(text)
    for hints, regex, words in _MARKER_GROUPS:
        if regex is _STATEMENTS and bare:
            continue  # text about SQL: see prose.starts_a_bare_statement
        if any(hint in text for hint in hints):
            match = regex.search(text)
            if match and not prose.cannot_parse(text[match.start() :]):
                found = match.group()
                return found, not words or _MECHANICS.search(found) is not None
    if "'" in text or '"' in text or "`" in text:
        for regex in (_SPLIT_QUERY, _QUOTE_COMMENT):
            match = regex.search(text)
            if match:
                return match.group(), True
    tautology = _tautology(text)
    return (tautology, True) if tautology else None


def _tautology(text: str) -> str | None:
    if " " not in text and "(" not in text:
        return None
    match = _LONE_CONSTANT.match(text)
    if match:
        return match.group().strip()
    for count, match in enumerate(_COMPARISON.finditer(text)):
        if count >= _MAX_COMPARISONS:
            break
        left, operator, right = match.groups()
        numbers = _NUMBER.fullmatch(left) and _NUMBER.fullmatch(right)
        if numbers or (operator in _EQUAL_OPS and left == right):
            return match.group().strip()
    return None


def _versioned_comment(text: str) -> str | None:
    """MySQL runs the body of ``/*!50000select*/``: only injected SQL hides in one."""
    index = text.find("/*!")
    return text[index : index + 24] if index >= 0 else None
