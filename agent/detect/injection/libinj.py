"""libinjection, the tokenizer WAFs use for SQLi and XSS, behind two small functions.

libinjection 3.9.2's own C sources (BSD-3-Clause) are vendored in ``libinjection/`` and
compiled into ``agent.detect.injection._libinjection`` by setup.py; this module turns text into
the bytes it reads. The double-quote context of ``libinjection_is_sqli`` is optional here:
it is MySQL-only, and lappguard guards PostgreSQL, where ``"..."`` is an identifier, never
a string, so an injection has to break out of a single-quoted literal or be unquoted; that
context only produced false positives on English text (``CHRISTMAS STOCKING "NOT"``).
``sqli_fingerprint(text, double_quotes=True)`` is ``libinjection_is_sqli`` exactly (tests
check it against libinjection's own unit data).
"""

from __future__ import annotations

from agent.detect.injection import _libinjection

__all__ = ["VERSION", "is_xss", "sqli_fingerprint"]

#: The C library's own version string, for reports.
VERSION: str = _libinjection.VERSION


def sqli_fingerprint(text: str, *, double_quotes: bool = False) -> str | None:
    """libinjection's token fingerprint (e.g. ``s&sos``) when text is SQL injection.

    Contexts tried, as libinjection_is_sqli does: the text as is, then as the rest of a
    single-quoted literal, each re-parsed with MySQL comment rules when it holds MySQL-only
    comments; the double-quoted (MySQL) context only when ``double_quotes``."""
    if not text:
        return None
    return _libinjection.sqli(text.encode("utf-8", "surrogatepass"), double_quotes)


def is_xss(text: str) -> bool:
    """Whether libinjection's HTML5 tokenizer finds script in text, in any quoting context."""
    if not text:
        return False
    return _libinjection.is_xss(text.encode("utf-8", "surrogatepass"))
