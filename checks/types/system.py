"""Packages, systemd units, processes, listening sockets and commands."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from checks.hosts import HostError, ListeningSocket, PlannedCommand
from checks.params import Param
from checks.remote_facts import PROCESSES_COMMAND, SOCKETS_COMMAND
from checks.result import Verdict, errored, failed, passed
from checks.rootfs import NOTHING_THERE
from checks.types.base import CheckContext, CheckType

UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)


class PackageCheck(CheckType):
    """Debian packages installed (``all`` or ``any`` of them) or absent (none of them)."""

    name = "package"
    schema = {
        "names": Param("str_list", required=True),
        "state": Param("choice", default="installed", choices=("installed", "absent")),
        "match": Param("choice", default="all", choices=("all", "any")),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            installed = ctx.host.packages()
        except HostError as exc:
            return errored(f"cannot list installed packages: {exc}")
        names = self.params["names"]
        present = [f"{n} {installed[n]} installed" for n in names if n in installed]
        missing = [f"{n} not installed" for n in names if n not in installed]
        if self.params["state"] == "absent":
            return failed(*present) if present else passed(f"none installed: {', '.join(names)}")
        if self.params["match"] == "any":
            return passed(*present) if present else failed(*missing)
        return failed(*missing, *present) if missing else passed(*present)


class ServiceCheck(CheckType):
    """systemd units enabled or disabled, judged from unit-file symlinks.

    Reading the ``*.wants``/``*.requires`` links works with no running systemd (a container,
    a ``--root`` image). A unit linked to /dev/null is masked, hence not enabled.
    """

    name = "service"
    schema = {
        "units": Param("str_list", required=True),
        "state": Param("choice", default="enabled", choices=("enabled", "disabled")),
        "match": Param("choice", default="any", choices=("all", "any")),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        enabled = ctx.memo(("enabled_units",), lambda: enabled_units(ctx))
        units = [u if "." in u else f"{u}.service" for u in self.params["units"]]
        on = [f"{u} enabled ({enabled[u]})" for u in units if u in enabled]
        off = [f"{u} not enabled" for u in units if u not in enabled]
        if self.params["state"] == "disabled":
            return failed(*on) if on else passed(*off)
        if self.params["match"] == "any":
            return passed(*on) if on else failed(*off)
        return failed(*off, *on) if off else passed(*on)


def enabled_units(ctx: CheckContext) -> dict[str, str]:
    """Unit name -> the link that enables it; masked units are left out."""
    host = ctx.host
    masked = set()
    for path in host.glob("/etc/systemd/system/*"):
        try:
            if host.readlink(path) == "/dev/null":
                masked.add(path.rsplit("/", 1)[1])
        except HostError:
            continue
    found: dict[str, str] = {}
    for directory in UNIT_DIRS:
        for wants in host.glob(f"{directory}/*.wants") + host.glob(f"{directory}/*.requires"):
            try:
                names = host.listdir(wants)
            except HostError:
                continue
            for unit in names:
                if unit not in masked:
                    found.setdefault(unit, f"{wants}/{unit}")
    return found


class ProcessCheck(CheckType):
    """Processes by name (``names``) or command-line regex (``cmdline``): running or absent.
    ``describe`` names in words what is looked for, for the evidence. ``root_processes``
    (with ``running``): exactly that many of them run as root, the others as anyone else
    (a daemon's one root parent and its unprivileged children)."""

    name = "process"
    needs_live_host = True
    schema = {
        "names": Param("str_list", default=()),
        "cmdline": Param("regex"),
        "state": Param("choice", default="running", choices=("running", "absent")),
        "describe": Param("str", help="what is looked for, in words (e.g. 'lappguard run')"),
        "root_processes": Param("int", help="exactly this many of them run as root"),
    }

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return (PROCESSES_COMMAND,)

    def run(self, ctx: CheckContext) -> Verdict:
        names, cmdline = set(self.params["names"]), self.params["cmdline"]
        matching = [
            proc
            for proc in ctx.host.processes()
            if proc.name in names
            or (cmdline is not None and cmdline.search(" ".join(proc.cmdline)))
        ]
        hits = [
            f"pid {proc.pid} {proc.name} ({proc.user}): {' '.join(proc.cmdline)[:200]}"
            for proc in matching
        ]
        wanted = self.params["describe"] or ", ".join(
            sorted(names) + ([f"/{cmdline.pattern}/"] if cmdline else [])
        )
        if self.params["state"] == "absent":
            return failed(*hits) if hits else passed(f"no process matches {wanted}")
        if not hits:
            return failed(f"no process matches {wanted}")
        expected = self.params["root_processes"]
        if expected is None:
            return passed(*hits)
        if any(not proc.user for proc in matching):
            return errored(f"the owner of a process matching {wanted} cannot be seen", *hits)
        as_root = sum(proc.user == "root" for proc in matching)
        summary = f"{as_root} of {len(matching)} processes matching {wanted} run as root"
        if as_root != expected:
            return failed(f"{summary}, expected exactly {expected}", *hits)
        return passed(summary, *hits)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


class ListeningCheck(CheckType):
    """TCP/UDP sockets selected by owning process and/or port: ``loopback_only`` or ``absent``."""

    name = "listening"
    needs_live_host = True
    schema = {
        "processes": Param("str_list", default=()),
        "ports": Param("str_list", default=()),
        "proto": Param("choice", default="tcp", choices=("tcp", "udp", "any")),
        "expect": Param("choice", default="loopback_only", choices=("loopback_only", "absent")),
    }

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return (SOCKETS_COMMAND,)

    def run(self, ctx: CheckContext) -> Verdict:
        sockets = ctx.host.listening_sockets()
        unsure = [
            s
            for s in sockets
            if self._unsure(s) and (self.params["expect"] == "absent" or not is_loopback(s.address))
        ]
        if unsure:  # it could be one of ours: passing would be a guess
            return errored(
                "cannot tell which process owns " + ", ".join(map(_describe, unsure)) +
                " (audit as root, or with CAP_SYS_PTRACE, to see socket owners)"
            )  # fmt: skip
        selected = [s for s in sockets if self._selects(s)]
        described = [_describe(s) for s in selected]
        if self.params["expect"] == "absent":
            return failed(*described) if selected else passed("no matching socket is listening")
        exposed = [_describe(s) for s in selected if not is_loopback(s.address)]
        if exposed:
            return failed(*exposed)
        if not selected:
            return passed("no matching socket is listening (unix sockets only, or not running)")
        return passed(*described)

    def _selects(self, sock: ListeningSocket) -> bool:
        proto = self.params["proto"]
        if proto != "any" and sock.proto != proto:
            return False
        processes, ports = self.params["processes"], self.params["ports"]
        by_process = bool(processes) and _owner_among(sock, processes) is True
        by_port = bool(ports) and str(sock.port) in ports
        return by_process or by_port if (processes or ports) else True

    def _unsure(self, sock: ListeningSocket) -> bool:
        """A socket that may or may not belong to the processes selected (owner unseen)."""
        processes, proto = self.params["processes"], self.params["proto"]
        if not processes or (proto != "any" and sock.proto != proto):
            return False
        if self.params["ports"] and str(sock.port) in self.params["ports"]:
            return False  # selected by its port anyway
        return _owner_among(sock, processes) is None


def _owner_among(sock: ListeningSocket, names: Sequence[str]) -> bool | None:
    """Whether the socket's process is one of ``names``; None when that cannot be told.

    Without the right to ptrace the owner, the socket's user tells: a user who runs none of
    these programs (root never runs postgres) does not hold their sockets; a service
    account that runs one of them does (the postgres user's sockets are PostgreSQL's, even
    while a pg_dump of it runs); root runs everything, so for root only "all of them" counts
    and anything else is left open.
    """
    if sock.process is not None or sock.pid is not None:
        return sock.process in names
    if not sock.candidates:
        return None
    wanted = [name in names for name in sock.candidates]
    if not any(wanted):
        return False
    return True if all(wanted) or sock.uid != 0 else None


def _describe(sock: ListeningSocket) -> str:
    if sock.pid:
        owner = f"{sock.process or '?'} (pid {sock.pid})"
    elif sock.candidates:
        owner = f"uid {sock.uid}, which runs {', '.join(sock.candidates)}"
    else:
        owner = "owner not visible" + (f" (uid {sock.uid})" if sock.uid is not None else "")
    address = f"[{sock.address}]" if ":" in sock.address else sock.address
    return f"{sock.proto} {address}:{sock.port} {owner}"


class CommandCheck(CheckType):
    """An argv command (never a shell string) with expectations on exit code and output."""

    name = "command"
    needs_live_host = True
    schema = {
        "argv": Param("str_list", required=True),
        "exit_codes": Param("str_list", default=("0",)),
        "stdout_matches": Param("regex"),
        "stdout_not_matches": Param("regex"),
        "timeout": Param("number", default=15),
    }

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return (PlannedCommand(tuple(self.params["argv"]), float(self.params["timeout"])),)

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        try:
            result = ctx.host.run(p["argv"], timeout=float(p["timeout"]))
        except HostError as exc:
            return errored(str(exc))
        head = f"$ {' '.join(p['argv'])} -> exit {result.exit_code}"
        problems = []
        if str(result.exit_code) not in p["exit_codes"]:
            problems.append(f"exit code {result.exit_code} not in {', '.join(p['exit_codes'])}")
        if p["stdout_matches"] is not None and not p["stdout_matches"].search(result.stdout):
            problems.append(f"output does not match /{p['stdout_matches'].pattern}/")
        if p["stdout_not_matches"] is not None:
            hit = p["stdout_not_matches"].search(result.stdout)
            if hit:
                problems.append(
                    f"output matches forbidden /{p['stdout_not_matches'].pattern}/: "
                    f"{_line_at(result.stdout, hit.start())}"
                )
        return failed(head, *problems) if problems else passed(head)


def _line_at(text: str, offset: int) -> str:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return re.sub(r"\s+", " ", text[start : end if end >= 0 else None]).strip()[:200]


#: Files that never had a name, so are not "deleted" ones: memfd_create() and O_TMPFILE
#: (``/tmp/#1234``, what glibc's tmpfile() and Python's TemporaryFile open).
_NAMELESS = re.compile(r"^/memfd:|/#\d+$")
_DELETED = " (deleted)"
#: Processes whose links could not be read that the evidence names (the rest are counted).
UNREAD_SHOWN = 5
#: One command lists them on a live host (over SSH one request, not one per descriptor):
#: every program and descriptor link of every process naming a deleted regular file. It
#: descends only into /proc/PID and /proc/PID/fd: the rest of /proc (each thread's task
#: directory above all) is pruned unread, which made it a quarter cheaper on a quiet host.
_FIND = ["find", "/proc", "-mindepth", "1", "-maxdepth", "3", "-regextype", "posix-extended",
         "!", "-regex", "/proc/[0-9]+(/fd(/[0-9]+)?|/exe)?", "-prune",
         "-o", "-regex", "/proc/[0-9]+/(fd/[0-9]+|exe)", "-lname", "*" + _DELETED,
         "-xtype", "f", "-printf", "%p\\t%l\\n"]  # fmt: skip
_FIND_TIMEOUT = 60.0
#: find's complaint about a process's links: "find: '/proc/1/fd/0': Permission denied".
_FIND_ERROR = re.compile(r"'/proc/(\d+)/(?:fd|exe)\b[^']*'?: (.*)$")


class DeletedFilesCheck(CheckType):
    """No process holds a deleted regular file open or runs a deleted program
    (``/proc/PID/fd`` and ``/proc/PID/exe`` naming ``... (deleted)``), as ``lsof +L1`` lists
    them: a log a daemon still writes after it was removed, a program replaced by an upgrade
    but still running, or one that removed itself. Files that never had a name (memfd,
    O_TMPFILE) are left out. A process whose links cannot be read leaves the check undecided
    unless another already fails it.
    """

    name = "deleted_files"
    schema: dict[str, Param] = {}

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return (PlannedCommand(tuple(_FIND), _FIND_TIMEOUT),)

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            if ctx.host.is_live and ctx.host.which("find"):
                held, unreadable = self._found(ctx)
            else:
                held, unreadable = self._walked(ctx)
        except HostError as exc:
            return errored(f"cannot list the files of the processes: {exc}")
        found = [f"pid {pid} ({self._command(ctx, pid)}) {how}: {path}"
                 for pid, how, path in dict.fromkeys(held)
                 if not _NAMELESS.search(path)]  # fmt: skip
        unread = self._unread(ctx, unreadable)
        if found:
            return failed(*found, *(f"note: {line}" for line in unread))
        if unreadable:
            return errored(f"cannot read the files of {len(unreadable)} processes", *unread)
        return passed("no deleted file is in use")

    def _unread(self, ctx: CheckContext, unreadable: dict[str, str]) -> list[str]:
        """What was not read, in a few lines: the first processes by name, then how many
        more; when permission was refused, what reading them takes."""
        lines = [f"not read: pid {pid} ({self._command(ctx, pid)}): {why}"
                 for pid, why in list(unreadable.items())[:UNREAD_SHOWN]]  # fmt: skip
        if len(unreadable) > UNREAD_SHOWN:
            lines.append(f"not read: {len(unreadable) - UNREAD_SHOWN} more processes")
        if any("Permission denied" in why for why in unreadable.values()):
            lines.append(
                "reading another account's processes takes root (or CAP_SYS_PTRACE, which "
                "lappguard.service does not grant: it would let the agent read any memory)"
            )
        return lines

    def _found(self, ctx: CheckContext) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
        """By find(1) on the host: (pid, how, path) of each deleted file, and the processes
        whose links it could not read (those that ended meanwhile left out)."""
        done = ctx.host.run(_FIND, timeout=_FIND_TIMEOUT)
        if done.exit_code not in (0, 1):
            raise HostError(f"find exited {done.exit_code}: {done.stderr.strip()[:200]}")
        held = []
        for line in done.stdout.splitlines():
            link, _, target = line.partition("\t")
            parts = link.split("/")
            if len(parts) > 3 and target.endswith(_DELETED):
                how = "runs" if parts[3] == "exe" else "holds"
                held.append((parts[2], how, target[: -len(_DELETED)]))
        unreadable: dict[str, str] = {}
        for line in done.stderr.splitlines():
            error = _FIND_ERROR.search(line.replace("\u2018", "'").replace("\u2019", "'"))
            if error and "No such file" not in error.group(2):
                unreadable.setdefault(error.group(1), error.group(2))
        return held, unreadable

    def _walked(self, ctx: CheckContext) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
        """The same, link by link (a host without find, or a tree's /proc)."""
        host = ctx.host
        held: list[tuple[str, str, str]] = []
        unreadable: dict[str, str] = {}
        for pid in sorted((n for n in host.listdir("/proc") if n.isdigit()), key=int):
            try:
                held += [(pid, how, path) for how, path in self._held(ctx, pid)]
            except HostError as exc:
                if host.lexists(f"/proc/{pid}"):  # else it ended meanwhile
                    unreadable[pid] = str(exc)
        return held, unreadable

    def _held(self, ctx: CheckContext, pid: str) -> list[tuple[str, str]]:
        """(how, path) of each deleted regular file the process runs or holds open."""
        links = [("runs", f"/proc/{pid}/exe")]
        links += [("holds", f"/proc/{pid}/fd/{fd}") for fd in ctx.host.listdir(f"/proc/{pid}/fd")]
        held = []
        for how, link in links:
            try:
                target = ctx.host.readlink(link)
            except HostError as exc:
                gone = getattr(exc.__cause__, "errno", None) in NOTHING_THERE
                if gone if how == "runs" else not ctx.host.lexists(link):
                    continue  # a kernel thread has no program; a closed descriptor is gone
                raise
            if target.endswith(_DELETED) and self._regular(ctx, link):
                held.append((how, target[: -len(_DELETED)]))
        return held

    def _regular(self, ctx: CheckContext, link: str) -> bool:
        """Whether the link leads to a regular file (not a device such as /dev/null); in a
        tree's /proc, where the link leads nowhere, what it names is taken as a file."""
        try:
            return ctx.host.stat(link).is_file
        except HostError:
            return not ctx.host.is_live

    def _command(self, ctx: CheckContext, pid: str) -> str:
        try:
            return ctx.host.read_text(f"/proc/{pid}/comm").strip() or "?"
        except HostError:
            return "?"
