"""Where a parsed configuration value came from, so every verdict can point at file:line."""

from __future__ import annotations

from dataclasses import dataclass

from checks.yamlsource import Problem


@dataclass(frozen=True, order=True)
class Origin:
    """A line of a configuration file on the audited host."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def problem(self, message: str) -> Problem:
        """A located complaint about this line (reported, never fatal)."""
        return Problem(self.file, self.line, "", message)
