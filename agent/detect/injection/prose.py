"""Free text that a SQL tokenizer reads as SQL: a search box, a forum post or a product
description holding SQL words, percentages or a dash, with nothing that would make a
database act on them.

libinjection judges only the first five tokens of a value. Prose often starts like SQL
(``Left (WA, RR), following wood edge south``, ``80% ACRYLIC AND 20% WOOL``) and the
words after those tokens show it is not: a database would reject the whole statement.
These functions say when a libinjection verdict is such a misreading. They take
normalised (lower-case) text and are linear: one tokenizing pass over capped text.
"""

from __future__ import annotations

import re

__all__ = ["cannot_parse", "misread_as_sql", "starts_a_bare_statement"]

# Words that may follow one another in valid SQL (clauses, operators, types, modifiers):
# three words in a row none of which is one of these make a statement no database parses.
_SQL_WORD_LIST = """
    all analyse and any as asc at between binary boolean both by case cast char character
    charset collate convert cross current current_date current_time current_timestamp
    current_user database date day dec decimal default delay delete desc distinct div
    double else end escape except exec execute exists false fetch first following for
    from full group having hour if ignore in inner insert integer intersect interval
    into is join key last lateral leading left like limit local lock match minute mod
    mode month natural next not null nulls numeric offset on only or order outer
    over partition percent precision preceding procedure quarter range regexp replace
    right rlike rollup row rows second select set share signed similar sounds
    straight_join table then ties time timestamp to top trailing true union unique
    unknown unsigned update using values varchar varying view waitfor week when where
    window with without xor year zone
    after before begin definer deterministic each function grant identified immutable
    index invoker language login password privileges public quota return returns revoke
    role schema security sequence sql stable tablespace temporary trigger unlimited user
    volatile
"""
_SQL_WORDS = frozenset(_SQL_WORD_LIST.split())
# Tokens of a statement: a quoted literal, a word, a comment or separator that ends what
# must parse, any other character.
_TOKEN = re.compile(r"'[^']*'?|\"[^\"]*\"?|`[^`]*`?|[a-z_][a-z0-9_$]*|\d[\w.]*|--|#|/\*|;|\S")
_ENDS_STATEMENT = frozenset(["--", "#", "/*", ";"])
_PROSE_RUN = 3
# "80% acrylic": a percentage, a quantity in text; SQL's modulo never stands there.
_PERCENTAGE = re.compile(r"^\s*\d+(?:[.,]\d+)?\s?%\s+[a-z]")
# A comment opener glued to the end of a word (``x/*``, ``...rspl2vbxfy--``).
_GLUED_COMMENT = re.compile(r"^[^'\"`]*?[a-z](?:--|/\*)")
_LONE_OPERAND_AND_COMMENT = frozenset(["1c", "nc"])
# A boolean keyword quoted on its own (``the 'and' operator``) is the word mentioned: an
# injected one stands between a closing quote and an operand (``a'or'a``, ``x' and '1``).
_QUOTED_KEYWORD = re.compile(r"(?:^|\s)(['\"])(?:and|or|xor|not)\1(?:\s|$)")
_BARE_STATEMENT = re.compile(
    r"^\s*(?:select|insert|update|delete|drop|create|alter|truncate)\b"
    r"(?:[^'\"`;()@#/\\\[]|/(?!\*))*$"
)


def misread_as_sql(text: str, fingerprint: str) -> bool:
    """Whether libinjection's ``fingerprint`` for ``text`` is prose misread as SQL: a
    percentage (``80% acrylic and ...``), a dash glued to a word (``x/*``), a keyword
    mentioned in quotes (``the 'and' operator``), or a statement that cannot parse
    (:func:`cannot_parse`) whether read as the continuation of a number or after the first
    quote, which would end the string literal the value sits in."""
    if _PERCENTAGE.match(text) and fingerprint.startswith("1"):
        return True
    if fingerprint in _LONE_OPERAND_AND_COMMENT and _GLUED_COMMENT.match(text):
        return True
    if fingerprint == "s&s" and _QUOTED_KEYWORD.search(text):
        return True
    if not cannot_parse(text):
        return False
    for quote in "'\"`":
        start = text.find(quote)
        if start >= 0 and not cannot_parse(text[start + 1 :]):
            return False
    return True


def starts_a_bare_statement(text: str) -> bool:
    """A value that opens with a statement keyword and holds no quote, parenthesis,
    variable, comment or separator: it can neither leave a string literal nor continue an
    expression, so it is text about SQL (``select x from y where``), not SQL injected."""
    return _BARE_STATEMENT.match(text) is not None


def cannot_parse(text: str) -> bool:
    """Whether the statement ``text`` starts cannot parse, before a comment or separator
    ends what must: three operands (words that are no keyword, numbers) in a row, an
    operand after IN (which takes a list), or a word after a closing parenthesis at the
    very end (an alias, which no WHERE, ORDER BY or LIMIT accepts)."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in _ENDS_STATEMENT:
            break
        tokens.append(token)
    else:
        if len(tokens) >= 2 and tokens[-2] == ")" and _is_operand(tokens[-1]):
            return True
    run = 0
    for index, token in enumerate(tokens):
        if not _is_operand(token):
            run = 0
            continue
        run += 1
        if run >= _PROSE_RUN or (index and tokens[index - 1] == "in"):
            return True
    return False


def _is_operand(token: str) -> bool:
    return token[0].isdigit() or (token[0].isalpha() and token not in _SQL_WORDS)
