"""Cross-site scripting in one value: libinjection's HTML5 tokenizer on every reading, and
the script it lets pass (script URLs, JavaScript sinks and globals, handlers outside a tag,
obfuscations browsers still run).

Readings beyond the value's own (value.py): without tabs and newlines (browsers drop them
inside ``java&Tab;script:``), with comments removed (``document/**/.cookie``), with the
top bit of Latin-1 cleared (a US-ASCII page reads ``\\xbcscript\\xbe`` as ``<script>``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from agent.detect.injection import libinj
from agent.detect.injection.decode import (
    html_decode,
    js_unescape,
    normalise,
    seven_bit,
    strip_comments,
    without_controls,
)
from agent.detect.injection.value import Value, Verdict

__all__ = ["xss"]

# Without one of these no markup, URL, attribute, entity or script syntax is present.
_HINTS = frozenset("<>:=&;'\"`(\\[{+!")
_HINT_WORDS = ("document", "window", "adw-")
# Script needs a tag or an attribute of its own, so a quote, bracket or space to leave the
# value it was put in; without one, libinjection's verdict on a bare "style=color:red"
# value is a false alarm.
_LEAVES_VALUE = re.compile(r"[<>\"'`\s]")
_SCRIPT_URL = r"(?:java|vb|live|ecma|j)script\s*:"
# An XML declaration is a bogus comment to a browser, and a false alarm to libinjection.
_XML_DECLARATION = re.compile(r"^\s*<\?xml\b[^<>]{0,200}\?>")
_MARKERS = re.compile(
    rf"<\s*/?\s*(?:[a-z]{{1,20}}\s*:\s*)?script\b|\b{_SCRIPT_URL}"
    r"|\bdata\s*:\s*(?:text/(?:html|xml)|image/svg\+xml|application/(?:x-)?(?:java|ecma)script"
    r"|application/xhtml\+xml)|\bdata\s*:(?!//)[^,]{0,60};\s*base64\s*,"
    r"|\bdata\s*:[^,<]{0,60},\s*<[a-z]"
    # markup that runs script or loads a document whatever its attributes
    r"|<\s*(?:[a-z]{1,20}:)?(?:iframe|frame|frameset|object|embed|applet|layer|ilayer"
    r"|bgsound|vmlframe|isindex|xss)\b"
    r"|<\s*(?:meta|base|link)\b[^>]{0,200}?\b(?:http-equiv|href|charset)\s*="
    r"|<\s*\??import\b[^>]{0,200}?\bimplementation\s*="
    r"|<[a-z][^>]{0,200}[\s/\"'](?:on[a-z]{3,}|formaction)\s*="
    # an event handler or script after breaking out of an attribute value
    r"|[\s\"'`;(,](?:on[a-z]{3,40}|formaction)\s*=\s*(?:[\w'\"`(]|$)"
    r"|^on[a-z]{3,40}\s*=\s*[\w'\"`(]"
    r"|['\"`;)\]}][\s\-+*/%;,|&]{0,20}(?:alert|confirm|prompt|eval)\s*[(`]"
    # JavaScript sinks, globals and the DOM
    r"|\b(?:alert|prompt|confirm)(?:\s*\(\s*[\d'\"`)]|\((?:document|window|this|top|self"
    r"|location|name)\b|`)"
    r"|\beval\(|\b(?:settimeout|setinterval|execscript)\s*\(|\bnew\s+function\s*\("
    r"|\bstring\s*\.\s*fromcharcode\s*\(|\b(?:atob|btoa)\("
    r"|\b(?:document|window)\s*\.\s*(?:cookie|domain|write(?:ln)?|location|body|forms"
    r"|queryselector(?:all)?|getelementby\w+|createelement)\b(?!\s+[a-z])"  # not "... explained"
    r"|\blocation\s*\.\s*(?:hash|search)\b|\.\s*(?:innerhtml|outerhtml|parentnode"
    r"|insertadjacenthtml)\b"
    r"|\b(?:self|top|window|document|parent|frames|globalthis)\s*\[|\(\s*(?:document|window"
    r"|self|top)\s*\)\s*\["
    r"|\.\s*(?:call|apply)\s*`|\$\{\s*(?:alert|eval|prompt|confirm)\b"
    r"|\breflect\s*\.\s*(?:apply|construct)\s*\.|!\s*[!+ ]\s*\[\s*\]"
    r"|\(\s*!\s*\[\s*\]\s*\+?\s*\[\s*\]\s*\)|\bconstructor\s*\.\s*constructor\s*\("
    # CSS and legacy browser script
    r"|[:=]\s*expression\s*\(|-moz-binding\s*:|\bbehavior\s*:\s*url"
    r"|url\s*\(\s*['\"]?(?:java|vb)script\b"
    r"|@import\b|&\{[^}]{1,100}\}"
)


def xss(value: Value) -> Verdict | None:
    """Evidence of cross-site scripting in any reading of the value, or None; conclusive
    when libinjection's HTML5 tokenizer finds script (our markers catch what it lets
    pass, and JavaScript words that text can hold too)."""
    if _HINTS.isdisjoint(value.low) and not any(word in value.low for word in _HINT_WORDS):
        return None
    for reading in _readings(value):
        if _LEAVES_VALUE.search(reading) and libinj.is_xss(reading):
            return Verdict("[libinjection]", True)
        match = _MARKERS.search(reading)
        if match:
            return Verdict(f"[{match.group()}]", False)
    if "adw-" in value.low and "ad4-" in value.low:
        return Verdict("[utf-7 markup]", False)  # +ADw-script+AD4- is <script> in UTF-7
    return None


def _readings(value: Value) -> Iterator[str]:
    seen: set[str] = set()
    for reading in value.readings():
        reading = _XML_DECLARATION.sub("", reading)
        for variant in (reading, without_controls(reading), strip_comments(reading)):
            if variant not in seen:
                seen.add(variant)
                yield variant
    raw = js_unescape(html_decode(value.text))
    if any("\xa0" <= char <= "\xff" for char in raw):
        yield normalise(seven_bit(raw))  # before NFKC, which turns "\xbc" into "1/4"
