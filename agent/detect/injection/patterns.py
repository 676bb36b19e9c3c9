"""Request-level attack families: Log4Shell lookups, PHP-CGI argument injection and
scanners announcing themselves in the User-Agent or marking their payloads (the lists
are data: policies/detect/data/scanners.yaml).

Every function takes text already decoded and normalised (lower case, see decode.py) and
returns the matched excerpt or None. The patterns are linear: no nested quantifiers, no
back-references, and callers cap the input length.
"""

from __future__ import annotations

import re
from functools import cache

import yaml

from policies import DETECT_DIR

__all__ = ["jndi", "php_cgi", "scanner", "scanner_marker"]

# --- log4shell ------------------------------------------------------
_LOOKUP = re.compile(r"\$\{(?!jndi:)([^{}]{0,64})\}")
_MAX_LOOKUP_ROUNDS = 8


def jndi(text: str) -> str | None:
    """``${jndi:`` even when spelled with nested lookups (``${${lower:j}ndi:``,
    ``${${::-j}${::-n}di:``, ``${j${env:x:-n}di:``): resolve lookups from the inside."""
    if "${" not in text:
        return None
    for _ in range(_MAX_LOOKUP_ROUNDS):
        start = text.find("${jndi:")
        if start >= 0:
            return text[start : start + 64]
        resolved = _LOOKUP.sub(_lookup_value, text)
        if resolved == text:
            return None
        text = resolved
    return None


def _lookup_value(match: re.Match[str]) -> str:
    """What a Log4j lookup evaluates to, as far as spelling goes: the default after
    ``:-``, else the text after the last ``:`` (``lower:j`` -> ``j``)."""
    body = match.group(1)
    if ":-" in body:
        return body.split(":-", 1)[1]
    return body.rsplit(":", 1)[-1].strip("'\"")


# --- PHP-CGI argument injection (CVE-2012-1823, CVE-2024-4577) ----------------------
_PHP_CGI_ARG = re.compile(r"^\s*[-\xad][a-z](?:\s|$)")
_PHP_CGI_DIRECTIVE = re.compile(
    r"[-\xad]d\s*(?:allow_url_include|auto_prepend_file|auto_append_file|safe_mode"
    r"|disable_functions|open_basedir|cgi\.force_redirect|suhosin\.\w+)"
    r"|\ballow_url_include\s*=\s*(?:1|on|true)|\bauto_prepend_file\s*=\s*php://"
)


def php_cgi(raw_query: str, decoded_query: str) -> str | None:
    """A query that php-cgi would read as command-line switches: one with no raw ``=``
    that starts with ``-`` or a soft hyphen (Windows "best fit" turns 0xAD into ``-``)."""
    if "=" not in raw_query:
        match = _PHP_CGI_ARG.search(decoded_query)
        if match:
            return decoded_query[:64]
    match = _PHP_CGI_DIRECTIVE.search(decoded_query)
    return match.group() if match else None


# --- scanners, by the User-Agent they announce and the markers in their payloads --------
SCANNER_DATA = DETECT_DIR / "data" / "scanners.yaml"


@cache
def _scanner_regexes() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(User-Agent names, payload markers) of policies/detect/data/scanners.yaml, each
    matched as a whole word; a domain also as the last labels of a longer name."""
    data = yaml.safe_load(SCANNER_DATA.read_text(encoding="utf-8"))
    names = "|".join(map(re.escape, data["user_agents"]["names"]))
    domains = "|".join(re.escape(entry["domain"]) for entry in data["markers"]["domains"])
    strings = "|".join(re.escape(entry["string"]) for entry in data["markers"]["strings"])
    return (
        re.compile(rf"(?<![a-z0-9])(?:{names})(?![a-z0-9])"),
        re.compile(rf"(?<![a-z0-9-])(?:{domains})(?![a-z0-9-])|{strings}"),
    )


def scanner(user_agent: str) -> str | None:
    """A scanner's name in a User-Agent, or a scanner's marker anywhere in it."""
    names, markers = _scanner_regexes()
    match = names.search(user_agent) or markers.search(user_agent)
    return match.group() if match else None


def scanner_marker(text: str) -> str | None:
    """A scanner's payload marker (an out-of-band callback domain, a fixed probe name)
    in a request target or a Referer."""
    if "." not in text and "_" not in text and "-" not in text:
        return None
    match = _scanner_regexes()[1].search(text)
    return match.group() if match else None
