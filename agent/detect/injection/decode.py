"""Undo the encodings attackers stack to slip past matchers, so detectors see plain text.

Covers repeated percent-encoding, ``+`` for space in queries, IIS ``%uXXXX``, overlong
UTF-8 (``%c0%af`` is ``/``), full-width and slash look-alike characters, HTML entities.
Every step is bounded: a few rounds, a capped length.
"""

from __future__ import annotations

import base64
import html
import re
import unicodedata

__all__ = [
    "MAX_PARAMS",
    "MAX_VALUE",
    "base64_text",
    "html_decode",
    "js_unescape",
    "nfkc_head",
    "normalise",
    "seven_bit",
    "split_target",
    "strip_comments",
    "url_decode",
    "without_controls",
]

#: Characters of one value that detectors look at (payloads sit near the start).
MAX_VALUE = 4096
#: Parameters of one query that are inspected; a flood of them is itself no attack.
MAX_PARAMS = 64
#: Rounds of percent-decoding: double and triple encoding are common, more is noise.
MAX_ROUNDS = 3

_PERCENT = re.compile(r"%(?:[uU]([0-9a-fA-F]{4})|([0-9a-fA-F]{2}))")
# Overlong UTF-8 forms of ASCII/BMP characters, which lenient decoders still accept.
# Lenient decoders (IIS's among them) also take any byte but a "%" after C0/C1 as the
# second half (%c0%2e is "."), and the 5- and 6-byte forms UTF-8 once had.
_OVERLONG = re.compile(
    rb"[\xc0\xc1][\x00-\x24\x26-\xff]|\xe0[\x80-\x9f][\x80-\xbf]|\xf0[\x80-\x8f][\x80-\xbf]{2}"
    rb"|\xf8[\x80-\x87][\x80-\xbf]{3}|\xfc[\x80-\x83][\x80-\xbf]{4}"
)
_LEAD_MASK = {2: 0x1F, 3: 0x0F, 4: 0x07, 5: 0x03, 6: 0x01}
# Bytes that are not UTF-8 come back from surrogateescape as U+DC80..U+DCFF: map them to
# the Latin-1 character of the same byte, so the text stays encodable and inspectable.
_ESCAPED_TO_LATIN1 = {0xDC00 + byte: byte for byte in range(0x80, 0x100)}
_JS_ESCAPE = re.compile(
    r"\\(?:x([0-9a-fA-F]{2})|u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4})|([0-3][0-7]{2}))"
)
# A comment body is capped so an unclosed "/*" costs one bounded scan per position.
_COMMENT = re.compile(r"/\*(!\d{0,5})?([^*]{0,200}?)\*/")
_CONTROLS = re.compile(r"[\t\n\r\x00]+")
_SEVEN_BIT = {code: code & 0x7F for code in range(0xA0, 0x100)}
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_MIN_BASE64 = 8
# Look-alikes that NFKC leaves alone but IIS-style "best fit" mapping turns into slashes.
#: Characters NFKC normalises at a time, and at most past them to where it can cut (see
#: nfkc_head).
_NFKC_PIECE, _MAX_UNCUT = 64, 32
#: Starters that canonical composition joins to the character before them: Indic, Sinhala,
#: Tibetan, Myanmar and Balinese vowel signs and length marks, and the Hangul vowels and
#: final consonants. tests/test_detect_hostile.py checks this against Python's Unicode data.
_JOINS_BACKWARD = frozenset(
    "\u09be\u09d7\u0b3e\u0b56\u0b57\u0bbe\u0bd7\u0c56\u0cc2\u0cd5\u0cd6\u0d3e\u0d57"
    "\u0dcf\u0ddf\u0fb5\u0fb7\u102e\u1b35\U00011127\U0001133e\U00011357\U000114b0"
    "\U000114ba\U000114bd\U000115af\U00011930"
) | frozenset(map(chr, [*range(0x1161, 0x1176), *range(0x11A8, 0x11C3)]))
_LOOKALIKES = str.maketrans(
    {"\u2215": "/", "\u2044": "/", "\u2216": "\\", "\ufe68": "\\", "\x00": None}
)


def url_decode(text: str, *, plus: bool = False) -> str:
    """Percent-decode until stable (at most MAX_ROUNDS); ``plus`` turns ``+`` into a space
    before each round, as a form-encoded query does and an application decoding a
    double-encoded value again does (``%2B`` stays a plus unless decoded twice)."""
    text = text[:MAX_VALUE]
    if plus and "+" in text:
        text = text.replace("+", " ")
    for _ in range(MAX_ROUNDS):
        if "%" not in text:
            break
        decoded = _decode_once(text)
        if plus and "+" in decoded and "%" in decoded:
            decoded = decoded.replace("+", " ")  # the next round's form decoding
        if decoded == text:
            break
        text = decoded
    return text


def _decode_once(text: str) -> str:
    raw = bytearray()
    position = 0
    for match in _PERCENT.finditer(text):
        raw += text[position : match.start()].encode("utf-8", "surrogatepass")
        wide, byte = match.groups()
        if wide is not None:
            raw += chr(int(wide, 16)).encode("utf-8", "surrogatepass")
        else:
            raw.append(int(byte, 16))
        position = match.end()
    raw += text[position:].encode("utf-8", "surrogatepass")
    return _bytes_to_text(bytes(raw))


