"""Security updates actually reach the host: the security archive is a source, no security
update waits to be installed, and no reboot is pending for a new kernel or C library.

Configuration alone (LAPP-PATCH-001..007) says updates *would* be installed; these checks
look at what apt can see and what dpkg has installed.
"""

from __future__ import annotations

from checks.hosts import HostError
from checks.parsers.apt_sources import SOURCE_PARTS, SOURCES_LIST, AptSources, parse_sources
from checks.parsers.os_release import os_release
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType


def apt_sources(ctx: CheckContext) -> AptSources:
    """The APT sources, parsed once per audit. Raises HostError."""
    return ctx.memo(("apt sources",), lambda: parse_sources(ctx.host))


class AptSecuritySourceCheck(CheckType):
    """The release's security archive is an enabled binary (``deb``) source with the main
    component, so apt and unattended-upgrades can see security updates at all.

    The suite must name the host's own release (``bookworm-security``; ``buster/updates``
    before Debian 11): an alias such as ``stable-security`` moves on to the next release by
    itself. Without a release codename in os-release any ``*-security`` suite counts.
    """

    name = "apt_security_source"
    schema = {}

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            sources = apt_sources(ctx)
        except HostError as exc:
            return errored(f"cannot read the APT sources: {exc}")
        codename = os_release(ctx.host).get("VERSION_CODENAME", "")
        suites = (f"{codename}-security", f"{codename}/updates") if codename else ()
        hits = [
            str(entry)
            for entry in sources.entries
            if entry.enabled
            and "deb" in entry.types
            and "main" in entry.components
            and any(
                suite in suites if suites else suite.endswith(("-security", "/updates"))
                for suite in entry.suites
            )
        ]
        refused = [f"apt refuses its sources: {problem}" for problem in sources.problems]
        if refused:
            return failed(*refused, *hits)
        if hits:
            unknown = [] if codename else ["note: no VERSION_CODENAME in os-release"]
            return passed(*hits, *unknown)
        wanted = " or ".join(suites) if suites else "a *-security suite"
        if not sources.files:
            return failed(f"no APT sources at all ({SOURCES_LIST}, {SOURCE_PARTS})")
        return failed(
            f"no enabled 'deb' source of {wanted} with the main component",
            *(f"configured: {entry}" for entry in sources.entries),
        )
