"""LAPP-SSH-045's check type: every Match context's AuthenticationMethods chains, as the real
sshd -T evaluates them for a client built for each block (and as the files say under --root)."""

from __future__ import annotations

from namespaces import PRIVATE_RUN, NamespacedHost
from servers import run_check
from test_types_config import context_for, sshd_tree
from treeutil import context, make_tree

from checks.result import Status
from checks.types.sshd_contexts import SshdAuthContextsCheck

KEYS_ONLY = "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"


def test_each_match_block_is_evaluated_by_the_real_sshd(tmp_path):
    config = sshd_tree(
        tmp_path,
        KEYS_ONLY
        + "Match User deploy\n    PasswordAuthentication yes\n"
        + "Match Address 10.0.0.0/8\n    PasswordAuthentication yes\n"
        + "    AuthenticationMethods publickey,password\n",
    )
    ctx = context_for(NamespacedHost(PRIVATE_RUN), {})
    verdict = run_check(SshdAuthContextsCheck, {"config": str(config)}, ctx)
    assert verdict.status is Status.FAIL
    assert verdict.evidence == (
        f"Match User deploy ({config}:5) as user=deploy,host=audit.invalid,addr=192.0.2.10: "
        "password, publickey: password needs no key",
        "default as user=lappguard-audit,host=audit.invalid,addr=192.0.2.10: publickey",
        # passwords are on here, but only after a key: what the live probe cannot see
        f"Match Address 10.0.0.0/8 ({config}:7) as "
        "user=lappguard-audit,host=audit.invalid,addr=10.0.0.1: publickey+password",
    )


def test_groups_come_from_the_trees_group_file_and_unbuildable_blocks_are_noted(tmp_path):
    root = make_tree(
        tmp_path,
        {
            "/etc/ssh/sshd_config": KEYS_ONLY
            + "Match Group admins\n    KbdInteractiveAuthentication yes\n"
            + "Match Group nobody-in-it\n    PasswordAuthentication yes\n",
            "/etc/group": "admins:x:1001:alice,bob\nnobody-in-it:x:1002:\n",
        },
    )
    verdict = run_check(SshdAuthContextsCheck, {}, context(root))
    cfg = "/etc/ssh/sshd_config"
    assert verdict.status is Status.FAIL
    assert verdict.evidence == (
        f"Match Group admins ({cfg}:4) as user=alice,host=audit.invalid,addr=192.0.2.10: "
        "keyboard-interactive, publickey: keyboard-interactive needs no key",
        "default as user=lappguard-audit,host=audit.invalid,addr=192.0.2.10: publickey",
        "note: sshd -T not used (sshd cannot run when auditing a directory tree): "
        "values from the files",
        f"note: Match Group nobody-in-it ({cfg}:6): no client can be built for it "
        "(LAPP-SSH-003 judges its lines)",
    )