def _bytes_to_text(raw: bytes) -> str:
    if raw.isascii():
        return raw.decode("ascii")
    raw = _OVERLONG.sub(_fold_overlong, raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape").translate(_ESCAPED_TO_LATIN1)


def _fold_overlong(match: re.Match[bytes]) -> bytes:
    data = match.group()
    value = data[0] & _LEAD_MASK[len(data)]
    for byte in data[1:]:
        value = (value << 6) | (byte & 0x3F)
    return chr(value).encode("utf-8", "surrogatepass")


def normalise(text: str) -> str:
    """Lower case, full-width and look-alike characters folded, NUL bytes dropped; at most
    MAX_VALUE characters of that, at a cost in proportion to them (see :func:`nfkc_head`)."""
    if not text.isascii():
        text = nfkc_head(text, MAX_VALUE)
    return text[:MAX_VALUE].translate(_LOOKALIKES).lower()[:MAX_VALUE]


def nfkc_head(text: str, limit: int, piece: int = _NFKC_PIECE) -> str:
    """The first ``limit`` characters of the NFKC form of ``text``, at a cost in proportion
    to ``limit``.

    NFKC writes up to 18 characters for one (U+FDFA; U+FDFB 8, the squared katakana words
    U+3300... 5 or 6), and sorts a run of combining marks in quadratic time: normalising a
    whole value could cost hundreds of times its length. Instead the text is normalised
    ``piece`` characters at a time, each piece cut where NFKC itself cuts
    (:func:`_piece_end`), until ``limit`` characters are out. The result is NFKC's, except
    that a run of more than ``_MAX_UNCUT`` characters NFKC would not cut (combining marks:
    no language needs more than 30 in a row, Unicode's stream-safe limit) is sorted a part
    at a time."""
    pieces: list[str] = []
    written = start = 0
    while start < len(text) and written < limit:
        end = _piece_end(text, start + piece)
        pieces.append(unicodedata.normalize("NFKC", text[start:end]))
        written += len(pieces[-1])
        start = end
    return "".join(pieces)[:limit]


def _piece_end(text: str, position: int) -> int:
    """The first index from ``position`` on before which NFKC can cut ``text`` in two: a
    character whose decomposition starts with a starter (combining class 0) that composes
    with nothing before it, so nothing after it reorders or composes with anything before
    it. At most ``_MAX_UNCUT`` characters on."""
    for index in range(position, min(len(text), position + _MAX_UNCUT)):
        first = unicodedata.normalize("NFKD", text[index])[0]
        if not unicodedata.combining(first) and first not in _JOINS_BACKWARD:
            return index
    return min(len(text), position + _MAX_UNCUT)


def html_decode(text: str) -> str:
    """HTML entities resolved (``&lt;``, ``&#x3c;``, ``&#60``), for markup smuggled in."""
    return html.unescape(text) if "&" in text else text


def js_unescape(text: str) -> str:
    """JavaScript string escapes resolved (``\\x3c``, ``\\u003c``, ``\\u{3c}``, ``\\074``):
    text that lands in a script is read with them undone."""
    return _JS_ESCAPE.sub(_js_char, text) if "\\" in text else text


def _js_char(match: re.Match[str]) -> str:
    code = next(group for group in match.groups() if group is not None)
    value = int(code, 8 if match.group(4) else 16)
    return chr(value) if value < 0x110000 else ""


def strip_comments(text: str) -> str:
    """C-style comments (``/**/``, ``/*!50000select*/``) turned into one space, as SQL and
    JavaScript parsers read them; a versioned MySQL comment keeps its body, which MySQL runs."""
    if "/*" not in text:
        return text
    return _COMMENT.sub(lambda m: f" {m.group(2)} " if m.group(1) else " ", text)


def without_controls(text: str) -> str:
    """Tabs, newlines and NULs dropped, as browsers do inside ``java\\tscript:`` URLs."""
    return _CONTROLS.sub("", text)


def seven_bit(text: str) -> str:
    """Latin-1 characters with their top bit cleared (``\xbcscript\xbe`` is ``<script>``),
    as a US-ASCII page shows them."""
    return text.translate(_SEVEN_BIT)


def base64_text(text: str) -> str | None:
    """The printable text a base64 value stands for, or None: applications decode
    parameters they expect to be base64, so attackers encode payloads for them."""
    text = text.strip()
    if len(text) < _MIN_BASE64 or len(text) % 4 or not _BASE64.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except ValueError:
        return None
    if not raw.isascii():
        return None
    decoded = raw.decode("ascii")
    return decoded if "".join(decoded.split()).isprintable() else None


def split_target(target: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(decoded path, raw query, decoded ``(name, value)`` pairs) of a request target.

    A query piece without ``=`` is a value with an empty name (``?<script>...``)."""
    path, _, query = target.partition("?")
    params: list[tuple[str, str]] = []
    if query:
        for piece in query.split("&", MAX_PARAMS)[:MAX_PARAMS]:
            name, equals, value = piece.partition("=")
            if not equals:
                name, value = "", name
            if name or value:
                params.append((url_decode(name, plus=True), url_decode(value, plus=True)))
    return url_decode(path), query, params
