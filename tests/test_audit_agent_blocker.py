"""The audit's failed-login blocking checks count the lappguard agent: a real `lappguard run`
banning through nftables in a network namespace of the test's own, audited from inside it.

Its table `inet lappguard` drops banned addresses only: the default-deny check says so rather
than taking it for a firewall, and passes once a real default-deny table sits beside it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from agent_process import AgentProcess
from conftest import lappguard_command, require_program, require_root
from namespaces import in_namespace, network_namespace

pytestmark = pytest.mark.root

DEFAULT_DENY = """\
table inet filter {
    chain input {
        type filter hook input priority 0; policy drop;
        ct state established,related accept
        iif lo accept
    }
}
"""


def audit(namespace: str) -> dict[str, dict]:
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, lappguard_command(), "audit", "--format", "json",
         "--only", "LAPP-FW-001,LAPP-FW-011"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return {r["id"]: r for r in json.loads(done.stdout)["hosts"][0]["results"]}


@pytest.fixture
def agent(tmp_path: Path):
    require_root()
    require_program("nft")
    (tmp_path / "auth.log").write_text("")
    config = f"""\
state_dir: {tmp_path}/state
metrics: {{listen: "127.0.0.1:PORT"}}
firewall: {{backend: nftables}}
sources: [{{kind: sshd, path: {tmp_path}/auth.log}}]
audit: {{policies: [lapp-baseline], interval: 1h}}
"""
    with network_namespace() as namespace:
        process = AgentProcess(tmp_path, config, namespace=namespace)
        process.start()
        try:
            process.ready()
            yield namespace
        finally:
            process.close()


def test_a_running_agent_is_failed_login_blocking_and_its_table_no_firewall(agent):
    results = audit(agent)
    running = results["LAPP-FW-011"]
    assert running["status"] == "pass"
    assert any(" run --config " in line and "lappguard" in line for line in running["evidence"])
    deny = results["LAPP-FW-001"]
    assert deny["status"] == "fail"
    assert any(line.startswith("note: table inet lappguard is the lappguard agent's")
               for line in deny["evidence"])  # fmt: skip

    in_namespace(agent, "nft", "-f", "-", stdin=DEFAULT_DENY)
    deny = audit(agent)["LAPP-FW-001"]
    assert deny["status"] == "pass", deny["evidence"]
    assert any("table inet filter chain input" in line for line in deny["evidence"])
