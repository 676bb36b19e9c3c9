"""Security updates reach the host: the security archive is an APT source (with apt itself
as the oracle of what the sources say), no security update waits, no reboot is pending."""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES, require_program
from namespaces import entered
from remote_hosts import Lan, counted_sftp_requests, lan_of_one
from servers import run_check
from treeutil import context, make_tree

from checks.hosts import CachedHost, HostError, LocalHost
from checks.parsers.apt_lists import (
    APT_HELPER,
    index_command,
    offered_versions,
    package_versions,
    packages_indexes,
    read_index,
    releases,
)
from checks.parsers.apt_sources import parse_sources
from checks.result import Status
from checks.ssh_host import SSHHost
from checks.types.base import CheckContext
from checks.types.updates import (
    AptSecuritySourceCheck,
    RebootPendingCheck,
    SecurityUpdatesCheck,
    pending_updates,
)

BOOKWORM = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
DEBIAN_SOURCES = (FIXTURES / "apt" / "debian.sources").read_text()
INSTALLER_LIST = (FIXTURES / "apt" / "sources.list.bookworm").read_text()
SECURITY_LINE = (
    "deb http://security.debian.org/debian-security bookworm-security main non-free-firmware"
)
SOURCES_D = "/etc/apt/sources.list.d"
SECURITY_ARCHIVE = "http://deb.debian.org/debian-security"


def tree(root: Path, files: dict[str, str], os_release: str | None = BOOKWORM) -> Path:
    if os_release is not None:
        files = {"/etc/os-release": os_release, **files}
    return make_tree(root, files)


def security_source(root: Path):
    return run_check(AptSecuritySourceCheck, {}, context(root))


