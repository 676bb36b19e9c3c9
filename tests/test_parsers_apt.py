"""apt.conf parser: syntax edge cases, file selection and order, checked against apt-config.

The last test points the real ``apt-config dump`` at a tree (APT_CONFIG sets Dir::Etc) and
requires our configuration tree to print exactly the same.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import FIXTURES, require_program
from line_breaks import each_separator
from treeutil import make_tree

from checks.hosts import LocalHost
from checks.parsers.apt import AptConfig, AptItem, accepted_parts, parse_apt_config

APT = FIXTURES / "apt"


def parse_files(tmp_path: Path, files: dict[str, str]) -> AptConfig:
    make_tree(tmp_path, files)
    return parse_apt_config(LocalHost(root=str(tmp_path)))


def fixture(name: str) -> str:
    return (APT / name).read_text()


def entries(config: AptConfig, key: str) -> list[tuple[str, int]]:
    return [(item.value, item.origin.line) for item in config.items(key)]


def test_periodic_files(tmp_path):
    on = parse_files(
        tmp_path / "on", {"/etc/apt/apt.conf.d/20auto-upgrades": fixture("20auto-upgrades")}
    )
    off = parse_files(
        tmp_path / "off",
        {"/etc/apt/apt.conf.d/20auto-upgrades": fixture("20auto-upgrades-disabled")},
    )
    key = "apt::periodic::update-package-lists"  # keys are case-insensitive
    assert str(on.get(key)) == f'{key} "1" (/etc/apt/apt.conf.d/20auto-upgrades:1)'
    assert off.get("APT::Periodic::Unattended-Upgrade").value == "0"
    assert on.get("APT::Periodic::Enable") is None


def test_debian_and_ubuntu_origin_lists(tmp_path):
    config = parse_files(
        tmp_path,
        {
            "/etc/apt/apt.conf.d/50unattended-upgrades": fixture("50unattended-upgrades.Debian"),
            "/etc/apt/apt.conf.d/51ubuntu": fixture("50unattended-upgrades.Ubuntu"),
        },
    )
    assert config.problems == []
    assert entries(config, "Unattended-Upgrade::Origins-Pattern") == [
        ("origin=Debian,codename=${distro_codename},label=Debian", 32),
        ("origin=Debian,codename=${distro_codename},label=Debian-Security", 33),
        ("origin=Debian,codename=${distro_codename}-security,label=Debian-Security", 34),
    ]
    assert [v for v, _ in entries(config, "Unattended-Upgrade::Allowed-Origins")][:2] == [
        "${distro_id}:${distro_codename}",
        "${distro_id}:${distro_codename}-security",
    ]
    assert config.get("Unattended-Upgrade::Mail") is None  # only in a comment
    assert config.get("Unattended-Upgrade::DevRelease").value == "auto"


def test_escaped_colons_and_commas_stay_verbatim(tmp_path):
    config = parse_files(
        tmp_path,
        {
            "/etc/apt/apt.conf.d/10colon": fixture("test_data_50unattended-upgrades.colon"),
            "/etc/apt/apt.conf.d/20compat": fixture("test_data_50unattended-upgrades.compat"),
            "/etc/apt/apt.conf.d/30test": fixture("test_data_50unattended-upgrades.Test"),
        },
    )
    assert [v for v, _ in entries(config, "Unattended-Upgrade::Allowed-Origins")] == [
        "http\\://foo.bar:stable",
        "Google, Inc.:stable",
        "MoreCorp\\, eink:stable",
        "${distro_id}:${distro_codename}-security",
    ]
    assert [v for v, _ in entries(config, "Unattended-Upgrade::Origins-Pattern")] == [
        "o=aOrigin,a=aArchive",
        "s=aSite,l=aLabel",
        "o=Google\\, Inc.,suite=stable",
    ]


def test_order_scalars_override_lists_append_and_main_file_last(tmp_path):
    config = parse_files(
        tmp_path,
        {
            "/etc/apt/apt.conf.d/10a": 'A::B "1";\nX { "a"; "b"; };\n',
            "/etc/apt/apt.conf.d/20b.conf": 'A { B "2"; C "c"; };\nX:: "c";\n',
            "/etc/apt/apt.conf.d/30c.dpkg-old": 'A::B "ignored";\n',
            "/etc/apt/apt.conf.d/31d.Debian": 'A::B "ignored";\n',
            "/etc/apt/apt.conf.d/32e~": 'A::B "ignored";\n',
            "/etc/apt/apt.conf.d/.33f": 'A::B "ignored";\n',
            "/etc/apt/apt.conf": 'A::C "main";\n',
        },
    )
    assert config.files == [
        "/etc/apt/apt.conf.d/10a",
        "/etc/apt/apt.conf.d/20b.conf",
        "/etc/apt/apt.conf",
    ]
    assert str(config.get("A::B")) == 'A::B "2" (/etc/apt/apt.conf.d/20b.conf:1)'
    assert str(config.get("a::c")) == 'a::c "main" (/etc/apt/apt.conf:1)'
    assert [v for v, _ in entries(config, "X")] == ["a", "b", "c"]


def test_accepted_file_names():
    names = [
        "50unattended-upgrades",
        "20x.conf",
        "x.dpkg-dist",
        "y.Debian",
        "z~",
        ".h",
        "t.",
        "a b",
        "ok_1-2",
    ]
    assert accepted_parts(names) == ["20x.conf", "50unattended-upgrades", "ok_1-2"]


EDGE_CASES = """\
// a comment
# another comment
/* a block
   comment */ Edge::Before "1";
