"""sshd limits that one keyword's value cannot express: connection-flood throttling
(MaxStartups with PerSourceMaxStartups) and whether logins are limited to named users."""

from __future__ import annotations

from typing import ClassVar

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.sshd import DEFAULT_CONFIG, ConnectionSpec, EffectiveSshd
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType
from checks.types.sshd import AsksDefaultClient, effective_config

CONFIG = Param("str", default=DEFAULT_CONFIG, help="sshd_config path (sshd -f)")


def _view(ctx: CheckContext, config: str) -> EffectiveSshd:
    return effective_config(ctx, config, ConnectionSpec())


def _shown(view: EffectiveSshd, keyword: str) -> str:
    setting = view.get(keyword)
    return str(setting) if setting else f"{keyword} not set"


def max_startups(text: str) -> tuple[int, int, int] | None:
    """``start:rate:full`` (or a single number, meaning start = full, rate 100) as sshd
    reads MaxStartups; None when it is not that."""
    parts = text.split(":")
    if not all(p.isdigit() for p in parts) or len(parts) not in (1, 3):
        return None
    if len(parts) == 1:
        return int(parts[0]), 100, int(parts[0])
    start, rate, full = (int(p) for p in parts)
    return start, rate, full


class SshdStartupsCheck(AsksDefaultClient, CheckType):
    """MaxStartups begins dropping by ``start`` unauthenticated connections, drops at least
    ``rate``% of them from there, refuses all at ``full``; and PerSourceMaxStartups caps one
    source at ``per_source`` or fewer (and no more than MaxStartups' start)."""

    name = "sshd_startups"
    schema: ClassVar[dict[str, Param]] = {
        "start": Param("int", default=10),
        "rate": Param("int", default=30),
        "full": Param("int", default=60),
        "per_source": Param("int", default=10),
        "config": CONFIG,
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        try:
            view = _view(ctx, p["config"])
        except HostError as exc:
            return errored(f"cannot read {p['config']}: {exc}")
        evidence = [_shown(view, "maxstartups"), _shown(view, "persourcemaxstartups")]
        problems = []
        limits = max_startups(view.first("maxstartups") or "")
        if limits is None:
            problems.append(f"{evidence[0]}: not start:rate:full")
        else:
            start, rate, full = limits
            if start > p["start"] or rate < p["rate"] or full > p["full"]:
                wanted = f"{p['start']}:{p['rate']}:{p['full']}"
                problems.append(f"{evidence[0]}: looser than {wanted}")
        per_source = view.first("persourcemaxstartups") or "none"
        cap = min(p["per_source"], limits[0] if limits else p["per_source"])
        if not per_source.isdigit() or not 0 < int(per_source) <= cap:
            problems.append(f"{evidence[1]}: one source may take every slot (want 1 to {cap})")
        notes = [f"note: {n}" for n in view.notes]
        return failed(*problems, *notes) if problems else passed(*evidence, *notes)


class SshdAllowListCheck(AsksDefaultClient, CheckType):
    """AllowUsers or AllowGroups names who may log in (for an outside client)."""

    name = "sshd_allow_list"
    schema: ClassVar[dict[str, Param]] = {"config": CONFIG}

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            view = _view(ctx, self.params["config"])
        except HostError as exc:
            return errored(f"cannot read {self.params['config']}: {exc}")
        notes = [f"note: {n}" for n in view.notes]
        found = [_shown(view, k) for k in ("allowusers", "allowgroups") if view.values(k)]
        if found:
            return passed(*found, *notes)
        return failed("neither AllowUsers nor AllowGroups is set: every account may log in", *notes)