# name: (files, status, first evidence line)
CASES = {
    "deb822 of the container image": (
        {f"{SOURCES_D}/debian.sources": DEBIAN_SOURCES},
        "pass",
        f"{SOURCES_D}/debian.sources:8: deb http://deb.debian.org/debian-security "
        "bookworm-security main",
    ),
    "sources.list of the installer": (
        {"/etc/apt/sources.list": INSTALLER_LIST},
        "pass",
        f"/etc/apt/sources.list:6: {SECURITY_LINE}",
    ),
    "security line commented out": (
        {"/etc/apt/sources.list": INSTALLER_LIST.replace(SECURITY_LINE, f"# {SECURITY_LINE}")},
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "only source packages": (
        {"/etc/apt/sources.list": f"deb-src {SECURITY_ARCHIVE} bookworm-security main\n"},
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "deb822 stanza disabled": (
        {
            f"{SOURCES_D}/debian.sources": DEBIAN_SOURCES.replace(
                "Suites: bookworm-security", "Suites: bookworm-security\nEnabled: no"
            )
        },
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "the previous release's security suite": (
        {"/etc/apt/sources.list": INSTALLER_LIST.replace("bookworm-security", "bullseye-security")},
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "an alias that moves with the releases": (
        {"/etc/apt/sources.list": INSTALLER_LIST.replace("bookworm-security", "stable-security")},
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "without the main component": (
        {"/etc/apt/sources.list": f"deb {SECURITY_ARCHIVE} bookworm-security contrib\n"},
        "fail",
        "no enabled 'deb' source of bookworm-security or bookworm/updates with the main component",
    ),
    "in a file apt ignores by its name": (
        {f"{SOURCES_D}/security.list.disabled": f"{SECURITY_LINE}\n"},
        "fail",
        "no APT sources at all (/etc/apt/sources.list, /etc/apt/sources.list.d)",
    ),
    "a malformed line stops apt": (
        {"/etc/apt/sources.list": f"{SECURITY_LINE}\ndeb http://deb.debian.org/debian\n"},
        "fail",
        "apt refuses its sources: /etc/apt/sources.list:2: malformed entry (dist) "
        "(apt refuses its sources)",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_security_source(tmp_path, name):
    files, status, first = CASES[name]
    verdict = security_source(tree(tmp_path, files))
    assert (verdict.status.value, verdict.evidence[0]) == (status, first)


def test_without_a_release_codename_any_security_suite_counts(tmp_path):
    root = tree(tmp_path, {"/etc/apt/sources.list": INSTALLER_LIST}, os_release=None)
    verdict = security_source(root)
    assert verdict.status is Status.PASS
    assert verdict.evidence[-1] == "note: no VERSION_CODENAME in os-release"


def apt_index_targets(root: Path) -> tuple[int, set[tuple[str, str, str, str]]]:
    """What apt itself makes of the tree's sources: (exit code, {(type, URI, suite,
    component)} of the enabled entries)."""
    apt_get = require_program("apt-get")
    state = root.parent / f"{root.name}-apt-state"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            apt_get,
            *("-o", f"Dir::Etc={root}/etc/apt", "-o", "Dir::Etc::Parts=/nonexistent"),
            *("-o", f"Dir::State={state}", "-o", f"Dir::Cache={state}/cache"),
            *("indextargets", "--no-release-info"),
            *("--format", "$(TARGET_OF) $(REPO_URI) $(RELEASE) $(COMPONENT) $(IDENTIFIER)"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    targets = set()
    for line in done.stdout.splitlines():
        words = line.split()
        if len(words) == 5 and words[4] in ("Packages", "Sources"):
            targets.add(tuple(words[:4]))
    return done.returncode, targets


@pytest.mark.parametrize("name", CASES)
def test_the_parser_reads_the_sources_as_apt_does(tmp_path, name):
    root = tree(tmp_path / "root", CASES[name][0])
    code, targets = apt_index_targets(root)
    sources = parse_sources(LocalHost(str(root)))
    assert (code != 0) == bool(sources.problems)
    if code == 0:
        ours = {
            (kind, uri if uri.endswith("/") else f"{uri}/", suite, component)
            for entry in sources.entries
            if entry.enabled
            for kind in entry.types
            for uri in entry.uris
            for suite in entry.suites
            for component in entry.components
        }
        assert ours == targets


# --- security_updates ----------------------------------------------------------------------

NOW = 1_800_000_000.0
DAY = 86400.0
LISTS = "/var/lib/apt/lists"
SECURITY = "deb.debian.org_debian-security_dists_bookworm-security"
INDEX = f"{LISTS}/{SECURITY}_main_binary-amd64_Packages"
LISTS_FIXTURE = FIXTURES / "apt" / "lists"
UPGRADE_STAMP = "/var/lib/apt/periodic/upgrade-stamp"
#: What the fixture index offers (security versions).
OFFERED = {
    "libssl3": "3.0.22-1~deb12u2",
    "openssl": "3.0.22-1~deb12u2",
    "tzdata": "2026f-0+deb12u1",
}


def status_file(packages: dict[str, tuple[str, str]], held: tuple[str, ...] = ()) -> str:
    """dpkg's status file for ``packages`` (name -> (version, architecture))."""
    return "\n".join(
        f"Package: {name}\nStatus: {'hold' if name in held else 'install'} ok installed\n"
        f"Architecture: {arch}\nVersion: {version}\n"
        for name, (version, arch) in packages.items()
    )


UP_TO_DATE = {
    "libssl3": (OFFERED["libssl3"], "amd64"),
    "openssl": (OFFERED["openssl"], "amd64"),
    "tzdata": (OFFERED["tzdata"], "all"),
    "libpq5": ("15.20-0+deb12u1", "amd64"),
}
BEHIND = {
    **UP_TO_DATE,
    "libssl3": ("3.0.15-1~deb12u1", "amd64"),
    "tzdata": ("2024a-0+deb12u1", "all"),
}


def apt_tree(
    root: Path,
    installed: dict[str, tuple[str, str]],
    *,
    lists_changed: float = NOW - 0.2 * DAY,
    upgraded: float | None = None,
    held: tuple[str, ...] = (),
    index_suffix: str = "",
    with_security: bool = True,
) -> Path:
    files: dict[str, str | bytes] = {"/var/lib/dpkg/status": status_file(installed, held)}
    if with_security:
        release = f"{SECURITY}_InRelease"
        files[f"{LISTS}/{release}"] = (LISTS_FIXTURE / release).read_text()
        index = (LISTS_FIXTURE / Path(INDEX).name).read_bytes()
        files[INDEX + index_suffix] = gzip.compress(index) if index_suffix == ".gz" else index
    make_tree(root, files)
    (root / LISTS.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path in (root / LISTS.lstrip("/")).iterdir():
        os.utime(path, (lists_changed, lists_changed))
    os.utime(root / LISTS.lstrip("/"), (lists_changed, lists_changed))
    if upgraded is not None:
        make_tree(root, {UPGRADE_STAMP: ""})
        os.utime(root / UPGRADE_STAMP.lstrip("/"), (upgraded, upgraded))
    return root


def updates(root: Path, max_days: float = 2):
    return run_check(SecurityUpdatesCheck, {"max_days": max_days}, context(root, clock=lambda: NOW))


PENDING = (
    "pending: libssl3:amd64 3.0.15-1~deb12u1 -> 3.0.22-1~deb12u2 (Debian-Security "
    "bookworm-security)",
    "pending: tzdata:all 2024a-0+deb12u1 -> 2026f-0+deb12u1 (Debian-Security bookworm-security)",
)


def test_nothing_pending_with_fresh_lists_passes(tmp_path):
    verdict = updates(apt_tree(tmp_path, UP_TO_DATE))
    assert (verdict.status, verdict.evidence) == (
        Status.PASS,
        ("no security update pending; package lists last refreshed 0.2 days ago",),
    )


def test_stale_lists_fail_even_with_nothing_pending(tmp_path):
    verdict = updates(apt_tree(tmp_path, UP_TO_DATE, lists_changed=NOW - 5 * DAY))
    assert (verdict.status, verdict.evidence) == (
        Status.FAIL,
        ("package lists last refreshed 5.0 days ago: security updates since then are not seen",),
    )


@pytest.mark.parametrize(
    ("lists_changed", "upgraded", "status", "first"),
    [
        (NOW - 0.5 * DAY, None, "fail", "2 security update(s) pending; unattended-upgrades "
         "last completed a run: never"),
        (NOW - 0.5 * DAY, NOW - 3 * DAY, "fail", "2 security update(s) pending; "
         "unattended-upgrades last completed a run: 3.0 days ago"),
        (NOW - 1.5 * DAY, NOW - 1 * DAY, "fail", "2 security update(s) pending; "
         "unattended-upgrades ran 1.0 days ago, after the package lists changed (1.5 days "
         "ago), and left them"),
        (NOW - 0.5 * DAY, NOW - 1 * DAY, "pass", "2 security update(s) pending, offered since "
         "unattended-upgrades last ran (1.0 days ago); its next run installs them"),
    ],
)  # fmt: skip
def test_pending_updates_fail_unless_the_next_unattended_run_will_install_them(
    tmp_path, lists_changed, upgraded, status, first
):
    root = apt_tree(tmp_path, BEHIND, lists_changed=lists_changed, upgraded=upgraded)
    verdict = updates(root)
    assert (verdict.status.value, verdict.evidence) == (status, (first, *PENDING))


def test_a_held_package_is_pending_all_the_same(tmp_path):
    verdict = updates(apt_tree(tmp_path, BEHIND, held=("tzdata",)))
    assert verdict.status is Status.FAIL
    assert verdict.evidence[-1] == f"{PENDING[1]} (held)"


def test_a_compressed_index_reads_the_same(tmp_path):
    plain = updates(apt_tree(tmp_path / "a", BEHIND))
    packed = updates(apt_tree(tmp_path / "b", BEHIND, index_suffix=".gz"))
    assert plain == packed


def test_no_security_index_fails(tmp_path):
    verdict = updates(apt_tree(tmp_path, UP_TO_DATE, with_security=False))
    assert verdict.evidence == (
        f"no downloaded index of a security archive in {LISTS}: apt cannot see security "
        "updates (has apt-get update run since the security source was added?)",
    )


# --- what a host sends of an index --------------------------------------------------------


def packed(plain: Path, suffix: str) -> Path:
    """``plain`` as apt may keep it: itself (``""``), or beside it as lz4 or zstd."""
    if not suffix:
        return plain
    target = plain.with_name(plain.name + suffix)
    output = ["-o", str(target)] if suffix == ".zst" else [str(target)]
    tool = require_program({".lz4": "lz4", ".zst": "zstd"}[suffix])
    subprocess.run([tool, "-q", "-f", str(plain), *output], check=True)
    return target


def written(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def whole(path: Path) -> str:
    """An index's whole text, decompressed by apt itself: the oracle."""
    if path.suffix not in (".lz4", ".zst"):
        return path.read_bytes().decode("utf-8", "replace")
    done = subprocess.run([APT_HELPER, "cat-file", str(path)], capture_output=True, check=True)
    return done.stdout.decode("utf-8", "replace")


#: What ``package_versions`` might misread in a filtered index: field names in any case, a
#: CRLF stanza, a line of blanks (no stanza's end), a Description continuation line that
#: looks like a field, a value with trailing words, names apt does not read as the fields
#: (a space before the colon, a Kelvin sign for the k), a NUL byte, bytes that are not
#: UTF-8, blank lines in a row, a package listed twice, no newline at the end.
TRICKY = (
    b"Package: plain\nSource: x\nVersion: 1.0\nArchitecture: amd64\nDescription: a tool\n"
    b" Package: fake\n Version: 9\n.\n\n"
    b"PACKAGE: shouting\nversion:2.0\nARCHITECTURE:\tall\n\n\n\n"
    b"Package: crlf\r\nVersion: 3.0\r\nArchitecture: amd64\r\n\r\n"
    b"Package: blanks\nArchitecture: amd64\nVersion: 1 \n \t\nVersion: 4\t \n\n"
    b"Package: trailing words\nVersion: 1\nArchitecture: amd64\n\n"
    b"Package : spaced\nVersion: 1\nArchitecture: amd64\n\n"
    b"Pac\xe2\x84\xaaage: kelvin\nVersion: 1\nArchitecture: amd64\n\n"
    b"Package: nul\nDescription: a \x00 byte and \xff\xfe\nVersion: 5\nArchitecture: arm64\n\n"
    b"Package-Type: udeb\nXPackage: no\nPackage: twice\nVersion: 1.2\nArchitecture: all\n\n"
    b"Package: twice\nVersion: 1.10\nArchitecture: all\n\n"
    b"Package: last\nVersion: 7\nArchitecture: all"
)
#: ... and what it reads in the whole of it.
TRICKY_VERSIONS = {
    ("plain", "amd64"): "1.0",
    ("shouting", "all"): "2.0",
    ("blanks", "amd64"): "4",
    ("nul", "arm64"): "5",
    ("twice", "all"): "1.10",
    ("last", "all"): "7",
}
SUFFIXES = ["", ".lz4", ".zst"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_host_sends_only_the_lines_package_versions_reads(tmp_path, suffix):
    plain = written(tmp_path / "x_Packages", TRICKY)
    assert package_versions(whole(plain)) == TRICKY_VERSIONS
    sent = read_index(LocalHost(), str(packed(plain, suffix)))
    assert package_versions(sent) == TRICKY_VERSIONS
    assert set(sent.split("\n")) <= set(whole(plain).split("\n"))
    assert "Description" not in sent


def tricky_index(rng: random.Random) -> bytes:
    """Random lines made of the pieces that decide what ``package_versions`` reads."""
    names = ["Package", "package", "VERSION", "Architecture", "Arch", "Packages", " Package",
             "Pac\u212aage", "Ver\u017fion", "Descr\u0131ption", "Source", ""]  # fmt: skip
    colons = [":", ": ", ":\t", " :", ""]
    values = ["a", "1.0-1", "amd64", "two words", "", " ", "x\r", "\u00a0y", "\x00", "\udcff"]
    ends = ["", " ", "\t", "\r", " \r"]
    lines = [
        rng.choice(names) + rng.choice(colons) + rng.choice(values) + rng.choice(ends)
        if rng.random() < 0.8
        else rng.choice(["", " ", "\t", "\r"])
        for _ in range(rng.randrange(40))
    ]
    text = "\n".join(lines) + rng.choice(["", "\n", "\n\n"])
    return text.encode("utf-8", "surrogateescape")


def test_random_indexes_filtered_read_as_the_whole(tmp_path):
    """The filter keeps a superset of the lines ``_WANTED`` can match, whatever they are."""
    rng = random.Random(20261204)
    host = LocalHost()
    for number in range(150):
        plain = written(tmp_path / f"{number}_Packages", tricky_index(rng))
        sent = read_index(host, str(plain))
        assert package_versions(sent) == package_versions(whole(plain)), plain.read_bytes()
        assert not any(line.startswith(("Source", " ", "Arch:")) for line in sent.split("\n"))


def this_machines_indexes() -> list[Path]:
    host = LocalHost()
    indexes = [path for release in releases(host) for path in packages_indexes(host, release)]
    if not indexes:
        pytest.skip("this host has no downloaded index (apt-get update never ran)")
    return [Path(path) for path in indexes]


def test_this_machines_indexes_filtered_read_as_the_whole(tmp_path):
    """apt's own indexes, as it keeps them here (lz4 in a container image) and uncompressed
    (a copy, as a plain Debian server keeps them): a tenth of the text crosses."""
    host = LocalHost()
    for index in this_machines_indexes():
        text = whole(index)
        copy = written(tmp_path / index.name.removesuffix(index.suffix), text.encode())
        for path in {index, copy}:
            sent = read_index(host, str(path))
            assert package_versions(sent) == package_versions(text), path
            assert len(sent) < len(text) / 5, path


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("content", [b"", b"Description: no package here\n"])
def test_an_index_without_packages_is_no_error(tmp_path, suffix, content):
    plain = written(tmp_path / "x_Packages", content)
    assert read_index(LocalHost(), str(packed(plain, suffix))) == ""


def big_index(path: Path) -> Path:
    """The fixture index's stanzas again and again, other packages each time (~1 MB)."""
    text = (LISTS_FIXTURE / Path(INDEX).name).read_text()
    return written(path, "".join(text.replace("Package: ", f"Package: p{n}-") + "\n"
                                 for n in range(300)).encode())  # fmt: skip


@pytest.mark.parametrize("broken", ["garbage", "cut short"])
def test_apt_helper_failing_is_an_error_naming_it(tmp_path, broken):
    """Cut short, the helper has printed most of the index before it fails: its failure
    must not be lost behind the grep it pipes to."""
    index = packed(big_index(tmp_path / "x_Packages"), ".lz4")
    data = index.read_bytes()
    index.write_bytes(b"garbage" if broken == "garbage" else data[: len(data) // 2])
    with pytest.raises(HostError) as caught:
        read_index(LocalHost(), str(index))
    assert str(caught.value).startswith(f"{APT_HELPER} cat-file {index}: E: LZ4F: {index}")


def test_a_missing_index_is_an_error_naming_grep(tmp_path):
    with pytest.raises(HostError, match=r"^grep .*/x_Packages: .*grep: .*No such file"):
        read_index(LocalHost(), str(tmp_path / "x_Packages"))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_path_is_a_word_never_syntax(tmp_path, monkeypatch, suffix):
    """Shell syntax and a leading dash in a path: read as the file's name, nothing run."""
    monkeypatch.chdir(tmp_path)
    odd = "-e x ;$(touch pwned) `touch pwned` 'q\" * > out"
    plain = written(tmp_path / odd / "x_Packages", TRICKY)
    index = packed(plain, suffix)
    for path in (str(index), f"{odd}/{index.name}"):  # absolute, and the leading dash
        assert package_versions(read_index(LocalHost(), path)) == TRICKY_VERSIONS
    assert sorted(os.listdir(tmp_path)) == [odd]


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[Lan]:
    with lan_of_one(tmp_path_factory.mktemp("apt"), "apt") as net:
        yield net


@pytest.mark.parametrize("suffix", ["", ".lz4"])
def test_over_ssh_the_announced_command_sends_the_lines(network, tmp_path, monkeypatch, suffix):
    """The batch runs the command ``read_index`` runs (``SecurityUpdatesCheck.commands``
    announces ``index_command``): it answers, with what LocalHost reads, no SFTP request."""
    index = str(packed(big_index(tmp_path / "x_Packages"), suffix))
    broken = written(tmp_path / "y_Packages.lz4", b"garbage")
    here = read_index(LocalHost(), index)
    with pytest.raises(HostError) as refused_here:
        read_index(LocalHost(), str(broken))
    requests = counted_sftp_requests(monkeypatch)
    with entered(network.auditor), SSHHost.open("apt", network.options()) as host:
        host.prefetch([index_command(index)])
        execs = []
        command = SSHHost._command
        monkeypatch.setattr(SSHHost, "_command", lambda *a: execs.append(a[1]) or command(*a))
        there = read_index(host, index)
        assert (execs, requests) == ([], [])
        with pytest.raises(HostError) as refused_there:
            read_index(host, str(broken))  # alone, unannounced
    assert there == here
    assert len(there) < len(whole(Path(index))) / 5
    assert str(refused_there.value) == str(refused_here.value)


class CountedHost(LocalHost):
    """This machine, with the programs each command ran recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []

    def run(self, argv, timeout=30.0):
        self.ran.append(Path(argv[0]).name)
        return super().run(argv, timeout)


def test_an_index_file_seen_before_is_not_read_again(tmp_path):
    """By the SHA-256 of the file, taken where it lies: the same lz4 index under another
    name (another host of a fleet) costs a sha256sum, not a decompression; a changed file
    is read, and its own versions count; a tree under --root is read as before."""
    lz4 = require_program("lz4")
    unseen = f"Package: only-here\nVersion: {uuid.uuid4()}\nArchitecture: all\n\n"
    text = unseen + (LISTS_FIXTURE / Path(INDEX).name).read_text()  # unknown to this process
    changed = text.replace("Version: 3.0.22-1~deb12u2", "Version: 3.0.23-1~deb12u1", 1)
    assert changed != text
    for name, content in [("a", text), ("b", text), ("c", changed)]:
        (tmp_path / f"{name}_Packages").write_text(content)
        subprocess.run([lz4, "-q", str(tmp_path / f"{name}_Packages"),
                        str(tmp_path / f"{name}_Packages.lz4")], check=True)  # fmt: skip
    offered = []
    for name in ("a", "b", "c"):
        host = CountedHost()
        offered.append(offered_versions(CachedHost(host), str(tmp_path / f"{name}_Packages.lz4")))
        assert host.ran == (["sha256sum", "sh"] if name != "b" else ["sha256sum"])
    assert offered[0] == offered[1] == package_versions(text)
    assert offered[2] == package_versions(changed) != offered[0]
    under_root = LocalHost(root=str(tmp_path))
    assert offered_versions(under_root, "/a_Packages") == package_versions(text)


def test_this_host_against_apt_itself():
    """apt's own resolver (a simulated dist-upgrade) must upgrade every package the check
    calls pending, and every upgrade apt takes from a security archive must be pending."""
    apt_get = require_program("apt-get")
    ctx = context()
    security = [r for r in releases(ctx.host) if r.is_security]
    if not security:
        pytest.skip("this host has no downloaded security index (apt-get update never ran)")
    ours = {u.package for u in pending_updates(ctx, security)}
    done = subprocess.run(
        [apt_get, "-s", "-o", "Debug::NoLocking=1", "dist-upgrade"],
        capture_output=True, text=True, check=True, env={**os.environ, "LC_ALL": "C"},
    )  # fmt: skip
    upgrades = {}
    for line in done.stdout.splitlines():
        words = line.split()
        if words[:1] == ["Inst"] and len(words) > 3 and words[2].startswith("["):
            upgrades[words[1].split(":")[0]] = line
    from_security = {name for name, line in upgrades.items() if "-security" in line}
    assert from_security <= ours
    assert ours <= set(upgrades)


# --- reboot_pending --------------------------------------------------------------------------

BOOTED = 1_790_000_000
PROC_VERSION = (
    "Linux version 6.1.0-27-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian "
    "12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC "
    "Debian 6.1.115-1 (2024-11-01)\n"
)
RUNNING = {
    "linux-image-6.1.0-27-amd64": ("6.1.115-1", "amd64"),
    "libc6": ("2.36-9+deb12u9", "amd64"),
}


def booted_tree(
    root: Path,
    packages: dict[str, tuple[str, str]] = RUNNING,
    *,
    libc_installed: float = BOOTED - DAY,
    flag: str | None = None,
) -> Path:
    files = {
        "/proc/sys/kernel/osrelease": "6.1.0-27-amd64\n",
        "/proc/version": PROC_VERSION,
        "/proc/stat": f"cpu  1 2 3 4\nbtime {BOOTED}\nprocesses 42\n",
        "/var/lib/dpkg/status": status_file(packages),
        "/var/lib/dpkg/info/libc6:amd64.list": "/lib/x86_64-linux-gnu/libc.so.6\n",
    }
    if flag is not None:
        files["/run/reboot-required"] = "*** System restart required ***\n"
        files["/run/reboot-required.pkgs"] = flag
    make_tree(root, files)
    listing = root / "var/lib/dpkg/info/libc6:amd64.list"
    os.utime(listing, (libc_installed, libc_installed))
    return root


def reboot(root: Path):
    return run_check(RebootPendingCheck, {}, context(root))


def test_the_running_system_is_the_installed_one(tmp_path):
    verdict = reboot(booted_tree(tmp_path))
    assert (verdict.status, verdict.evidence) == (
        Status.PASS,
        (
            "no reboot-required flag",
            "running kernel 6.1.0-27-amd64 is the newest installed",
            "libc6 not upgraded since boot",
        ),
    )


@pytest.mark.parametrize(
    ("change", "first"),
    [
        (
            {"linux-image-6.1.0-28-amd64": ("6.1.119-1", "amd64")},
            "running kernel 6.1.0-27-amd64, but linux-image-6.1.0-28-amd64 6.1.119-1 is installed",
        ),
        (
            {"linux-image-6.1.0-27-amd64": ("6.1.116-1", "amd64")},
            "running kernel 6.1.0-27-amd64 was built as 6.1.115-1; its package is now 6.1.116-1",
        ),
    ],
)
def test_a_newer_kernel_installed_fails(tmp_path, change, first):
    verdict = reboot(booted_tree(tmp_path, {**RUNNING, **change}))
    assert (verdict.status, verdict.evidence[0]) == (Status.FAIL, first)


def test_the_reboot_flag_fails_and_names_its_packages(tmp_path):
    verdict = reboot(booted_tree(tmp_path, flag="linux-image-6.1.0-28-amd64\nlibc6\n"))
    assert (verdict.status, verdict.evidence[0]) == (
        Status.FAIL,
        "/run/reboot-required is set by linux-image-6.1.0-28-amd64, libc6",
    )


def test_a_c_library_upgraded_after_boot_fails(tmp_path):
    verdict = reboot(booted_tree(tmp_path, libc_installed=BOOTED + 3600))
    assert (verdict.status, verdict.evidence[0]) == (
        Status.FAIL,
        "libc6 2.36-9+deb12u9 was installed after the system booted (running programs still "
        "use the old one)",
    )


def test_without_a_debian_kernel_only_the_flag_and_libc_are_judged(tmp_path):
    verdict = reboot(booted_tree(tmp_path, {"libc6": RUNNING["libc6"]}))
    assert (verdict.status, verdict.evidence[1]) == (
        Status.PASS,
        "running kernel 6.1.0-27-amd64; no Debian kernel package installed (a container or a "
        "kernel of its own): not compared",
    )


def test_this_host_names_its_running_kernel():
    verdict = run_check(RebootPendingCheck, {})
    assert verdict.status in (Status.PASS, Status.FAIL)
    assert any(os.uname().release in line for line in verdict.evidence)


def test_the_same_release_file_on_two_mirrors_names_each_its_own_indexes(tmp_path):
    """A Release file's parse is kept for the next host with the same text: each host's
    suite still names its own file, and so its own indexes."""
    text = (LISTS_FIXTURE / f"{SECURITY}_InRelease").read_text()
    mirrors = ["security.debian.org_debian-security", "mirror.example_debian-security"]
    found = []
    for mirror in mirrors:
        name = f"{mirror}_dists_bookworm-security_InRelease"
        root = make_tree(tmp_path / mirror, {f"{LISTS}/{name}": text})
        (suite,) = releases(LocalHost(root=str(root)))
        found.append((suite.path, suite.prefix, suite.suite))
    assert found == [
        (f"{LISTS}/{m}_dists_bookworm-security_InRelease",
         f"{LISTS}/{m}_dists_bookworm-security", "oldstable-security")
        for m in mirrors
    ]  # fmt: skip


def test_over_ssh_the_check_runs_only_the_commands_it_announced(network, monkeypatch):
    """This machine's indexes, seen by the SSH host: the batch of the announced commands
    (a sha256sum of each index) answers every command the check runs, but the reading of
    an index file this process has not seen; on the next host with the same files, not
    even that."""
    indexes = this_machines_indexes()
    reads = {index_command(str(path)).argv[0] for path in indexes}
    execs: list[list[list[str]]] = []
    command = SSHHost._command
    monkeypatch.setattr(SSHHost, "_command", lambda *a: execs[-1].append(a[1]) or command(*a))
    verdicts = []
    for _ in range(2):
        with entered(network.auditor), SSHHost.open("apt", network.options()) as ssh:
            ctx = CheckContext(CachedHost(ssh))
            check = SecurityUpdatesCheck({"max_days": 2})
            planned = check.commands(ctx)
            execs.append([])
            ctx.host.prefetch(planned)
            execs.append([])
            verdicts.append(check.run(ctx))
    assert planned and [len(batch) for batch in execs[::2]] == [1, 1]
    assert {argv[0] for argv in execs[1]} <= reads and execs[3] == []
    assert verdicts[0] == verdicts[1] and verdicts[0].status in (Status.PASS, Status.FAIL)
