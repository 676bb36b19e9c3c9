"""Firewall parsing: default-deny and "who can reach this port", from nft JSON, nft text
and iptables-save, and from a real nft/iptables inside a throw-away network namespace.
"""

from __future__ import annotations

from conftest import FIXTURES, require_program, require_root
from line_breaks import each_separator
from namespaces import NamespacedHost, in_namespace, network_namespace
from treeutil import make_tree

from checks.hosts import LocalHost
from checks.parsers.firewall import parse_iptables_save, read_firewall
from checks.parsers.firewall_rules import AddressSet, Ruleset
from checks.parsers.nftables_conf import parse_nftables_conf

FW = FIXTURES / "firewall"
EVERYONE = {"ipv4": ["0.0.0.0/0"], "ipv6": ["::/0"]}


def nft_file(name: str) -> Ruleset:
    return parse_nftables_conf(LocalHost(), str(FW / name))


def reach(ruleset, family: str, port: int) -> list[str]:
    return ruleset.accepted(family, port).networks()


def test_debian_default_is_not_default_deny():
    ruleset = nft_file("debian_default.nftables.conf")
    assert ruleset.problems == []
    deny, reason = ruleset.default_deny("ipv4")
    assert not deny
    assert reason.endswith(
        "table inet filter chain input (hook input, policy accept): policy accept"
    )
    assert reach(ruleset, "ipv6", 22) == EVERYONE["ipv6"]


def test_hardened_ruleset_sources_per_port():
    ruleset = nft_file("hardened.nftables.conf")
    assert ruleset.problems == []
    assert [ruleset.default_deny(f)[0] for f in ("ipv4", "ipv6")] == [True, True]
    assert reach(ruleset, "ipv4", 22) == ["10.0.0.0/8", "127.0.0.0/8", "192.168.10.0/24"]
    assert reach(ruleset, "ipv6", 22) == ["::1/128", "2001:db8:a::/48"]
    assert reach(ruleset, "ipv4", 443) == EVERYONE["ipv4"]
    assert reach(ruleset, "ipv4", 5432) == ["127.0.0.0/8"]
    assert (
        reach(
            ruleset,
            "ipv4",
            80,
        )
        == EVERYONE["ipv4"]
    )


def test_final_reject_and_ipv4_only_tables():
    open_ssh = nft_file("ssh_open.nftables.conf")
    deny, reason = open_ssh.default_deny("ipv6")
    assert deny and reason.endswith("rejects every packet left")
    assert reach(open_ssh, "ipv4", 22) == EVERYONE["ipv4"]
    assert reach(open_ssh, "ipv4", 5432) == ["10.0.0.0/8", "127.0.0.0/8"]
    ipv4_only = nft_file("ipv4_only.nftables.conf")
    assert ipv4_only.default_deny("ipv4")[0]
    assert ipv4_only.default_deny("ipv6") == (
        False,
        f"{FW}/ipv4_only.nftables.conf (not live): no input chain for ipv6",
    )
    assert reach(ipv4_only, "ipv4", 22) == ["10.0.0.0/8"]
    assert reach(ipv4_only, "ipv6", 22) == EVERYONE["ipv6"]


def test_iptables_persistent_files():
    v4 = parse_iptables_save((FW / "rules.v4").read_text(), "rules.v4", "ipv4", "rules.v4")
    v6 = parse_iptables_save((FW / "rules.v6").read_text(), "rules.v6", "ipv6", "rules.v6")
    assert v4.problems == v6.problems == []
    assert v4.default_deny("ipv4") == (
        True,
        "rules.v4: table ip filter chain INPUT (hook input, policy drop): policy drop",
    )
    assert reach(v4, "ipv4", 22) == ["10.0.0.0/8", "127.0.0.0/8", "192.168.10.0/24"]
    assert reach(v4, "ipv4", 443) == EVERYONE["ipv4"]
    assert reach(v4, "ipv4", 8050) == ["10.0.0.0/8", "127.0.0.0/8"]
    assert reach(v4, "ipv4", 8100) == ["127.0.0.0/8"]
    assert not v6.default_deny("ipv6")[0]
    assert reach(v6, "ipv6", 22) == ["2001:db8:a::/48"]
    assert reach(v6, "ipv6", 23) == EVERYONE["ipv6"]


def test_jumps_returns_negations_and_unknown_rules(tmp_path):
    make_tree(
        tmp_path,
        {
            "/etc/nftables.conf": 'include "/etc/nftables.d/*.nft"\n',
            "/etc/nftables.d/10-filter.nft": """
table ip6 filter {
    chain input {
        type filter hook input priority 0; policy drop;
        tcp dport vmap { 22 : jump ssh, 2222 : goto ssh, 80 : accept }
        meta skuid 0 accept
    }
    chain ssh {
        ip6 saddr fd00::/8 return
        ip6 saddr != 2001:db8::/32 drop
        accept
    }
}
table ip filter {
    chain input {
        type filter hook input priority 0; policy accept;
        ip saddr 192.0.2.0/24 tcp dport 1-1023 drop
        tcp dport 22 ip saddr 10.0.0.0/8 accept
        tcp dport 22 drop
    }
}
""",
        },
    )
    ruleset = parse_nftables_conf(LocalHost(root=str(tmp_path)), "/etc/nftables.conf")
    assert ruleset.problems == []
    # "meta skuid 0" is not understood: that rule may accept anything, so no default deny
    deny, reason = ruleset.default_deny("ipv6")
    assert not deny and "may accept any packet (not understood: meta skuid)" in reason
    # jump: fd00::/8 returns to input, where the rule not understood may accept it;
    # goto: what returns from "ssh" ends the input chain, so the policy drops it
    assert reach(ruleset, "ipv6", 22) == ["2001:db8::/32", "fd00::/8"]
    assert reach(ruleset, "ipv6", 2222) == ["2001:db8::/32"]
    assert reach(ruleset, "ipv6", 80) == EVERYONE["ipv6"]
    assert reach(ruleset, "ipv4", 22) == ["10.0.0.0/8"]
    assert AddressSet.of("0.0.0.0/0").covers(ruleset.accepted("ipv4", 1024))
    assert "192.0.2.0/24" not in str(ruleset.accepted("ipv4", 443))


