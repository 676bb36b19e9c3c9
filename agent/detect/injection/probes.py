"""The probes scanners send before an attack: header injection (CRLF), control bytes,
and the quote or parenthesis that breaks a SQL literal to see whether the page errors.

Every function takes text URL-decoded but not normalised (control bytes are kept) and
returns the matched excerpt or None. The patterns are linear and callers cap the input.
"""

from __future__ import annotations

import re

__all__ = ["control_bytes", "crlf", "sql_quote_probe"]

# --- CRLF: a line break followed by a header, a status line or a body -----------------
# Node.js and some proxies keep the low byte of U+560A and U+560D: 0x0A and 0x0D.
_LINE_BREAKS = str.maketrans({"\u560a": "\n", "\u560d": "\r", "\u010a": "\n", "\u010d": "\r"})
# Header names no line of a letter or a form starts with ("Location: Berlin" and "Host:
# the Smiths" do): with a hyphen, or a protocol word; Location and Refresh only with the
# URL or delay a header gives them.
_HEADER_NAMES = (
    r"set-cookie2?|content-(?:type|length|disposition|security-policy|encoding|location)"
    r"|contentlength|contenttype|x-[a-z0-9-]{1,40}|access-control-[a-z-]{1,40}"
    r"|transfer-encoding|cache-control|strict-transport-security|www-authenticate"
    r"|last-modified|etag|p3p|user-agent|proxy-[a-z-]{1,20}"
)
_CRLF = re.compile(
    rf"[\r\n][\r\n\t ]*(?:{_HEADER_NAMES})[\t ]*:"
    r"|[\r\n][\r\n\t ]*location[\t ]*:[\t ]*(?:[a-z][a-z0-9+.-]{0,20}:)?//"
    r"|[\r\n][\r\n\t ]*refresh[\t ]*:[\t ]*\d+[\t ]*;[\t ]*url[\t ]*="
    r"|[\r\n][\r\n\t ]*http/\d(?:\.\d)?[\t ]+\d{3}\b"
    r"|\r?\n\r?\n[\t ]*(?:<[a-z!/]|\+adw-)",  # a body after a blank line: markup, UTF-7
    re.IGNORECASE,
)


#: Parameters whose value an application writes into a response header (a redirect's
#: Location, a cookie, a language): no line break belongs in them.
HEADER_BOUND_PARAMETERS = frozenset(
    [
        "url",
        "uri",
        "redirect",
        "redirect_uri",
        "redirect_url",
        "redirecturl",
        "return",
        "returnto",
        "return_to",
        "returnurl",
        "return_url",
        "next",
        "goto",
        "dest",
        "destination",
        "continue",
        "location",
        "callback",
        "lang",
        "locale",
    ]
)


def crlf(text: str, *, in_path: bool = False, header_bound: bool = False) -> str | None:
    """A line break that starts a header, a status line or a body: response splitting or
    header injection. In a request path, or a ``header_bound`` parameter (see
    HEADER_BOUND_PARAMETERS), any line break is one: neither ever holds one."""
    if not text.isascii():
        text = text.translate(_LINE_BREAKS)
    if "\n" not in text and "\r" not in text:
        return None
    if in_path or header_bound:
        index = min(i for i in (text.find("\r"), text.find("\n")) if i >= 0)
        return text[max(0, index - 8) : index + 40]
    match = _CRLF.search(text)
    return match.group() if match else None


# --- control bytes -------------------------------------------------------------------
# NUL truncates a file name in C-based code ("../../etc/passwd%00.jpg"); the other C0
# bytes and DEL are no text anyone types. Tab, CR and LF are (a textarea sends them).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def control_bytes(text: str) -> str | None:
    match = _CONTROL.search(text)
    if match is None:
        return None
    start = max(0, match.start() - 16)
    return text[start : match.end() + 16].encode("unicode_escape").decode("ascii")


# --- SQL quote-breaking probes ------------------------------------------------------
# A number or a simple token, then only the characters that break a literal or a call
# (``1'``, ``1"``, ``1)``, ``abc')``, sqlmap's ``1,'(.".,(``): a value no form produces,
# the first thing every SQL-injection scanner sends. A quote inside a word (O'Brien,
# l'ami) or before more words (James' car) is not one.
_BREAKERS = r"['\"`\\()]"
_QUOTE_PROBE = re.compile(
    rf"^\s*[-+]?(?:\d+(?:\.\d+)?|[a-z_][\w.@-]{{0,40}})\s*([\s,.;(]{{0,4}}{_BREAKERS}[\s'\"`\\(),.;]{{0,12}})$",
    re.IGNORECASE,
)


def sql_quote_probe(text: str, *, free_text: bool = False) -> str | None:
    """Evidence of a quote-breaking probe; in ``free_text`` a person typed, one breaking
    character (``12"`` inches, ``1)`` a list item) is not enough: two are needed."""
    match = _QUOTE_PROBE.match(text)
    if match is None:
        return None
    tail = match.group(1).strip()
    if free_text and len(tail) < 2:
        return None
    return match.group().strip()
