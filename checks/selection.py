"""``audit --only``: which checks run, by ID or area, refusing a selector that matches nothing.

A selector that selects no check is an error, never an empty audit: a typo in a CI gate
(``--only ssh-001``) would otherwise pass forever. Matching ignores case, and an area may be
named as the text report prints it (``Apache`` for WEB).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence

from checks.areas import area_order, described, display_name
from checks.policy import Check, Policy
from checks.yamlsource import InputError, Problem

Selection = Callable[[Check], bool]


def selectors(items: Iterable[str]) -> list[str]:
    """``--only`` values: repeatable and comma-separated; blanks ignored."""
    return [token.strip() for item in items for token in item.split(",") if token.strip()]


def select(policies: Sequence[Policy], wanted: Sequence[str]) -> Selection | None:
    """A predicate for the checks ``wanted`` names (None: every check); InputError, in one
    line, naming each selector that matches no check of these policies and the names that
    would."""
    if not wanted:
        return None
    checks = [check for policy in policies for check in policy.checks]
    by_name: dict[str, set[str]] = {}
    for check in checks:
        by_name.setdefault(check.id.casefold(), set()).add(check.id)
        by_name.setdefault(check.area.casefold(), set()).add(check.id)
        by_name.setdefault(display_name(check.area).casefold(), set()).add(check.id)
    chosen: set[str] = set()
    unknown = []
    for selector in wanted:
        ids = by_name.get(selector.casefold())
        if ids:
            chosen |= ids
        else:
            unknown.append(f"{selector!r}{_suggestion(selector, checks)}")
    if unknown:
        message = f"no check ID or area of the loaded policies: {', '.join(unknown)}"
        raise InputError([Problem("--only", 0, "", f"{message}; {_known(checks)}")])
    return lambda check: check.id in chosen


def _suggestion(selector: str, checks: Sequence[Check]) -> str:
    """`` (did you mean LAPP-SSH-001?)`` for a near miss, else nothing."""
    spelled = {check.id.casefold(): check.id for check in checks}
    for area in {check.area for check in checks}:
        spelled |= {name.casefold(): name for name in (area, display_name(area))}
    close = difflib.get_close_matches(selector.casefold(), list(spelled), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(spelled[c] for c in close)}?)" if close else ""


def _known(checks: Sequence[Check]) -> str:
    """Every name that selects something: areas, and check IDs with runs collapsed."""
    areas = sorted({check.area for check in checks}, key=area_order)
    numbers: dict[str, list[str]] = {}
    for check in checks:
        prefix, _, number = check.id.rpartition("-")
        numbers.setdefault(prefix, []).append(number)
    ids = [f"{prefix}-{_runs(sorted(found))}" for prefix, found in numbers.items()]
    return f"known areas: {', '.join(map(described, areas))}; check IDs: {'; '.join(ids)}"


def _runs(numbers: list[str]) -> str:
    """``['001', '002', '003', '050']`` -> ``001..003,050``."""
    groups: list[list[str]] = []
    for number in numbers:
        if groups and int(number) == int(groups[-1][-1]) + 1:
            groups[-1].append(number)
        else:
            groups.append([number])
    return ",".join(g[0] if len(g) == 1 else f"{g[0]}..{g[-1]}" for g in groups)