def test_boot_configuration_counts_only_when_its_unit_is_enabled(tmp_path):
    make_tree(
        tmp_path,
        {
            "/etc/nftables.conf": (FW / "hardened.nftables.conf").read_text(),
            "/etc/iptables/rules.v4": (FW / "rules.v4").read_text(),
        },
    )
    host = LocalHost(root=str(tmp_path))
    off = read_firewall(host, enabled_units={})
    assert (off.loaded, off.notes) == (
        False,
        [
            "not live: judged from the configuration loaded at boot",
            "/etc/nftables.conf exists but nftables.service is not enabled",
            "/etc/iptables/rules.v4 exists but netfilter-persistent.service is not enabled",
        ],
    )
    on = read_firewall(host, enabled_units={"nftables.service", "netfilter-persistent.service"})
    assert [r.source for r in on.rulesets] == [
        "/etc/nftables.conf (not live)",
        "/etc/iptables/rules.v4",
    ]
    assert on.default_deny("ipv6")[0]
    # both rulesets filter: a packet must pass each of them
    assert on.accepted("ipv4", 22).networks() == ["10.0.0.0/8", "127.0.0.0/8", "192.168.10.0/24"]


def test_real_nft_in_a_network_namespace_agrees_with_the_file():
    require_root()
    require_program("nft")
    require_program("ip")
    expected = nft_file("hardened.nftables.conf")
    with network_namespace() as name:
        host = NamespacedHost(["ip", "netns", "exec", name])
        assert not read_firewall(host).loaded  # a fresh namespace has no rules at all
        in_namespace(name, "nft", "-f", str(FW / "hardened.nftables.conf"))
        state = read_firewall(host)
        assert [r.source for r in state.rulesets] == [
            "nft -j list ruleset",
            "iptables-save",
            "ip6tables-save",
        ]
        assert state.problems == []
        for family in ("ipv4", "ipv6"):
            assert state.default_deny(family)[0]
            for port in (22, 80, 443, 5432):
                assert state.accepted(family, port) == expected.accepted(family, port), (
                    family,
                    port,
                )


def test_real_iptables_in_a_network_namespace():
    require_root()
    require_program("iptables-restore")
    require_program("ip6tables-restore")
    with network_namespace() as name:
        in_namespace(name, "iptables-restore", stdin=(FW / "rules.v4").read_text())
        in_namespace(name, "ip6tables-restore", stdin=(FW / "rules.v6").read_text())
        state = read_firewall(NamespacedHost(["ip", "netns", "exec", name]))
        sources = [r.source for r in state.rulesets]
        assert sources == ["nft -j list ruleset", "iptables-save", "ip6tables-save"]
        assert state.default_deny("ipv4")[0] and not state.default_deny("ipv6")[0]
        assert state.accepted("ipv4", 22).networks() == [
            "10.0.0.0/8",
            "127.0.0.0/8",
            "192.168.10.0/24",
        ]
        assert state.accepted("ipv6", 22).networks() == ["2001:db8:a::/48"]
        # nft shows "-m multiport" as an opaque xt match: alone, its view must assume that
        # rule accepts every TCP port; iptables-save's precise view narrows the answer
        nft_view, iptables_view = state.rulesets[0], state.rulesets[1]
        assert nft_view.accepted("ipv4", 8100).networks() == EVERYONE["ipv4"]
        assert iptables_view.accepted("ipv4", 8100).networks() == ["127.0.0.0/8"]
        assert state.accepted("ipv4", 8100).networks() == ["127.0.0.0/8"]


@each_separator
def test_real_iptables_restore_splits_lines_like_us(sep):
    """iptables-restore reads with fgets(): ``# x<FF>-A INPUT -j DROP`` is one comment."""
    require_root()
    require_program("iptables-restore")
    rules = (
        f"*filter\n:INPUT ACCEPT [0:0]\n# hidden{sep}-A INPUT -j DROP\n"
        "-A INPUT -p tcp --dport 22 -j DROP\nCOMMIT\n"
    )
    with network_namespace() as name:
        in_namespace(name, "iptables-restore", stdin=rules)
        saved = in_namespace(name, "iptables-save")
    ours = parse_iptables_save(rules, "rules.v4", "ipv4", "rules.v4")
    theirs = parse_iptables_save(saved, "iptables-save", "ipv4")
    assert ours.problems == theirs.problems == []
    for port in (22, 80):
        assert reach(ours, "ipv4", port) == reach(theirs, "ipv4", port), port
    assert reach(ours, "ipv4", 80) == EVERYONE["ipv4"]
