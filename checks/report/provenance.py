"""What an audit ran with: tool version, time, config file, policies and variable values.

Every report format carries it, so a report read months later (or by an auditor) says
which rules it applied and with which settings, not only what it found.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from checks.policy import Origin, Policy
from checks.variables import as_json, as_text
from checks.visible import visible


@dataclass(frozen=True)
class PolicyUsed:
    id: str
    title: str
    version: str
    file: str


@dataclass(frozen=True)
class VariableUsed:
    name: str
    kind: str
    value: Any
    origin: str  # "default", "--var" or the config file and line

    @property
    def text(self) -> str:
        return as_text(self.kind, self.value)


@dataclass(frozen=True)
class Provenance:
    tool_version: str
    generated: float  # epoch seconds
    config: str | None
    root: str | None
    policies: tuple[PolicyUsed, ...]
    variables: tuple[VariableUsed, ...]
    #: A fleet's hosts' own variables (their inventory values), by host name; hosts not
    #: named here ran with ``variables``.
    hosts: Mapping[str, tuple[VariableUsed, ...]] = field(default_factory=dict)

    @property
    def generated_iso(self) -> str:
        return iso8601(self.generated)

    def for_host(self, host: str) -> Provenance:
        """What the audit of ``host`` ran with: its own variables."""
        return replace(self, variables=self.hosts.get(host, self.variables), hosts={})

    def visible(self) -> Provenance:
        """File names and values as every report shows text from outside (``visible``)."""

        def shown(text: str | None) -> str | None:
            return None if text is None else visible(text)

        return replace(
            self,
            config=shown(self.config),
            root=shown(self.root),
            policies=tuple(
                PolicyUsed(visible(p.id), visible(p.title), visible(p.version), visible(p.file))
                for p in self.policies
            ),
            variables=_visible_variables(self.variables),
            hosts={visible(h): _visible_variables(v) for h, v in self.hosts.items()},
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": {"name": "lappguard", "version": self.tool_version},
            "generated_at": self.generated_iso,
            "config": self.config,
            "root": self.root,
            "policies": [
                {"id": p.id, "title": p.title, "version": p.version, "file": p.file}
                for p in self.policies
            ],
            "variables": variables_dict(self.variables),
        }


def variables_dict(variables: Sequence[VariableUsed]) -> dict[str, dict[str, Any]]:
    """Variables as the JSON report and SARIF carry them: value, text and origin by name."""
    return {
        v.name: {"value": as_json(v.value), "text": v.text, "from": v.origin} for v in variables
    }


def _visible_variables(variables: Sequence[VariableUsed]) -> tuple[VariableUsed, ...]:
    return tuple(
        replace(v, value=_visible_value(v.value), origin=visible(v.origin)) for v in variables
    )


def _visible_value(value: Any) -> Any:
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, list | tuple):
        return [_visible_value(item) for item in value]
    return value


def iso8601(epoch: float) -> str:
    """``2025-11-23T12:13:20Z``: UTC, to the second."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_run(
    policies: Sequence[Policy],
    *,
    config: str | None = None,
    root: str | None = None,
    origins: Mapping[str, Origin] | None = None,
    generated: float | None = None,
    hosts: Mapping[str, tuple[Sequence[Policy], Mapping[str, Origin]]] | None = None,
) -> Provenance:
    """The provenance of an audit of ``policies``; ``origins`` names where each variable
    that is not at its default was set. ``hosts``: a fleet's hosts' own policies (loaded
    with their inventory values) and where those values were set, by host name."""
    from agent import __version__

    return Provenance(
        tool_version=__version__,
        generated=time.time() if generated is None else generated,
        config=config,
        root=root,
        policies=tuple(PolicyUsed(p.id, p.title, p.version, p.file) for p in policies),
        variables=variables_used(policies, origins),
        hosts={name: variables_used(*own) for name, own in (hosts or {}).items()},
    )


def variables_used(
    policies: Sequence[Policy], origins: Mapping[str, Origin] | None = None
) -> tuple[VariableUsed, ...]:
    """Every variable the policies declare, with its value and where it was set."""
    variables: dict[str, VariableUsed] = {}
    for policy in policies:
        for name, variable in policy.variables.items():
            origin = (origins or {}).get(name)
            where = "default" if origin is None else _where(origin)
            variables.setdefault(
                name, VariableUsed(name, variable.kind, policy.values.get(name), where)
            )
    return tuple(variables.values())


def _where(origin: Origin) -> str:
    return f"{origin.file}:{origin.line}" if origin.line else origin.file