Edge::Url "http://example.org/x"; // the // inside quotes is not a comment
Edge::Hash "a#b";
Edge { Nested { Deep "yes"; }; Sibling "s"; };
Edge::List { "one"; /* inline */ "two"; };
Edge::Percent "%41%20b";
Edge::Words "a" "b";
Drop::Me "x";
Drop::Me::Too "y";
#clear Drop::Me;
Edge::Multi
  "line";
"""


def test_comments_blocks_clear_and_quoting(tmp_path):
    config = parse_files(tmp_path, {"/etc/apt/apt.conf.d/10edge": EDGE_CASES})
    assert config.problems == []
    assert {
        k: config.get(k).value
        for k in (
            "Edge::Before",
            "Edge::Url",
            "Edge::Hash",
            "Edge::Nested::Deep",
            "Edge::Sibling",
            "Edge::Percent",
            "Edge::Words",
            "Edge::Multi",
        )
    } == {
        "Edge::Before": "1",
        "Edge::Url": "http://example.org/x",
        "Edge::Hash": "a#b",
        "Edge::Nested::Deep": "yes",
        "Edge::Sibling": "s",
        "Edge::Percent": "%41%20b",  # ParseCWord: fully quoted values are not %-decoded
        "Edge::Words": "a b",
        "Edge::Multi": "line",
    }
    assert [v for v, _ in entries(config, "Edge::List")] == ["one", "two"]
    assert config.get("Drop::Me") is None and config.get("Drop::Me::Too") is None
    assert config.get("Edge::Multi").origin.line == 15


def test_syntax_error_stops_that_file_only(tmp_path):
    config = parse_files(
        tmp_path,
        {
            "/etc/apt/apt.conf.d/10bad": 'Good::One "1";\nBad::Value "x" junk;\n'
            'After::Error "2";\n',
            "/etc/apt/apt.conf.d/20good": 'Good::Two "2";\n',
        },
    )
    assert [str(p) for p in config.problems] == [
        "/etc/apt/apt.conf.d/10bad:2: syntax error: extra junk after value"
    ]
    assert config.get("Good::One").value == "1"
    assert config.get("After::Error") is None  # apt stops reading the file there
    assert config.get("Good::Two").value == "2"


def test_missing_directory_and_file_is_an_empty_configuration(tmp_path):
    config = parse_apt_config(LocalHost(root=str(tmp_path)))
    assert (config.files, config.problems, config.root.children) == ([], [], [])


def dump(item: AptItem, prefix: str = "") -> list[str]:
    """Our tree in ``apt-config dump`` format."""
    lines = []
    for child in item.children:
        name = f"{prefix}{child.tag}"
        lines.append(f'{name} "{child.value or ""}";')
        lines.extend(dump(child, f"{name}::"))
    return lines


def test_real_apt_config_reads_the_tree_like_us(tmp_path):
    apt_config = require_program("apt-config")
    files = {
        "/etc/apt/apt.conf.d/20auto-upgrades": fixture("20auto-upgrades"),
        "/etc/apt/apt.conf.d/50unattended-upgrades": fixture("50unattended-upgrades.Debian"),
        "/etc/apt/apt.conf.d/50unattended-upgrades.Ubuntu": fixture("50unattended-upgrades.Ubuntu"),
        "/etc/apt/apt.conf.d/51test.conf": fixture("test_data_50unattended-upgrades.Test"),
        "/etc/apt/apt.conf.d/52colon": fixture("test_data_50unattended-upgrades.colon"),
        "/etc/apt/apt.conf.d/53compat": fixture("test_data_50unattended-upgrades.compat"),
        "/etc/apt/apt.conf.d/60edge": EDGE_CASES,
        "/etc/apt/apt.conf.d/61disabled.dpkg-old": fixture("20auto-upgrades-disabled"),
        "/etc/apt/apt.conf.d/99override": fixture("20auto-upgrades-disabled"),
        "/etc/apt/apt.conf": fixture("test_root.untrusted_etc_apt_apt.conf"),
    }
    config = parse_files(tmp_path, files)
    assert config.problems == []
    (tmp_path / "bootstrap.conf").write_text(f'Dir::Etc "{tmp_path}/etc/apt/";\n')
    env = {**os.environ, "APT_CONFIG": str(tmp_path / "bootstrap.conf"), "LC_ALL": "C"}
    done = subprocess.run([apt_config, "dump"], env=env, capture_output=True, text=True, check=True)
    ours, theirs = dump(config.root), done.stdout.splitlines()
    # apt adds built-in APT::* keys of its own: compare the subtrees our files define
    for name in ("Unattended-Upgrade", "Edge", "Drop", "APT::Periodic"):
        assert under(theirs, name) == under(ours, name), name
    assert 'APT::Periodic::Update-Package-Lists "0";' in ours  # 99override came last
    assert 'Unattended-Upgrade::Allowed-Origins:: "Ubuntu:lucid-security";' in ours
    assert len(under(ours, "Unattended-Upgrade")) == 17


def under(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if line.startswith((f"{name} ", f"{name}::"))]


#: apt.conf text around a separator: apt reads a line up to LF (a NUL ends it early).
SEPARATOR_CASES = (
    '// hidden{sep}Lg::A "1";\n',
    '# hidden{sep}Lg::A "1";\n',
    'Lg::A "1";{sep}\n',
    '{sep}Lg::A "1";\n',
    'Lg::A{sep}"1";\n',
    'Lg::A "a{sep}b";\n',
    '/* c{sep}*/ Lg::A "1";\n',
    'Lg::A "a\tb";{sep}\n',
)


@each_separator
def test_real_apt_config_splits_lines_like_us(tmp_path, sep):
    apt_config = require_program("apt-config")
    for number, case in enumerate(SEPARATOR_CASES):
        root = tmp_path / str(number)
        make_tree(root, {"/etc/apt/apt.conf.d/10case": case.format(sep=sep).encode()})
        config = parse_apt_config(LocalHost(root=str(root)))
        (root / "bootstrap.conf").write_text(f'Dir::Etc "{root}/etc/apt/";\n')
        env = {**os.environ, "APT_CONFIG": str(root / "bootstrap.conf"), "LC_ALL": "C"}
        done = subprocess.run([apt_config, "dump"], env=env, capture_output=True, check=False)
        if done.returncode != 0:
            assert config.problems, f"apt refuses {case!r}; the parser must say so"
            continue
        assert config.problems == [], case
        theirs = done.stdout.decode().split("\n")  # bytes: text mode would turn CR into LF
        assert under(dump(config.root), "Lg") == under(theirs, "Lg"), case
