"""Text someone else wrote, made safe to show: on a terminal, in XML, in any UTF-8 file.

Evidence quotes configuration lines, file names and command output, all of which someone
else wrote: an ESC or OSC sequence there would drive the reader's terminal, a bidi override
would make a line read as something it is not, XML 1.0 cannot carry most C0 controls (not even
as character references), and a file name that is not UTF-8 arrives as lone surrogates
(os.fsdecode) that no UTF-8 writer can encode. Reports (``checks.report.visible``), ban
listings and the trail show such text only through ``visible``.

Written out visibly: C0 and C1 controls and DEL (``\\t``, ``\\n``, ``\\r``, else ``\\x1b``),
format characters such as bidi overrides and zero-width joiners, the line and paragraph
separators, noncharacters such as U+FFFE (``\\u202e``, ``\\ufffe``), and other lone
surrogates (``\\udc00``). A surrogate escape of an undecodable byte shows as that byte
(``\\xff``). Backslashes are not doubled: the report is for reading, not for decoding back.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
#: Controls, format characters, surrogates, line and paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SURROGATE_ESCAPES = range(0xDC80, 0xDD00)  # os.fsdecode's stand-ins for bytes 0x80-0xff


def visible(text: str) -> str:
    """``text`` with every character a terminal or an XML parser would act on written out."""
    if text.isprintable():  # the common case: nothing to do
        return text
    return "".join(_shown(char) for char in text)


@lru_cache(maxsize=1024)
def _shown(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code in _SURROGATE_ESCAPES:
        return f"\\x{code - 0xDC00:02x}"
    if unicodedata.category(char) not in _HIDDEN and not _noncharacter(code):
        return char
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _noncharacter(code: int) -> bool:
    """U+FDD0..U+FDEF and the last two code points of every plane (U+FFFE, U+FFFF, ...)."""
    return 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE
