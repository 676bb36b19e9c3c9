"""Which controls of outside references (dev-sec baselines, Lynis, ssh-audit, sslyze) the
policy's checks implement.

The controls of each reference are data (``docs/references/*.yaml``, one file per list,
format in that folder's README): an id, a title, and either nothing (a check must cite it)
or ``not_applicable`` with the reason. The mapping is the checks' own ``references``: a
check implements control ``postgres-13`` of a list whose ``cite`` is ``dev-sec`` when its
references include ``dev-sec postgres-13``. A citation may carry a detail in parentheses
after the control, ``Lynis SSH-7408 (LogLevel)`` for the one option of a test that checks
many: the control is what stands before the parenthesis (see ``control_cited``).
``render`` writes docs/coverage.md, and ``problems`` says what breaks the table: a control
neither cited nor ruled out, one both, or a citation naming no listed control.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from checks.policy import Policy, load_policy
from checks.yamlsource import LineDict, LineList, load_yaml

PROJECT = Path(__file__).resolve().parent.parent
REFERENCES_DIR = PROJECT / "docs" / "references"
COVERAGE_DOC = PROJECT / "docs" / "coverage.md"
LIST_KEYS = {"reference", "cite", "version", "source", "owner", "scope", "complete", "controls"}
CONTROL_KEYS = {"id", "title", "not_applicable", "note"}


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    not_applicable: str | None
    note: str | None
    line: int


@dataclass
class ReferenceList:
    """One file of docs/references: some controls of one reference."""

    file: Path
    reference: str
    cite: str
    version: str
    source: str
    owner: str
    scope: str
    complete: bool
    controls: list[Control] = field(default_factory=list)

    def citation(self, control: Control) -> str:
        return f"{self.cite} {control.id}"


def load_lists(directory: Path = REFERENCES_DIR) -> tuple[list[ReferenceList], list[str]]:
    """Every reference list, and what is wrong with their shape (file:line: message)."""
    lists, problems = [], []
    for found in sorted(directory.glob("*.yaml")):
        path = found.relative_to(PROJECT) if found.is_relative_to(PROJECT) else found
        document = load_yaml(found)
        if not isinstance(document, LineDict):
            problems.append(f"{path}:1: a reference list is a mapping")
            continue
        problems += [f"{path}:{document.line_of(k)}: unknown key {k}" for k in document
                     if k not in LIST_KEYS]  # fmt: skip
        problems += [f"{path}:1: {k} is required" for k in sorted(LIST_KEYS) if k not in document]
        if any(key not in document for key in LIST_KEYS):
            continue
        listed = ReferenceList(path, *(str(document[k]) for k in
                               ("reference", "cite", "version", "source", "owner", "scope")),
                               document["complete"] is True)  # fmt: skip
        controls = document["controls"]
        if not isinstance(controls, LineList):
            problems.append(f"{path}:{document.line_of('controls')}: controls is a list")
            continue
        for index, raw in enumerate(controls):
            line = controls.line_of(index)
            if not isinstance(raw, dict) or "id" not in raw or "title" not in raw:
                problems.append(f"{path}:{line}: a control needs an id and a title")
                continue
            problems += [f"{path}:{line}: {raw['id']}: unknown key {k}" for k in raw
                         if k not in CONTROL_KEYS]  # fmt: skip
            listed.controls.append(Control(str(raw["id"]), _text(raw["title"]),
                                           _text(raw.get("not_applicable")),
                                           _text(raw.get("note")), line))  # fmt: skip
        lists.append(listed)
    return lists, problems


def control_cited(reference: str) -> str:
    """The control a reference names: the text before a parenthesised detail, so that
    ``Lynis SSH-7408 (LogLevel)`` cites ``Lynis SSH-7408`` (a reference without one is
    returned as it is)."""
    return reference.split(" (", 1)[0].strip()


def citations(policy: Policy) -> dict[str, list[str]]:
    """Each control a check cites (``control_cited``) -> the IDs of the checks citing it,
    in policy order, each check once."""
    cited: dict[str, list[str]] = {}
    for check in policy.checks:
        for reference in check.references:
            checks = cited.setdefault(control_cited(reference), [])
            if check.id not in checks:
                checks.append(check.id)
    return cited


def problems(lists: list[ReferenceList], policy: Policy) -> list[str]:
    """What makes the table wrong: a control neither implemented nor ruled out (or both),
    a control listed twice, and a citation of a listed reference naming no listed control."""
    cited = citations(policy)
    found: list[str] = []
    seen: dict[str, str] = {}
    for listed in lists:
        for control in listed.controls:
            key, where = listed.citation(control), f"{listed.file}:{control.line}"
            if key in seen:
                found.append(f"{where}: {key} is listed twice (also {seen[key]})")
            seen.setdefault(key, where)
            checks = cited.get(key, [])
            if not checks and not control.not_applicable:
                found.append(f"{where}: {key}: no check cites it and no reason rules it out")
            if checks and control.not_applicable:
                found.append(f"{where}: {key}: ruled out, yet cited by {', '.join(checks)}")
    prefixes = {f"{listed.cite} " for listed in lists}
    for reference, checks in cited.items():
        if reference.startswith(tuple(prefixes)) and reference not in seen:
            found.append(f"{', '.join(checks)} cite {reference!r}, which no list in "
                         f"{REFERENCES_DIR.relative_to(PROJECT)} holds")  # fmt: skip
    return found


@dataclass(frozen=True)
class Tally:
    listed: int
    applicable: int
    covered: int

    @property
    def percent(self) -> str:
        return f"{100 * self.covered / self.applicable:.0f}%" if self.applicable else "-"


def tally(lists: Iterable[ReferenceList], cited: dict[str, list[str]]) -> Tally:
    controls = [(listed, c) for listed in lists for c in listed.controls]
    applicable = [(listed, c) for listed, c in controls if not c.not_applicable]
    covered = [1 for listed, c in applicable if cited.get(listed.citation(c))]
    return Tally(len(controls), len(applicable), len(covered))


def render(lists: list[ReferenceList], policy: Policy) -> str:
    """docs/coverage.md: a summary per reference and list, each list's controls, and every
    check with the listed controls it implements."""
    cited = citations(policy)
    out = [
        "# Reference coverage of the LAPP baseline",
        "",
        "Generated by `scripts/coverage` from `policies/lapp-baseline.yaml` (each check's",
        "`references`) and `docs/references/*.yaml` (the controls of each reference). Do not edit:",
        "change those files and run `scripts/coverage`; `tests/test_coverage.py` fails when this",
        "file is stale or a listed control has neither a check nor a reason.",
        "",
        "| reference | list | scope | listed | applicable | covered | coverage |",
        "|---|---|---|---|---|---|---|",
    ]
    by_reference: dict[str, list[ReferenceList]] = {}
    for listed in lists:
        by_reference.setdefault(listed.reference, []).append(listed)
    for reference, group in by_reference.items():
        for listed in group:
            t = tally([listed], cited)
            state = "complete" if listed.complete else f"partial ({listed.owner} completes it)"
            out.append(f"| {reference} {listed.version} | `{listed.file.name}` | {state}: "
                       f"{listed.scope} | {t.listed} | {t.applicable} | {t.covered} | "
                       f"{t.percent} |")  # fmt: skip
        if len(group) > 1:
            t = tally(group, cited)
            out.append(f"| **{reference}, all lists** | | | {t.listed} | {t.applicable} | "
                       f"{t.covered} | **{t.percent}** |")  # fmt: skip
    for listed in lists:
        out += ["", f"## {listed.reference}: `{listed.file.name}`", "",
                f"{listed.source}, version {listed.version}; maintained by {listed.owner}.", "",
                "| control | title | lappguard | note |", "|---|---|---|---|"]  # fmt: skip
        for control in listed.controls:
            checks = cited.get(listed.citation(control), [])
            verdict = (", ".join(checks) if checks
                       else f"not applicable: {control.not_applicable}")  # fmt: skip
            out.append(f"| {control.id} | {_cell(control.title)} | {_cell(verdict)} | "
                       f"{_cell(control.note or '')} |")  # fmt: skip
    known = {listed.citation(c) for listed in lists for c in listed.controls}
    out += ["", "## Every check and the listed controls it implements", "",
            "| check | title | controls | other references |", "|---|---|---|---|"]  # fmt: skip
    for check in policy.checks:
        mine = [r for r in check.references if control_cited(r) in known]
        other = [r for r in check.references if control_cited(r) not in known]
        out.append(f"| {check.id} | {_cell(check.title)} | {_cell(', '.join(mine)) or '-'} | "
                   f"{_cell('; '.join(other)) or '-'} |")  # fmt: skip
    return "\n".join(out) + "\n"


def _text(value: object) -> str | None:
    return None if value is None else " ".join(str(value).split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/coverage.md (or --check it).")
    parser.add_argument("--check", action="store_true", help="only say whether it is current")
    args = parser.parse_args(argv)
    from policies import builtin_policy

    policy = load_policy(builtin_policy("lapp-baseline"))
    lists, wrong = load_lists()
    wrong += problems(lists, policy)
    for line in wrong:
        print(line, file=sys.stderr)
    text = render(lists, policy)
    if args.check:
        current = COVERAGE_DOC.exists() and COVERAGE_DOC.read_text() == text
        if not current:
            print(f"{COVERAGE_DOC} is stale: run scripts/coverage", file=sys.stderr)
        return 0 if current and not wrong else 1
    COVERAGE_DOC.write_text(text)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
