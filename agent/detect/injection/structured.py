"""The strings inside a structured parameter value: JSON members, XML attributes and text.

APIs take ``filter={"name": {"$ne": 1}}`` or an XML document in one parameter; a payload
then sits in one member, often behind the quote or tag that opens it. Judging each member
on its own, as WAFs do with JSON and XML bodies, puts the payload at the start of what is
judged, where the patterns for a bare value look for it. Bounded: the value is capped by
the caller and at most MAX_FIELDS strings are returned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from agent.detect.injection.decode import html_decode

__all__ = ["MAX_FIELDS", "fields"]

#: Strings taken from one structured value at most.
MAX_FIELDS = 32
#: Nesting followed at most (deeper members are still found by the flat fallback).
_MAX_DEPTH = 8

_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.){0,512})"')
_XML_ATTRIBUTE = re.compile(r"""\s([\w:.-]{1,64})\s*=\s*(?:"([^"<]{0,2048})"|'([^'<]{0,2048})')""")
_XML_TEXT = re.compile(r">([^<>]{1,2048})<")


def fields(value: str) -> list[tuple[str, str]]:
    """``(name, text)`` pairs of the strings a JSON or XML value holds (JSON object keys
    come with an empty name: attackers put operators and payloads in keys too); an empty
    list when the value is neither."""
    start = value.lstrip()[:1]
    if start in ("{", "["):
        found = list(_json_fields(value))
    elif start == "<" and ("=" in value or "</" in value):
        found = list(_xml_fields(value))
    else:
        return []
    return found[:MAX_FIELDS]


def _json_fields(value: str) -> Iterator[tuple[str, str]]:
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        # Broken or truncated JSON (a payload often is): its quoted strings still count.
        for match in _JSON_STRING.finditer(value):
            yield "", _json_unescape(match.group(1))
        return
    yield from _walk(document, "", 0)


def _walk(node: object, name: str, depth: int) -> Iterator[tuple[str, str]]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, str):
        yield name, node
    elif isinstance(node, dict):
        for key, member in node.items():
            yield "", key
            yield from _walk(member, key, depth + 1)
    elif isinstance(node, list):
        for member in node:
            yield from _walk(member, name, depth + 1)


def _json_unescape(text: str) -> str:
    try:
        return json.loads(f'"{text}"')
    except ValueError:
        return text


def _xml_fields(value: str) -> Iterator[tuple[str, str]]:
    for match in _XML_ATTRIBUTE.finditer(value):
        yield match.group(1), html_decode(match.group(2) or match.group(3) or "")
    for match in _XML_TEXT.finditer(value):
        text = match.group(1).strip()
        if text:
            yield "", html_decode(text)
