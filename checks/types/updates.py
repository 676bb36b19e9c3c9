"""Security updates actually reach the host: the security archive is a source, no security
update waits to be installed, and no reboot is pending for a new kernel or C library.

Configuration alone (LAPP-PATCH-001..007) says updates *would* be installed; these checks
look at what apt can see and what dpkg has installed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from checks.hosts import Host, HostError, PlannedCommand
from checks.params import Param
from checks.parsers.apt_lists import (
    LISTS_DIR,
    Release,
    digest_command,
    offered_versions,
    packages_indexes,
    releases,
)
from checks.parsers.apt_sources import SOURCE_PARTS, SOURCES_LIST, AptSources, parse_sources
from checks.parsers.deb_version import compare, version_key
from checks.parsers.dpkg import DPKG_INFO, DpkgPackage
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


#: apt.systemd.daily touches it after each successful unattended-upgrade run.
UPGRADE_STAMP = "/var/lib/apt/periodic/upgrade-stamp"
#: ... and after each successful apt-get update.
UPDATE_STAMP = "/var/lib/apt/periodic/update-stamp"
#: unattended-upgrades' own log, written on every run however it was started.
UNATTENDED_LOG = "/var/log/unattended-upgrades/unattended-upgrades.log"
SHOWN = 20  # pending updates named in the evidence; the rest are counted


@dataclass(frozen=True)
class PendingUpdate:
    package: str
    architecture: str
    installed: str
    candidate: str
    release: Release
    held: bool

    def __str__(self) -> str:
        hold = " (held)" if self.held else ""
        return (
            f"{self.package}:{self.architecture} {self.installed} -> {self.candidate} "
            f"({self.release}){hold}"
        )


class SecurityUpdatesCheck(CheckType):
    """No security update waits longer than ``max_days`` to be installed.

    Pending means: a downloaded index of a security archive offers a newer version of an
    installed package (held packages included: a hold is no excuse). How long one has
    waited cannot be read from the host (indexes carry no dates and apt keeps no history),
    so a pending update fails whenever something shows it is not about to be installed:
    the indexes are older than ``max_days`` (then nothing new is seen either, pending or
    not); unattended-upgrades has not completed a run for ``max_days``; or it completed a
    run after the indexes last changed, so it saw the update and left it (held, a conffile
    prompt, a new dependency). Otherwise it arrived after unattended-upgrades' last run,
    which installs it on its next one.
    """

    name = "security_updates"
    needs_live_host = True
    schema = {"max_days": Param("number", default=2, help="how long an update may wait")}

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        indexes = [path for release in _security_releases(ctx)
                   for path in packages_indexes(ctx.host, release)]  # fmt: skip
        return [digest_command(path) for path in indexes]

    def run(self, ctx: CheckContext) -> Verdict:
        limit = self.params["max_days"] * 86400
        now = ctx.clock()
        try:
            security = _security_releases(ctx)
            if not security:
                return failed(
                    f"no downloaded index of a security archive in {LISTS_DIR}: "
                    "apt cannot see security updates (has apt-get update run since the "
                    "security source was added?)"
                )
            pending = pending_updates(ctx, security)
            refreshed = _newest_mtime(ctx, [LISTS_DIR, UPDATE_STAMP, *(r.path for r in security)])
            changed = ctx.host.stat(LISTS_DIR).mtime
            upgraded = _newest_mtime(ctx, [UPGRADE_STAMP, UNATTENDED_LOG])
        except HostError as exc:
            return errored(f"cannot read what apt sees: {exc}")
        lists = f"package lists last refreshed {_ago(now, refreshed)}"
        if now - refreshed > limit:
            return failed(f"{lists}: security updates since then are not seen", *_named(pending))
        if not pending:
            return passed(f"no security update pending; {lists}")
        count = f"{len(pending)} security update(s) pending"
        if upgraded is None or now - upgraded > limit:
            when = "never" if upgraded is None else _ago(now, upgraded)
            return failed(f"{count}; unattended-upgrades last completed a run: {when}",
                          *_named(pending))  # fmt: skip
        if upgraded > changed:
            return failed(
                f"{count}; unattended-upgrades ran {_ago(now, upgraded)}, after the package "
                f"lists changed ({_ago(now, changed)}), and left them",
                *_named(pending),
            )
        return passed(
            f"{count}, offered since unattended-upgrades last ran ({_ago(now, upgraded)}); "
            "its next run installs them",
            *_named(pending),
        )


def _security_releases(ctx: CheckContext) -> list[Release]:
    """The downloaded suites of a security archive, read once per audit (the commands a
    remote host runs in advance are planned from them too). Raises HostError."""
    every = ctx.memo(("apt releases",), lambda: releases(ctx.host))
    return [release for release in every if release.is_security]


def pending_updates(ctx: CheckContext, security: list[Release]) -> list[PendingUpdate]:
    """Installed packages a security index offers a newer version of. Raises HostError."""
    installed = {(p.name, p.architecture): p for p in ctx.host.dpkg_packages() if p.installed}
    pending = []
    for release in security:
        for path in packages_indexes(ctx.host, release):
            offered = offered_versions(ctx.host, path)
            for key, candidate in offered.items():
                package = installed.get(key)
                if package and compare(candidate, package.version) > 0:
                    pending.append(PendingUpdate(*key, package.version, candidate, release,
                                                 package.want == "hold"))  # fmt: skip
    return sorted(pending, key=lambda u: (u.package, u.architecture))


def _newest_mtime(ctx: CheckContext, paths: list[str]) -> float | None:
    times = []
    for path in paths:
        try:
            times.append(ctx.host.stat(path).mtime)
        except HostError:
            continue
    return max(times, default=None)


def _named(pending: list[PendingUpdate]) -> list[str]:
    shown = [f"pending: {update}" for update in pending[:SHOWN]]
    if len(pending) > SHOWN:
        shown.append(f"... and {len(pending) - SHOWN} more")
    return shown


def _ago(now: float, then: float) -> str:
    return f"{(now - then) / 86400:.1f} days ago"


REBOOT_REQUIRED = ("/run/reboot-required", "/var/run/reboot-required")
KERNEL_RELEASE = "/proc/sys/kernel/osrelease"
KERNEL_VERSION = "/proc/version"
BOOT_TIME = "/proc/stat"
_KERNEL_PACKAGE = re.compile(r"linux-image-(\d.*)")
_DEBIAN_BUILD = re.compile(r"\bDebian (\S+) \(")
#: Libraries every process maps: a new version reaches running programs only by a restart.
C_LIBRARY = "libc6"


class RebootPendingCheck(CheckType):
    """The running system is the installed one: no reboot is pending for a new kernel or C
    library. Any one of these fails it: the reboot-required flag that packages set (Debian's
    unattended-upgrades kernel hook, needrestart, Ubuntu's update-notifier); a Debian kernel
    package newer than the running kernel, or the running kernel's own package upgraded
    since it booted (/proc/version names the build); the C library upgraded after boot."""

    name = "reboot_pending"
    needs_live_host = True
    schema = {}

    def run(self, ctx: CheckContext) -> Verdict:
        host = ctx.host
        try:
            packages = host.dpkg_packages()
            # a bounded read: the kernel refuses sysctl reads asking for many megabytes
            running = host.read_bytes(KERNEL_RELEASE, limit=256).decode("ascii", "replace").strip()
            build = _DEBIAN_BUILD.search(host.read_text(KERNEL_VERSION))
            booted = _boot_time(host.read_text(BOOT_TIME))
        except HostError as exc:
            return errored(f"cannot compare the running system with the installed one: {exc}")
        reasons, facts = [], []
        for flag in REBOOT_REQUIRED:
            if host.exists(flag):
                listed = _read_or_empty(host, f"{flag}.pkgs").split()
                why = f" by {', '.join(listed)}" if listed else ""
                reasons.append(f"{flag} is set{why}")
                break
        else:
            facts.append("no reboot-required flag")
        kernels = {
            m.group(1): p
            for p in packages
            if p.installed and (m := _KERNEL_PACKAGE.fullmatch(p.name))
        }
        if kernels:
            kernel = _kernel_reason(running, build.group(1) if build else None, kernels)
            if kernel:
                reasons.append(kernel)
            else:
                facts.append(f"running kernel {running} is the newest installed")
        else:
            facts.append(
                f"running kernel {running}; no Debian kernel package installed (a container "
                "or a kernel of its own): not compared"
            )
        libc = _upgraded_since(host, packages, C_LIBRARY, booted)
        if libc:
            reasons.append(libc)
        else:
            facts.append(f"{C_LIBRARY} not upgraded since boot")
        return failed(*reasons, *facts) if reasons else passed(*facts)


def _kernel_reason(running: str, build: str | None, kernels: dict[str, DpkgPackage]) -> str:
    """Why the running kernel is not the installed one ("" when it is)."""
    newest_release, newest = max(kernels.items(), key=lambda kv: version_key(kv[1].version))
    if newest_release != running:
        return f"running kernel {running}, but {newest.name} {newest.version} is installed"
    if build and compare(kernels[running].version, build) != 0:
        return (
            f"running kernel {running} was built as {build}; its package is now "
            f"{kernels[running].version}"
        )
    return ""


def _upgraded_since(
    host: Host, packages: list[DpkgPackage], name: str, booted: float
) -> str | None:
    """Why ``name`` was installed after boot (by its file list's time), or None."""
    for package in packages:
        if package.name != name or not package.installed:
            continue
        for listing in (f"{DPKG_INFO}/{name}:{package.architecture}.list",
                        f"{DPKG_INFO}/{name}.list"):  # fmt: skip
            try:
                changed = host.stat(listing).mtime
            except HostError:
                continue
            if changed > booted:
                return (f"{name} {package.version} was installed after the system booted "
                        "(running programs still use the old one)")  # fmt: skip
            break
    return None


def _boot_time(stat: str) -> float:
    for line in stat.split("\n"):
        if line.startswith("btime "):
            return float(line.split()[1])
    raise HostError(f"{BOOT_TIME}: no btime line")


def _read_or_empty(host: Host, path: str) -> str:
    try:
        return host.read_text(path)
    except HostError:
        return ""
