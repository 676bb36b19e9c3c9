"""YAML that remembers where each value came from, so every error can name file, line and field.

Only ``yaml.SafeLoader`` is used: nothing in a policy or rule file is ever executed. YAML
aliases share one value, so ten lines of ``&a [*b, *b, ...]`` make a billion-element
document that anything walking it (a validator, an error message) never finishes: before
constructing anything, the node graph is measured with every alias counted as a copy of
what it names, and a document past ``MAX_NODES`` values, ``MAX_ALIASES`` aliases or
``MAX_DEPTH`` levels is refused with the line where it went over. Mapping keys must be
plain values (a list as a key cannot even be looked up).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located precisely enough to fix it blind."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class InputError(Exception):
    """Raised with every problem found in one or more input files."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class LineDict(dict):
    """A mapping that knows its own line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A sequence that knows its own line and the line of each item."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


#: Seventy times the shipped baseline policy, counting aliases expanded.
MAX_NODES = 100_000
MAX_ALIASES = 1_000
#: Policies are about six levels deep; constructing is recursive in Python.
MAX_DEPTH = 64

_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses 5x faster


class _LineLoader(_SafeBase):
    """Safe loader that records lines and refuses duplicate keys (a silent override hides bugs)
    and documents too large once their aliases are expanded."""

    def construct_document(self, node: yaml.Node) -> Any:
        _measure(node)
        return super().construct_document(node)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _refuse(message: str, node: yaml.Node) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(None, None, message, node.start_mark)


def _measure(root: yaml.Node) -> None:
    """Refuse a node graph too big, too deep or recursive once aliases are expanded, and
    non-scalar mapping keys. Iterative, and each node is walked once: an alias met again
    adds its measured size instead of being walked again."""
    sizes: dict[int, int] = {}  # id(node) -> values it stands for, aliases expanded
    walking: set[int] = set()
    aliases = 0
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, finished = stack.pop()
        key = id(node)
        if finished:
            walking.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_NODES:
                raise _refuse(f"more than {MAX_NODES} values once aliases are expanded", node)
            continue
        if key in sizes:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _refuse(f"more than {MAX_ALIASES} aliases", node)
            continue
        if key in walking:
            raise _refuse("an alias refers to a value that contains it", node)
        if depth > MAX_DEPTH:
            raise _refuse(f"nested more than {MAX_DEPTH} levels deep", node)
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _refuse(
                        "a mapping key must be a plain value, not a list or mapping", key_node
                    )
        walking.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in reversed(_children(node)))


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping.key_lines:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    sequence = LineList(loader.construct_object(child, deep=True) for child in node.value)
    sequence.line = node.start_mark.line + 1
    sequence.item_lines = [child.start_mark.line + 1 for child in node.value]
    return sequence


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: Path | str, text: str | None = None) -> Any:
    """Parse one YAML document, turning syntax errors into a located InputError."""
    name = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError([Problem(name, 0, "", f"cannot read: {exc}")]) from exc
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise InputError([Problem(name, line, "", f"invalid YAML: {exc.problem or exc}")]) from exc
    except yaml.YAMLError as exc:
        raise InputError([Problem(name, 0, "", f"invalid YAML: {exc}")]) from exc


def line_of(container: Any, key: Any) -> int:
    """Line of ``container[key]`` if known, else the container's own line, else 0."""
    if isinstance(container, LineDict):
        return container.line_of(key)
    if isinstance(container, LineList) and isinstance(key, int):
        return container.line_of(key)
    return getattr(container, "line", 0)
