"""The engine: applicability, isolation of crashing checks, live-only checks under --root."""

from __future__ import annotations

from treeutil import dpkg_status, make_tree

from checks.conditions import Condition
from checks.engine import audit_host
from checks.hosts import LocalHost
from checks.policy import Check, Policy
from checks.result import Severity, Status, passed
from checks.types.base import CheckType


class Crashes(CheckType):
    name = "crashes"
    schema = {}

    def run(self, ctx):
        raise ZeroDivisionError("division by zero")


class ReadsFile(CheckType):
    name = "reads"
    schema = {}

    def run(self, ctx):
        return passed(ctx.host.read_text("/etc/hostname").strip())


class LiveOnly(CheckType):
    name = "live_only"
    schema = {}
    needs_live_host = True

    def run(self, ctx):
        return passed("ran")


def check(check_id: str, implementation: CheckType, *conditions: Condition) -> Check:
    return Check(
        check_id,
        "t",
        check_id.split("-")[1],
        Severity.HIGH,
        "",
        "fix it",
        (),
        conditions,
        implementation.name,
        implementation,
        "test.yaml",
        1,
    )


def policy(*checks: Check, values: dict | None = None) -> Policy:
    return Policy("p", "P", "1", "", {}, values or {}, checks, "test.yaml")


def test_a_crashing_check_is_an_error_and_the_audit_goes_on(tmp_path):
    make_tree(tmp_path, {"/etc/hostname": "web01\n"})
    report = audit_host(
        [policy(check("LAPP-SVC-001", Crashes({})), check("LAPP-SVC-002", ReadsFile({})))],
        LocalHost(root=str(tmp_path)),
    )
    crashed, fine = report.results
    assert (crashed.status, crashed.reason) == (
        Status.ERROR,
        "check crashed: ZeroDivisionError: division by zero",
    )
    assert crashed.remediation == "fix it"
    assert (fine.status, fine.evidence) == (Status.PASS, ("web01",))


def test_host_errors_become_errors_with_the_reason(tmp_path):
    report = audit_host(
        [policy(check("LAPP-SVC-001", ReadsFile({})))], LocalHost(root=str(tmp_path))
    )
    assert report.results[0].status is Status.ERROR
    assert report.results[0].reason.startswith("/etc/hostname: No such file")


def test_conditions_skip_with_reasons(tmp_path):
    make_tree(
        tmp_path, {"/var/lib/dpkg/status": dpkg_status("openssh-server"), "/etc/hostname": "h\n"}
    )
    checks = [
        check("LAPP-WEB-001", ReadsFile({}), Condition("package", "apache2")),
        check("LAPP-SSH-001", ReadsFile({}), Condition("package", "openssh-server")),
        check("LAPP-BAK-001", ReadsFile({}), Condition("var_set", "backup_dir")),
        check("LAPP-TLS-050", LiveOnly({})),
        check("LAPP-TLS-051", ReadsFile({}), Condition("live", True)),
    ]
    report = audit_host(
        [policy(*checks, values={"backup_dir": None})], LocalHost(root=str(tmp_path))
    )
    outcome = {r.check_id: (r.status, r.reason) for r in report.results}
    assert outcome == {
        "LAPP-WEB-001": (Status.SKIP, "apache2 not installed"),
        "LAPP-SSH-001": (Status.PASS, ""),
        "LAPP-BAK-001": (
            Status.SKIP,
            "variable backup_dir is not set (--var backup_dir=VALUE or audit.vars.backup_dir in "
            "the agent config)",
        ),
        "LAPP-TLS-050": (
            Status.SKIP,
            "needs a running system (not available when auditing a directory tree)",
        ),
        "LAPP-TLS-051": (
            Status.SKIP,
            "needs a running system (not available when auditing a directory tree)",
        ),
    }


def test_undecidable_condition_is_an_error(tmp_path):
    report = audit_host(
        [policy(check("LAPP-WEB-001", ReadsFile({}), Condition("package", "apache2")))],
        LocalHost(root=str(tmp_path)),
    )
    assert report.results[0].status is Status.ERROR
    assert "cannot tell whether the check applies" in report.results[0].reason


def test_results_keep_policy_order_under_concurrency(tmp_path):
    make_tree(tmp_path, {"/etc/hostname": "h\n"})
    checks = [check(f"LAPP-SVC-{i:03d}", ReadsFile({})) for i in range(40)]
    report = audit_host([policy(*checks)], LocalHost(root=str(tmp_path)), workers=8)
    assert [r.check_id for r in report.results] == [c.id for c in checks]
