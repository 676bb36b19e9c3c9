"""Log sources: files followed across rotation and journald units, with persisted positions."""

from agent.sources.base import (
    DEFAULT_BATCH,
    LINE_CAP,
    MAX_LINE_CHARS,
    LogLine,
    LogSource,
    SourceError,
    cap_line,
)
from agent.sources.file import FileSource
from agent.sources.journal import JournalSource

__all__ = [
    "DEFAULT_BATCH",
    "LINE_CAP",
    "MAX_LINE_CHARS",
    "FileSource",
    "JournalSource",
    "LogLine",
    "LogSource",
    "SourceError",
    "cap_line",
]
