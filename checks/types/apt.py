"""APT configuration checks (periodic updates, unattended-upgrades settings and origins)."""

from __future__ import annotations

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.apt import AptConfig, AptValue, parse_apt_config
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType


def apt_config(ctx: CheckContext) -> AptConfig:
    """apt.conf.d/* and apt.conf, parsed once per audit. Raises HostError."""
    return ctx.memo(("apt.conf",), lambda: parse_apt_config(ctx.host))


class AptConfCheck(CheckType):
    """An APT key (``A::B::C``, case-insensitive; alternatives allowed) tested by ``expect``,
    and/or a list key (e.g. Unattended-Upgrade::Origins-Pattern) of which at least one entry
    must match ``any_matches``. ``default`` is the value apt uses when the key is unset.

    A syntax error fails every apt check: apt then refuses to run, so nothing is updated.
    """

    name = "apt_conf"
    schema = {
        "key": Param("str_list", required=True, help="key, or alternative keys, in order"),
        "expect": Param("expect"),
        "any_matches": Param("regex", help="some list entry of the key(s) must match"),
        "default": Param("str", help="value apt uses when the key is unset"),
        "describe": Param("str", help="what any_matches looks for, in words, for evidence"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        if p["expect"] is None and p["any_matches"] is None:
            return errored("give expect, any_matches or both")
        try:
            config = apt_config(ctx)
        except HostError as exc:
            return errored(f"cannot read the APT configuration: {exc}")
        syntax = [f"apt rejects its configuration: {problem}" for problem in config.problems]
        problems, evidence = [], []
        if p["expect"] is not None:
            line, violation = self._scalar(config)
            (problems if violation else evidence).append(
                f"{line}: {violation}" if violation else line
            )
        if p["any_matches"] is not None:
            line, ok = self._list(config)
            (evidence if ok else problems).append(line)
        if syntax or problems:
            return failed(*syntax, *problems, *evidence)
        return passed(*evidence)

    def _scalar(self, config: AptConfig) -> tuple[str, str | None]:
        found: AptValue | None = next(
            (v for v in map(config.get, self.params["key"]) if v is not None), None
        )
        keys = " / ".join(self.params["key"])
        if found is not None:
            return str(found), self.params["expect"].violation(found.value)
        default = self.params["default"]
        if default is not None:
            line = f'{keys} not set: apt uses "{default}"'
            return line, self.params["expect"].violation(default)
        return f"{keys} not set", self.params["expect"].violation(None)

    def _list(self, config: AptConfig) -> tuple[str, bool]:
        pattern = self.params["any_matches"]
        entries = [item for key in self.params["key"] for item in config.items(key)]
        hits = [str(item) for item in entries if pattern.search(item.value)]
        keys = " / ".join(self.params["key"])
        wanted = self.params["describe"]
        if hits:
            return f"{keys}: {hits[0]} names {wanted or f'/{pattern.pattern}/'}", True
        listed = "; ".join(str(item) for item in entries) or "no entries"
        return f"{keys}: no entry names {wanted or f'/{pattern.pattern}/'} ({listed})", False
