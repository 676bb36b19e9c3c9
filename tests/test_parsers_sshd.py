"""sshd_config parser: Include order, first value wins, Match blocks, defaults, sshd -T.

The last test runs the real sshd -T on a config exercising all of it and requires the
parser to agree with sshd for several connection specs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import FIXTURES, require_program, require_root
from line_breaks import each_separator
from namespaces import PRIVATE_RUN, NamespacedHost
from treeutil import make_tree

from checks.hosts import HostError, LocalHost
from checks.parsers.sshd import (
    DEFAULTS,
    ConnectionSpec,
    SshdUnavailable,
    addr_match_list,
    listen_host,
    listen_port,
    match_host_and_ip,
    parse_sshd_config,
    parse_sshd_t,
    run_sshd_t,
    user_groups,
)

SSHD = FIXTURES / "sshd"
OUTSIDE = ConnectionSpec()


def parse(path: Path):
    return parse_sshd_config(LocalHost(), str(path))


def values(config, spec, *keywords: str) -> dict[str, str | None]:
    found = {}
    for keyword in keywords:
        setting = config.resolve(keyword, spec)
        found[keyword] = setting.text if setting else None
    return found


def test_hardened_fixture_values_and_lines():
    path = SSHD / "hardened_devsec_defaults_handrendered.sshd_config"
    config = parse(path)
    assert config.problems == []
    got = {k: str(config.resolve(k, OUTSIDE)) for k in ("permitrootlogin", "maxauthtries")}
    assert got == {
        "permitrootlogin": f"permitrootlogin no ({path}:3)",
        "maxauthtries": f"maxauthtries 2 ({path}:17)",
    }
    # ChallengeResponseAuthentication (line 28) is the old name of KbdInteractive (line 29)
    kbd = config.resolve("KbdInteractiveAuthentication", OUTSIDE)
    assert (kbd.text, kbd.origins[0].line) == ("no", 28)
    assert config.resolve("logingracetime", OUTSIDE).text == "30"  # 30s in sshd -T's seconds
    assert config.resolve("hostkey", None).text == (
        "/etc/ssh/ssh_host_rsa_key /etc/ssh/ssh_host_ecdsa_key /etc/ssh/ssh_host_ed25519_key"
    )


def test_insecure_fixture_match_block_overrides_for_its_network_only():
    path = SSHD / "insecure_synthetic.sshd_config"
    config = parse(path)
    assert [str(p) for p in config.problems] == [f"{path}:2: Protocol is obsolete: sshd ignores it"]
    outside = config.resolve("passwordauthentication", OUTSIDE)
    office = config.resolve("passwordauthentication", ConnectionSpec(addr="10.9.8.7"))
    assert [o.line for o in outside.origins] == [7]
    assert [o.line for o in office.origins] == [44]
    assert values(config, OUTSIDE, "permitrootlogin", "permitemptypasswords", "maxauthtries") == {
        "permitrootlogin": "yes",
        "permitemptypasswords": "yes",
        "maxauthtries": "10",
    }
    assert config.resolve("kbdinteractiveauthentication", OUTSIDE).text == "yes"


def test_upstream_fixture_is_all_defaults():
    config = parse(SSHD / "openssh-portable_upstream_sshd_config")
    keywords = ("passwordauthentication", "permitrootlogin", "maxauthtries", "listenaddress")
    settings = [config.resolve(k, OUTSIDE) for k in (*keywords, "trustedusercakeys")]
    assert {s.keyword: (s.text, s.source) for s in settings} == {
        "passwordauthentication": ("yes", "default"),
        "permitrootlogin": ("prohibit-password", "default"),
        "maxauthtries": ("6", "default"),
        "listenaddress": ("0.0.0.0 ::", "default"),
        "trustedusercakeys": ("none", "default"),
    }
    assert config.resolve("authorizedkeysfile", OUTSIDE).source == "file"
    assert config.resolve("ciphers", OUTSIDE) is None  # only sshd -T knows the build's list


def test_debian_include_comes_first_and_first_value_wins(tmp_path):
    debian = (SSHD / "debian_openssh_9.8p1-3_sshd_config").read_text()
    make_tree(
        tmp_path,
        {
            "/etc/ssh/sshd_config": debian,
            "/etc/ssh/sshd_config.d/50-hardening.conf": "PasswordAuthentication no\n"
            "X11Forwarding no\n",
            "/etc/ssh/sshd_config.d/90-local.conf": "PasswordAuthentication yes\nMaxAuthTries 3\n",
            "/etc/ssh/sshd_config.d/README": "PermitRootLogin yes\n",  # not *.conf
        },
    )
    config = parse_sshd_config(LocalHost(root=str(tmp_path)))
    keywords = ("passwordauthentication", "x11forwarding", "maxauthtries", "permitrootlogin")
    settings = [config.resolve(k, OUTSIDE) for k in (*keywords, "kbdinteractiveauthentication")]
    assert {s.keyword: str(s) for s in settings} == {
        "passwordauthentication": "passwordauthentication no "
        "(/etc/ssh/sshd_config.d/50-hardening.conf:1)",
        "x11forwarding": "x11forwarding no (/etc/ssh/sshd_config.d/50-hardening.conf:2)",
        "maxauthtries": "maxauthtries 3 (/etc/ssh/sshd_config.d/90-local.conf:2)",
        "permitrootlogin": "permitrootlogin prohibit-password (compiled-in default)",
        "kbdinteractiveauthentication": "kbdinteractiveauthentication no (/etc/ssh/sshd_config:63)",
    }
    assert config.files == [
        "/etc/ssh/sshd_config",
        "/etc/ssh/sshd_config.d/50-hardening.conf",
        "/etc/ssh/sshd_config.d/90-local.conf",
    ]
    acceptenv = config.resolve("acceptenv", OUTSIDE)
    assert acceptenv.values == ("LANG", "LC_*")


def test_relative_include_match_scope_and_include_inside_match(tmp_path):
    make_tree(
        tmp_path,
        {
            "/etc/ssh/sshd_config": "Include extra/*.conf\n"
            "PermitRootLogin no\n"
            "Match User deploy\n"
            "    Include /etc/ssh/deploy.conf\n"
            "Match All\n"
            "    MaxSessions 2\n",
            # a Match inside an included file ends with that file
            "/etc/ssh/extra/a.conf": "Match Address 10.0.0.0/8\n    PermitRootLogin yes\n",
            "/etc/ssh/extra/b.conf": "AllowAgentForwarding no\n",
            # lines included from inside "Match User deploy" apply to deploy only
            "/etc/ssh/deploy.conf": "ForceCommand /usr/local/bin/deploy\n"
            "Match Address 192.0.2.0/24\n    PermitTTY no\n",
        },
    )
    config = parse_sshd_config(LocalHost(root=str(tmp_path)))
    assert config.problems == []
    office_root = ConnectionSpec(user="root", addr="10.1.1.1")
    deploy = ConnectionSpec(user="deploy")
    assert values(
        config, office_root, "permitrootlogin", "allowagentforwarding", "forcecommand"
    ) == {
        "permitrootlogin": "yes",
        "allowagentforwarding": "no",  # b.conf is global again: a.conf's Match ended
        "forcecommand": "none",
    }
    assert values(config, OUTSIDE, "permitrootlogin", "maxsessions", "permittty") == {
        "permitrootlogin": "no",
        "maxsessions": "2",
        "permittty": "yes",
    }
    assert values(config, deploy, "forcecommand", "permittty") == {
        "forcecommand": "/usr/local/bin/deploy",
        "permittty": "no",  # deploy AND 192.0.2.10
    }
    assert values(config, ConnectionSpec(user="deploy", addr="10.2.2.2"), "permittty") == {
        "permittty": "yes"
    }


def test_match_criteria_and_first_matching_block_wins(tmp_path):
    make_tree(
        tmp_path,
        {
            "/etc/ssh/sshd_config": "AllowUsers alice bob\n"
            "AllowUsers carol\n"
            "MaxAuthTries 5\n"
            "Match User a*,!admin Address 10.0.0.0/8,!10.66.0.0/16\n"
            "    MaxAuthTries 2\n"
            "Match User alice\n"
            "    MaxAuthTries 3\n"
            "    AllowUsers alice\n"
            "Match Group wheel\n"
            "    MaxAuthTries 1\n"
            "Match Host *.EXAMPLE.org LocalPort 2222\n"
            "    MaxAuthTries 4\n"
            "Match LocalAddress fd00::/8\n"
            "    MaxAuthTries 7\n"
            "Match Address 10.0.0.1/8\n"  # host bits set: sshd refuses the file
            "    MaxAuthTries 9\n",
        },
    )
    config = parse_sshd_config(LocalHost(root=str(tmp_path)))
    assert [str(p) for p in config.problems] == [
        "/etc/ssh/sshd_config:15: invalid address list '10.0.0.1/8' in Match"
    ]

    def tries(**spec):
        return config.resolve("maxauthtries", ConnectionSpec(**spec)).text

    assert tries(user="alice", addr="10.1.2.3") == "2"
    assert tries(user="alice", addr="10.66.1.1") == "3"  # negated network
    assert tries(user="admin", addr="10.1.2.3") == "5"  # negated user
    assert tries(user="zed", groups=("staff", "wheel")) == "1"
    assert tries(user="zed", host="www.example.ORG", lport=2222) == "4"  # host is case-blind
    assert tries(user="zed", host="www.example.org") == "5"  # LocalPort unknown: no match
    assert tries(user="zed", laddr="fd00::1") == "7"
    assert tries(user="zed", addr="10.0.0.1") == "5"  # the invalid block never applies
    # AllowUsers lines add up; a matching block's list replaces the global one
    assert config.resolve("allowusers", OUTSIDE).values == ("alice", "bob", "carol")
    assert config.resolve("allowusers", ConnectionSpec(user="alice")).values == ("alice",)


def test_argument_syntax_and_bad_lines(tmp_path):
    make_tree(
        tmp_path,
        {
            "/etc/ssh/sshd_config": "Banner=/etc/issue.net\n"
            'ForceCommand = /bin/echo "two words" # a comment\n'
            'AuthorizedKeysFile ".ssh/my keys" .ssh/other\\ keys\n'
            'ChrootDirectory "/srv/unterminated\n'
            "MaxStartups\n"
            "  PasswordAuthentication NO\n"
            "Match\n"
            "    PermitRootLogin yes\n"
            "Match Address 10.0.0.0/8\n"
            "    Port 2222\n",
        },
    )
    config = parse_sshd_config(LocalHost(root=str(tmp_path)))
    assert [str(p) for p in config.problems] == [
        "/etc/ssh/sshd_config:4: invalid quotes (line ignored)",
        "/etc/ssh/sshd_config:5: no argument after MaxStartups (sshd refuses this)",
        "/etc/ssh/sshd_config:7: no argument after Match (sshd refuses this)",
        "/etc/ssh/sshd_config:10: Port is not allowed inside a Match block (sshd refuses this)",
    ]
    assert config.resolve("banner", OUTSIDE).values == ("/etc/issue.net",)
    assert config.resolve("forcecommand", OUTSIDE).values == ("/bin/echo", "two words")
    assert config.resolve("authorizedkeysfile", OUTSIDE).values == (
        ".ssh/my keys",
        ".ssh/other keys",
    )
    assert config.resolve("passwordauthentication", OUTSIDE).text == "no"  # case folded
    assert config.resolve("port", OUTSIDE).source == "default"


def test_unreadable_main_file_is_an_error_not_an_empty_config(tmp_path):
    with pytest.raises(HostError):
        parse_sshd_config(LocalHost(root=str(tmp_path)))


def test_address_lists_follow_openssh():
    assert addr_match_list("10.1.2.3", "10.0.0.0/8") == 1
    assert addr_match_list("10.1.2.3", "*,!10.0.0.0/8") == -1
    assert addr_match_list("192.0.2.1", "*,!10.0.0.0/8") == 1
    assert addr_match_list("192.0.2.1", "192.0.2.*") == 1
    assert addr_match_list("2001:db8::1", "2001:db8::/32") == 1
    assert addr_match_list("10.1.2.3", "10.0.0.1/8") == -2
    assert match_host_and_ip("10.1.2.3", "10.1.2.3", "10.0.0.0/8") == 1
    assert match_host_and_ip("gw.example.org", "192.0.2.1", "*.example.org,!192.0.2.1") == -1


def test_listen_address_forms():
    forms = ["[::]:22", "0.0.0.0:22", "::1", "10.0.0.5", "[fe80::1]:2222", "10.0.0.5:2200"]
    assert [listen_host(f) for f in forms] == [
        "::",
        "0.0.0.0",
        "::1",
        "10.0.0.5",
        "fe80::1",
        "10.0.0.5",
    ]
    assert [listen_port(f) for f in forms] == [22, 22, None, None, 2222, 2200]


def test_user_groups_from_the_host_files(tmp_path):
    make_tree(
        tmp_path,
        {
            "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n"
            "alice:x:1000:1000::/home/alice:/bin/sh\n",
            "/etc/group": "root:x:0:\nalice:x:1000:\nwheel:x:10:bob,alice\nstaff:x:50:bob\n",
        },
    )
    host = LocalHost(root=str(tmp_path))
    assert user_groups(host, "alice") == ("alice", "wheel")
    assert user_groups(host, "nobody-here") == ()


def test_sshd_t_output_is_normalized_like_the_files():
    text = (
        "permitrootlogin without-password\nlogingracetime 120\nallowusers alice\n"
        "allowusers bob@10.0.0.0/8\nauthorizedkeysfile .ssh/authorized_keys .ssh/k2\n"
        "compression delayed\n"
    )
    view = parse_sshd_t(text, "sshd -T")
    assert view.get("PermitRootLogin").text == "prohibit-password"
    assert view.values("allowusers") == ("alice", "bob@10.0.0.0/8")
    assert view.values("authorizedkeysfile") == (".ssh/authorized_keys", ".ssh/k2")
    assert view.first("compression") == "yes"


def test_sshd_t_is_unavailable_under_root_audits(tmp_path):
    with pytest.raises(SshdUnavailable, match="directory tree"):
        run_sshd_t(LocalHost(root=str(tmp_path)), "/etc/ssh/sshd_config", OUTSIDE)


AGREEMENT_CONFIG = """\
Include {tmp}/conf.d/*.conf
HostKey {tmp}/host_ed25519
PasswordAuthentication yes
PermitRootLogin yes
MaxAuthTries 5
AllowUsers alice bob@10.0.0.0/8
AllowUsers carol
X11Forwarding yes
ChallengeResponseAuthentication yes
LoginGraceTime 1m30s
Match User alice,!bob Address 10.0.0.0/8
    PasswordAuthentication no
    MaxAuthTries 2
Match Address *,!10.0.0.0/8,!fd00::/8
    DenyUsers *
    PermitRootLogin no
Match Host *.example.org
    X11Forwarding no
    AllowUsers dave
Match Group root
    AllowTcpForwarding no
Match All
    PermitRootLogin without-password
"""
AGREEMENT_DROPINS = {
    "10-first.conf": "PasswordAuthentication no\nKbdInteractiveAuthentication no\n",
    "20-second.conf": "PasswordAuthentication yes\nMaxAuthTries 3\n"
    "Match User carol\n    PermitEmptyPasswords yes\n    MaxAuthTries 1\n",
}
AGREEMENT_KEYWORDS = (
    "passwordauthentication",
    "kbdinteractiveauthentication",
    "permitrootlogin",
    "maxauthtries",
    "allowusers",
    "denyusers",
    "x11forwarding",
    "allowtcpforwarding",
    "permitemptypasswords",
    "logingracetime",
    "pubkeyauthentication",
    "authenticationmethods",
    "port",
    "usepam",
)
AGREEMENT_SPECS = (
    ConnectionSpec(),
    ConnectionSpec(user="alice", host="pc1.office", addr="10.1.2.3"),
    ConnectionSpec(user="bob", host="pc2.office", addr="10.1.2.3"),
    ConnectionSpec(user="carol", host="laptop.example.org", addr="fd00::5"),
    ConnectionSpec(user="root", host="audit.invalid", addr="192.0.2.10"),
)


def test_parser_agrees_with_real_sshd_t(tmp_path):
    require_root()
    require_program("sshd")
    require_program("ssh-keygen")
    require_program("unshare")
    subprocess.run(
        ["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(tmp_path / "host_ed25519")],
        check=True,
    )
    (tmp_path / "conf.d").mkdir()
    for name, text in AGREEMENT_DROPINS.items():
        (tmp_path / "conf.d" / name).write_text(text)
    config_path = tmp_path / "sshd_config"
    config_path.write_text(AGREEMENT_CONFIG.format(tmp=tmp_path))
    host = NamespacedHost(PRIVATE_RUN)
    config = parse_sshd_config(host, str(config_path))
    assert config.problems == []
    compared = 0
    for base in AGREEMENT_SPECS:
        spec = ConnectionSpec(base.user, base.host, base.addr, groups=user_groups(host, base.user))
        truth = run_sshd_t(host, str(config_path), spec)
        parsed = config.effective(spec)
        for keyword in AGREEMENT_KEYWORDS:
            expected = [v.casefold() for v in truth.values(keyword)]
            assert [v.casefold() for v in parsed.values(keyword)] == expected, (spec, keyword)
            compared += 1
        assert {listen_host(v) for v in truth.values("listenaddress")} == set(
            parsed.values("listenaddress")
        )
    assert compared == len(AGREEMENT_SPECS) * len(AGREEMENT_KEYWORDS)
    # the specs above really exercise different branches
    outside, alice, _, carol, root = (
        config.effective(ConnectionSpec(s.user, s.host, s.addr, groups=user_groups(host, s.user)))
        for s in AGREEMENT_SPECS
    )
    assert outside.values("denyusers") == ("*",)
    assert alice.first("maxauthtries") == "2"
    assert carol.values("allowusers") == ("dave",)
    assert carol.first("permitemptypasswords") == "yes"
    assert root.first("allowtcpforwarding") == "no"


# --- line breaks: sshd ends a line at LF only --------------------------------------------------


@pytest.fixture(scope="module")
def host_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_program("ssh-keygen")
    key = tmp_path_factory.mktemp("sshd") / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(key)], check=True)
    return key


def sshd_namespace() -> NamespacedHost:
    require_root()
    require_program("sshd")
    require_program("unshare")
    return NamespacedHost(PRIVATE_RUN)


SEPARATOR_CASES = (
    "# hidden{sep}PasswordAuthentication no\n",
    "PasswordAuthentication no{sep}\n",
    "{sep}PasswordAuthentication no\n",
    "PasswordAuthentication{sep}no\n",
    "MaxAuthTries 3{sep}\nPasswordAuthentication no\n",
    "PasswordAuthentication no #{sep}\nMaxAuthTries 3\n",
)


@each_separator
def test_parser_splits_lines_where_sshd_does(tmp_path, host_key, sep):
    """``# x<FF>PasswordAuthentication no`` is one comment line for sshd (so passwords stay
    on), and a line sshd refuses is reported instead of read."""
    host = sshd_namespace()
    for number, case in enumerate(SEPARATOR_CASES):
        path = tmp_path / f"sshd_config{number}"
        path.write_bytes(f"HostKey {host_key}\n{case.format(sep=sep)}".encode())
        config = parse_sshd_config(host, str(path))
        try:
            truth = run_sshd_t(host, str(path), OUTSIDE)
        except SshdUnavailable:
            assert config.problems, f"sshd refuses {case!r}; the parser must say so"
            continue
        assert config.problems == [], case
        for keyword in ("passwordauthentication", "maxauthtries"):
            assert config.resolve(keyword, OUTSIDE).values == truth.values(keyword), (case, keyword)


def test_sshd_t_output_splits_at_lf_only(tmp_path, host_key):
    """sshd -T prints values raw: an FS inside ForceCommand must not start a fake
    ``authenticationmethods`` line that a check would then read first."""
    host = sshd_namespace()
    path = tmp_path / "sshd_config"
    path.write_text(
        f"HostKey {host_key}\nForceCommand /bin/true\x1cauthenticationmethods publickey\n"
    )
    truth = run_sshd_t(host, str(path), OUTSIDE)
    assert truth.values("authenticationmethods") == ("any",)
    assert truth.values("forcecommand") == ("/bin/true\x1cauthenticationmethods", "publickey")
    parsed = parse_sshd_config(host, str(path)).resolve("forcecommand", OUTSIDE)
    assert parsed.values == truth.values("forcecommand")


#: Defaults the files cannot be compared with sshd -T on: Debian's DebianBanner is not
#: printed, and sshd -T lists only the host keys it was given.
NOT_PRINTED = {"debianbanner", "hostkey"}


def test_compiled_in_defaults_agree_with_real_sshd_t(tmp_path, host_key):
    """Every default the parser assumes is the one Debian's sshd prints for an empty config."""
    require_root()
    require_program("sshd")
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {host_key}\n")
    truth = run_sshd_t(NamespacedHost(PRIVATE_RUN), str(config), OUTSIDE)
    parsed = parse_sshd_config(LocalHost(), str(config)).effective(OUTSIDE)
    compared = 0
    for keyword in sorted(set(DEFAULTS) - NOT_PRINTED):
        theirs = [v.casefold() for v in truth.values(keyword)]
        ours = [v.casefold() for v in parsed.values(keyword)]
        if keyword == "listenaddress":
            ours = sorted(f"{a}:22" if ":" not in a else f"[{a}]:22" for a in ours)
            theirs = sorted(theirs)  # sshd prints the IPv6 wildcard first
        assert ours == theirs, keyword
        compared += 1
    assert compared == len(set(DEFAULTS) - NOT_PRINTED)
