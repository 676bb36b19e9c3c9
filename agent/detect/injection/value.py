"""One attacker-supplied string and the readings detectors judge it in.

An application may read a parameter after more decoding than the URL's: HTML entities
(a value echoed into a page), JavaScript escapes (a value placed in a script), base64 (a
value the code decodes). Each reading is computed on first use and shared by every
family, so a plain value costs one normalisation.
"""

from __future__ import annotations

from typing import NamedTuple

from agent.detect.injection.decode import (
    MAX_VALUE,
    base64_text,
    html_decode,
    js_unescape,
    normalise,
)

__all__ = ["Value", "Verdict"]


class Verdict(NamedTuple):
    """What a detector found in a value: its evidence, and whether that evidence is
    conclusive (the finding is then ``certain``, see agent.detect.families)."""

    evidence: str
    conclusive: bool


class Value:
    """``text`` as received (URL-decoded, capped); ``low`` normalised for matching;
    ``readings()`` the distinct normalised readings, ``low`` first."""

    __slots__ = ("_low", "_readings", "text")

    def __init__(self, text: str) -> None:
        self.text = text[:MAX_VALUE]
        self._low: str | None = None
        self._readings: tuple[str, ...] | None = None

    @property
    def low(self) -> str:
        if self._low is None:
            self._low = normalise(self.text)
        return self._low

    def readings(self) -> tuple[str, ...]:
        if self._readings is None:
            self._readings = self._read()
        return self._readings

    def _read(self) -> tuple[str, ...]:
        found = [self.low]
        if "&" in self.text or "\\" in self.text:
            # Entity names are case-sensitive (&Tab;), so decode before normalising.
            found.append(normalise(js_unescape(html_decode(self.text))))
        decoded = base64_text(self.text)
        if decoded is not None:
            found.append(normalise(decoded))
        return tuple(dict.fromkeys(found))

    def __repr__(self) -> str:
        return f"Value({self.text!r})"
