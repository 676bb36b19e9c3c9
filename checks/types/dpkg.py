"""The dpkg database kept clean: every package fully installed, no leftovers of removed
packages, old kernels cleaned up."""

from __future__ import annotations

import re

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.dpkg import DpkgPackage
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType

#: Kernel image packages, as Lynis counts them (Debian, Raspberry Pi OS, Proxmox).
KERNEL_PACKAGES = re.compile(r"linux-image-[0-9]|raspberrypi-kernel|pve-kernel-[0-9]")


class DpkgStateCheck(CheckType):
    """One aspect of dpkg's database.

    ``broken``: no package is half-installed, unpacked but not configured, waiting for
    triggers or marked for reinstallation (what ``dpkg --audit`` lists): its files and
    scripts are in an unknown mix of two versions, and apt refuses most work until fixed.
    ``leftovers``: no removed package still has its configuration files (state
    config-files): cron jobs, init scripts and daemon configs of software that is gone.
    ``kernels``: at most ``max_kernels`` kernel packages are known to dpkg.
    """

    name = "dpkg_state"
    schema = {
        "aspect": Param("choice", required=True, choices=("broken", "leftovers", "kernels")),
        "max_kernels": Param("int", default=5),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            packages = ctx.host.dpkg_packages()
        except HostError as exc:
            return errored(f"cannot read dpkg's database: {exc}")
        aspect = self.params["aspect"]
        if aspect == "broken":
            broken = [p for p in packages if p.flag == "reinstreq" or p.state in _UNFINISHED]
            if broken:
                return failed(*(f"{_name(p)}: {p.state}, {p.flag}" for p in broken))
            return passed(f"{len(packages)} packages, every one fully installed or removed")
        if aspect == "leftovers":
            left = [p for p in packages if p.state == "config-files"]
            if left:
                return failed(*(f"{_name(p)}: removed, configuration files left" for p in left))
            return passed("no removed package left configuration files behind")
        kernels = [p for p in packages if p.state != "not-installed"
                   and KERNEL_PACKAGES.match(p.name)]  # fmt: skip
        listed = [f"{_name(p)} {p.version} ({p.state})" for p in kernels]
        limit = self.params["max_kernels"]
        if len(kernels) > limit:
            return failed(f"{len(kernels)} kernel packages (at most {limit})", *listed)
        return passed(f"{len(kernels)} kernel package(s)", *listed)


_UNFINISHED = frozenset(
    {"half-installed", "unpacked", "half-configured", "triggers-awaited", "triggers-pending"}
)


def _name(package: DpkgPackage) -> str:
    arch = f":{package.architecture}" if package.architecture else ""
    return f"{package.name}{arch}"
