"""Hostile audited configurations (issue 9, items 7, 8, 9 and 15), against the real daemons.

Each case used to take from a minute to forever; each must now finish at once with a
located problem, and where a daemon is named, the daemon must refuse (or read) it the same.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from conftest import require_program, require_root
from hostile import cpu, finishes
from namespaces import PRIVATE_RUN, NamespacedHost
from test_parsers_postgres import as_postgres, write_owned
from treeutil import context, make_tree

from checks.hosts import HostError, LocalHost
from checks.parsers.apache import load_apache_config
from checks.parsers.apt import AptConfig, parse_apt_config
from checks.parsers.postgres import parse_pg_hba, parse_postgresql_conf
from checks.parsers.sshd import (
    ConnectionSpec,
    SshdUnavailable,
    match_pattern,
    parse_sshd_config,
    run_sshd_t,
)
from checks.result import Status
from checks.rootfs import MAX_READ_BYTES
from checks.types.apache import ApacheHttpsRedirect

STANDALONE = (
    "ServerRoot {root}\nPidFile {root}/httpd.pid\nErrorLog {root}/error.log\n"
    "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n"
)


def sshd_host(tmp_path: Path) -> tuple[NamespacedHost, Path]:
    require_root()
    require_program("sshd")
    require_program("unshare")
    key = tmp_path / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(key)], check=True)
    return NamespacedHost(PRIVATE_RUN), key


def test_sshd_config_including_itself_is_refused_like_sshd(tmp_path):
    host, key = sshd_host(tmp_path)
    path = tmp_path / "sshd_config"
    path.write_text(f"HostKey {key}\n" + f"Include {path}\n" * 3 + "PasswordAuthentication no\n")
    config = finishes(lambda: parse_sshd_config(host, str(path)))
    assert [str(p) for p in config.problems] == [
        f"{path}:{line}: include loop: {path} -> {path} (sshd refuses this)" for line in (2, 3, 4)
    ]
    try:
        run_sshd_t(host, str(path), ConnectionSpec())
    except SshdUnavailable as exc:
        assert "Too many recursive configuration includes" in str(exc)
    else:
        raise AssertionError("sshd -T accepted an include loop")


def test_sshd_match_with_many_stars_agrees_with_sshd(tmp_path):
    host, key = sshd_host(tmp_path)
    path = tmp_path / "sshd_config"
    path.write_text(f"HostKey {key}\nMatch User {'*' * 60}z\n  PasswordAuthentication no\n")
    config = parse_sshd_config(host, str(path))
    for user in ("lappguard-audit", "lappguard-auditz", "z"):
        spec = ConnectionSpec(user=user)
        ours = finishes(lambda spec=spec: config.resolve("passwordauthentication", spec), 10)
        assert ours.values == run_sshd_t(host, str(path), spec).values("passwordauthentication")


def test_wildcards_follow_openssh():
    cases = {
        ("alice", "a*"): True,
        ("alice", "*e"): True,
        ("alice", "a?i*"): True,
        ("alice", "*x*"): False,
        ("", "*"): True,
        ("a", ""): False,
        ("abab", "*ab"): True,
        ("aaaa", "*a*a*a*a*a"): False,
    }
    assert {case: match_pattern(*case) for case in cases} == cases
    assert cpu(lambda: match_pattern("a" * 2000, "*" * 2000 + "b")) < 5


def test_apache_files_including_each_other_are_refused_like_httpd(tmp_path):
    root = tmp_path / "apache"
    (root / "conf.d").mkdir(parents=True)
    (root / "apache2.conf").write_text(STANDALONE.format(root=root) + "IncludeOptional conf.d\n")
    for number in range(8):  # every file includes all of them: 8! chains without the guard
        (root / "conf.d" / f"{number}.conf").write_text(
            f"Define X{number}\nIncludeOptional conf.d\n"
        )
    config = finishes(lambda: load_apache_config(LocalHost(), str(root)))
    loops = [p for p in config.problems if "include loop" in p.message]
    assert loops and all("(httpd refuses this)" in p.message for p in loops)
    assert len(config.problems) < 200  # once per including line and target, not per chain
    done = subprocess.run(
        [require_program("apache2"), "-d", str(root), "-f", str(root / "apache2.conf"), "-t"],
        capture_output=True,
        text=True,
        check=False,
    )
    # httpd follows the loop 128 deep, then refuses (its message is cut before "recursion")
    assert done.returncode != 0 and "Syntax error on line 2 of" in done.stderr


def test_postgresql_conf_including_itself_is_refused_like_postgres():
    require_root()
    directory = Path(tempfile.mkdtemp(prefix="lappguard-hostile-"))
    try:
        conf = directory / "postgresql.conf"
        write_owned(conf, "include 'postgresql.conf'\n" * 3 + "port = 5433\n")
        parsed = finishes(lambda: parse_postgresql_conf(LocalHost(), str(conf)))
        assert [(p.line, p.message) for p in parsed.problems] == [
            (line, f"include loop: {conf} -> {conf} (PostgreSQL rejects this)")
            for line in (1, 2, 3)
        ]
        postgres = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
        assert postgres, "postgresql is not installed"
        try:
            as_postgres(str(postgres[-1]), "-D", str(directory), "-C", "port")
        except subprocess.CalledProcessError as exc:
            assert b"configuration file recursion" in exc.stderr
        else:
            raise AssertionError("postgres -C accepted an include loop")
    finally:
        subprocess.run(["rm", "-rf", str(directory)], check=True)


def test_pg_hba_including_itself_is_reported_once_per_line(tmp_path):
    path = tmp_path / "pg_hba.conf"
    path.write_text(f"include {path}\ninclude_dir {tmp_path}\nlocal all all peer\n")
    (tmp_path / "x.conf").write_text(f"include {path}\n")
    hba = finishes(lambda: parse_pg_hba(LocalHost(), str(path)))
    assert len(hba.rules) == 1
    # itself at line 1, itself again through include_dir (line 2), and x.conf's line 1
    assert [(p.file, p.line) for p in hba.problems] == [
        (str(path), 1),
        (str(path), 2),
        (str(tmp_path / "x.conf"), 1),
    ]
    assert all("include loop" in p.message for p in hba.problems)


def test_catastrophic_redirectmatch_is_an_error_not_a_hang(tmp_path):
    site = (
        '<VirtualHost *:80>\nRedirectMatch "^/$|^((.|.)*)*X" https://example.org/\n</VirtualHost>\n'
    )
    make_tree(tmp_path, {"/etc/apache2/apache2.conf": "Listen 80\n" + site})
    verdict = finishes(lambda: ApacheHttpsRedirect({}).run(context(tmp_path)))
    assert verdict.status is Status.ERROR
    assert "/etc/apache2/apache2.conf:3: RedirectMatch: cannot evaluate pattern safely" in (
        verdict.reason
    )


def test_deeply_nested_sections_stop_with_a_located_problem(tmp_path):
    text = "<Directory /x>\n" * 40000 + "Options None\n" + "</Directory>\n" * 40000
    make_tree(tmp_path, {"/etc/apache2/apache2.conf": text})
    config = finishes(lambda: load_apache_config(LocalHost(root=str(tmp_path))))
    assert [str(p) for p in config.problems] == [
        "/etc/apache2/apache2.conf:65: sections nested more than 64 deep: "
        "the rest of this file is not read"
    ]


def test_define_blow_up_is_refused(tmp_path):
    lines = ["Define V0 xx"] + [f"Define V{i} ${{V{i - 1}}}${{V{i - 1}}}" for i in range(1, 40)]
    make_tree(tmp_path, {"/etc/apache2/apache2.conf": "\n".join(lines) + "\n"})
    config = finishes(lambda: load_apache_config(LocalHost(root=str(tmp_path))))
    assert "longer than" in config.problems[0].message


def test_invalid_sections_and_regexes_are_located_problems(tmp_path):
    make_tree(
        tmp_path,
        {"/etc/apache2/apache2.conf": "<>\n</>\n<IfVersion ~ a{4294967296}>\n</IfVersion>\n"},
    )
    config = load_apache_config(LocalHost(root=str(tmp_path)))
    assert [str(p) for p in config.problems] == [
        "/etc/apache2/apache2.conf:1: Invalid command '<' (httpd refuses this)",
        "/etc/apache2/apache2.conf:2: </> without an open <>",
        "/etc/apache2/apache2.conf:3: <IfVersion>: invalid regex: "
        "the repetition number is too large",
    ]


def test_nul_in_an_sshd_include_is_read_as_sshd_reads_it(tmp_path):
    """sshd stops the line at the NUL and joins the next line to it (see lines.py)."""
    make_tree(tmp_path, {"/etc/ssh/sshd_config": b"Include /etc/ssh/\0x\nPermitRootLogin no\n"})
    config = parse_sshd_config(LocalHost(root=str(tmp_path)))
    assert config.resolve("permitrootlogin", None).source == "default"
    path = tmp_path / "etc/ssh/sshd_config"
    path.write_bytes(b"Include /etc/\0\n")
    try:
        parse_sshd_config(LocalHost(), str(path))
    except HostError as exc:  # sshd cannot read a directory either
        assert str(exc).startswith(f"{path}:1: Include /etc/")


def test_long_values_parse_in_linear_time(tmp_path):
    """A value of 1.2 M escapes (46 s before) and 4x as many take about 4x the time."""

    def escapes(count: int) -> float:
        path = tmp_path / f"{count}.conf"
        path.write_text("log_line_prefix = '" + "\\n" * count + "'\n")
        return cpu(lambda: parse_postgresql_conf(LocalHost(), str(path)))

    small, large = escapes(300_000), finishes(lambda: escapes(1_200_000))
    assert large < 8 * max(small, 0.01)


def test_a_32_mib_sshd_line_is_read_in_seconds(tmp_path):
    """The largest file a host reads (MAX_READ_BYTES, 32 MiB), as one line of 16 M words."""
    words = (MAX_READ_BYTES - len("AllowUsers \n")) // 2
    path = tmp_path / "sshd_config"
    path.write_text("AllowUsers " + "a " * words + "\n")
    assert path.stat().st_size == MAX_READ_BYTES
    config = finishes(lambda: parse_sshd_config(LocalHost(), str(path)))
    assert len(config.directives[0].args) == words


APT_ENABLE = 'APT::Periodic::Enable "1";'
APT_INCLUDE_PARTS = '#include "/etc/apt/apt.conf.d/";'


def test_apt_blocks_and_includes_found_by_the_fuzzer_parse_in_linear_time(tmp_path):
    """The shapes of tests/test_fuzz_parsers.py's 8.6 s input (44 s and 29 s here before):
    a block named by 3000 ``::`` (apt makes 3000 nodes for each key set in it) and a
    directory included 9000 times beside runs of blocks, comments, ``#clear`` and VT/FF."""
    blocks = (
        "::" * 3000 + " {",
        APT_ENABLE * 3000,
        "};",
        "A {" * 90 + "B::C {};" + "};" * 90,
        "\v" * 3000 + "\f" * 3000,
        "/*" * 3000,
        "*/" + "#clear A;" * 3000 + "]" * 3000,
    )
    files = {
        "/etc/apt/apt.conf.d/50x": "\n".join([APT_ENABLE * 100] * 30),
        "/etc/apt/apt.conf.d/60blocks": "\n".join(blocks),
        "/etc/apt/apt.conf": "\n".join([APT_INCLUDE_PARTS * 3000] * 3),
    }
    config: list[AptConfig] = []
    spent = finishes(lambda: cpu(lambda: config.append(parse_files(tmp_path, files))))
    assert spent < 2.0
    parts = ["/etc/apt/apt.conf.d/50x", "/etc/apt/apt.conf.d/60blocks"]
    assert config[0].files == [*parts, "/etc/apt/apt.conf", *parts]  # then none again
    assert str(config[0].get("APT::Periodic::Enable")) == (
        'APT::Periodic::Enable "1" (/etc/apt/apt.conf.d/50x:30)'  # not in the block
    )
    assert [str(p) for p in config[0].problems] == 2 * [  # apt-config says so too
        "/etc/apt/apt.conf.d/60blocks:7: syntax error: extra junk after value"
    ]


