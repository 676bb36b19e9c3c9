"""Files: existence, mode and owner; content tested line by line with a regex."""

from __future__ import annotations

import time

from checks.hosts import Host, HostError
from checks.params import Param
from checks.parsers.lines import C_SPACE, numbered
from checks.regexsafety import EVALUATION_BUDGET, CannotEvaluate, search
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType


def expand(host: Host, patterns: tuple[str, ...]) -> list[str]:
    """Globs expanded on the host; a plain path is kept even when missing (so it can be named)."""
    paths: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            paths.extend(host.glob(pattern))
        else:
            paths.append(pattern)
    return paths


class FileCheck(CheckType):
    """Each matching path exists (or must not), with at most ``mode_max`` and allowed owners.

    ``mode_max: '0644'`` means no permission bit outside 0644 (so 0600 passes, 0664 fails).
    ``missing: pass`` judges only the paths that exist (a backup copy such as /etc/shadow-,
    a /root/.ssh): a file that is not there exposes nothing.
    """

    name = "file"
    schema = {
        "paths": Param("str_list", required=True),
        "present": Param("bool", default=True),
        "mode_max": Param("mode"),
        "owners": Param("str_list"),
        "groups": Param("str_list"),
        "missing": Param("choice", default="fail", choices=("fail", "pass")),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        paths = expand(ctx.host, p["paths"])
        if not p["present"]:
            found = [path for path in paths if ctx.host.lexists(path)]
            if found:
                return failed(*(f"{path} exists" for path in found))
            return passed(f"absent: {', '.join(p['paths'])}")
        absent = []
        if p["missing"] == "pass":
            absent = [path for path in paths if not ctx.host.lexists(path)]
            paths = [path for path in paths if path not in absent]
            if not paths:
                return passed(f"absent: {', '.join(absent or p['paths'])}")
        if not paths:
            return failed(f"nothing matches {', '.join(p['paths'])}")
        problems, good = [], []
        for path in paths:
            try:
                info = ctx.host.stat(path)
            except HostError as exc:
                problems.append(str(exc))
                continue
            wrong = []
            if p["mode_max"] is not None and info.mode & ~p["mode_max"]:
                wrong.append(f"mode {info.mode:04o} exceeds {p['mode_max']:04o}")
            if p["owners"] and info.owner not in p["owners"]:
                wrong.append(f"owner {info.owner} not in {', '.join(p['owners'])}")
            if p["groups"] and info.group not in p["groups"]:
                wrong.append(f"group {info.group} not in {', '.join(p['groups'])}")
            line = f"{path}: {info.mode:04o} {info.owner}:{info.group}"
            (problems if wrong else good).append(f"{line} ({'; '.join(wrong)})" if wrong else line)
        absent = [f"absent: {path}" for path in absent]
        return failed(*problems, *good, *absent) if problems else passed(*good, *absent)


class FileContentCheck(CheckType):
    """Lines of the matching files tested with a regex: ``all``, ``any`` or ``none`` must match.

    Comment lines (``comment`` prefix) and blank lines are ignored. ``missing`` says what an
    absent file means: usually ``fail``; ``pass`` when absence is as good as compliance.
    """

    name = "file_content"
    schema = {
        "paths": Param("str_list", required=True),
        "pattern": Param("regex", required=True),
        "match": Param("choice", default="any", choices=("all", "any", "none")),
        "comment": Param("str", default="#"),
        "missing": Param("choice", default="fail", choices=("fail", "pass", "error")),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        pattern, mode = p["pattern"], p["match"]
        paths = expand(ctx.host, p["paths"])
        matching, non_matching, missing = [], [], []
        started = time.thread_time()
        for path in paths:
            try:
                text = ctx.host.read_text(path)
            except HostError as exc:
                if ctx.host.lexists(path):
                    return errored(f"cannot read {path}", str(exc))
                missing.append(path)
                continue
            for number, line in numbered(text):  # LF ends a line, as for every Unix tool
                stripped = line.strip(C_SPACE)
                if not stripped or (p["comment"] and stripped.startswith(p["comment"])):
                    continue
                if time.thread_time() - started > EVALUATION_BUDGET:
                    return errored(
                        f"cannot evaluate /{pattern.pattern}/ safely: stopped at {path}:{number} "
                        f"after {EVALUATION_BUDGET:g} s of CPU"
                    )
                try:
                    found = search(pattern, line)
                except CannotEvaluate as exc:
                    return errored(f"{path}:{number}: {exc}")
                where = f"{path}:{number}: {stripped}"
                (matching if found else non_matching).append(where)
        if not paths or len(missing) == len(paths):
            absent = ", ".join(missing or p["paths"])
            if p["missing"] == "pass":
                return passed(f"absent: {absent}")
            if p["missing"] == "error":
                return errored(f"cannot check {absent}: not present")
            return failed(f"absent: {absent}")
        if mode == "any":
            return (
                passed(*matching[:5])
                if matching
                else failed(f"no line matches /{pattern.pattern}/ in {', '.join(paths)}")
            )
        if mode == "none":
            return (
                failed(*matching)
                if matching
                else passed(f"no line matches /{pattern.pattern}/ in {', '.join(paths)}")
            )
        return (
            failed(*non_matching)
            if non_matching
            else passed(f"every line matches /{pattern.pattern}/")
        )
