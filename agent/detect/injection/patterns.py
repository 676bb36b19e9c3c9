"""Request-level attack families: Log4Shell lookups, PHP-CGI argument injection and
scanners announcing themselves in the User-Agent.

Every function takes text already decoded and normalised (lower case, see decode.py) and
returns the matched excerpt or None. The patterns are linear: no nested quantifiers, no
back-references, and callers cap the input length.
"""

from __future__ import annotations

import re

__all__ = ["jndi", "php_cgi", "scanner"]

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


# --- scanners, by the User-Agent they announce -------------------------------------
_SCANNER = re.compile(
    r"sqlmap|nikto|nmap scripting engine|\bnmap\b|masscan|zgrab|wpscan|nuclei|dirbuster"
    r"|\bdirb\b|gobuster|feroxbuster|\bffuf\b|fuzz faster u fool|wfuzz|acunetix|netsparker"
    r"|invicti|arachni|havij|w3af|openvas|nessus|zmeu|jorgee|commix|whatweb|fimap|jbrofuzz"
    r"|libwhisker|morfeus|webshag|sysscan|\bbfac\b|detectify|wprecon|tsunamisecurityscanner"
    r"|netlab360|webbandit|skipfish|paros|webinspect|appscan|burpcollaborator|qualys"
    r"|\bxray\b|sitelockspider|bewica|betabot|mozlila|hexometer|\bwhatweb\b|vega/|joomscan"
    r"|droopescan|cmsmap|\bzap/|owasp zap|jaeles|dotdotpwn|sqlninja|bsqlbf|\bmetasploit"
    r"|l9explore|l9tcpid"
)


def scanner(user_agent: str) -> str | None:
    match = _SCANNER.search(user_agent)
    return match.group() if match else None