def test_apt_files_included_again_are_read_once_and_reported_after_a_change(tmp_path):
    """apt applies a file each time it is included; we read it once per chain. Again with no
    key changed in between changes nothing; after a change apt's value differs from ours."""
    parts = {"/etc/apt/apt.conf.d/50x": 'A::B "x";\n', "/etc/apt/apt.conf.d/60y": 'A::C "y";\n'}
    again = parse_files(tmp_path / "again", {**parts, "/etc/apt/apt.conf": APT_INCLUDE_PARTS * 2})
    assert again.problems == []
    assert len(again.files) == 5 and str(again.get("A::B")).endswith("(/etc/apt/apt.conf.d/50x:1)")
    changed = parse_files(
        tmp_path / "changed",
        {**parts, "/etc/apt/apt.conf": f'{APT_INCLUDE_PARTS}\nA::B "main";\n{APT_INCLUDE_PARTS}\n'},
    )
    assert [str(p) for p in changed.problems] == [
        "/etc/apt/apt.conf:3: /etc/apt/apt.conf.d/ is included again after keys changed: "
        "apt applies it again here, lappguard reads it once per include chain (not audited)"
    ]


def parse_files(root: Path, files: dict[str, str]) -> AptConfig:
    return parse_apt_config(LocalHost(str(make_tree(root, files))))
