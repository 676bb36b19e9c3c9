"""The audit worker's watch on the files an audit read: changes re-audit, reads cost nothing.

The audit reads files in busy directories (/etc). A watch that also took opens and no-write
closes woke the agent for every process on the host reading /etc/passwd (13% of a core,
idle, at 1,800 opens a second), so the kernel is asked for changes only; a change of mode
or owner is one of them (the audit checks modes and owners).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from agent_process import wait_until

from agent import audit_worker
from agent.audit_worker import AuditWorker
from agent.config import AuditConfig

POLICY = """\
id: watch-test
title: one check on one file
version: "1"
checks:
  - id: TEST-SSH-001
    title: Password authentication is off
    severity: high
    rationale: keys only
    remediation: set PasswordAuthentication no
    type: sshd_config
    params: {{keyword: passwordauthentication, expect: {{equals: "no"}}, config: {config}}}
"""


@pytest.fixture
def watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A running AuditWorker on one file, and the count of events its handler was given."""
    config = tmp_path / "sshd_config"
    config.write_text("PasswordAuthentication no\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(config=config))
    events: list[str] = []
    handle = audit_worker._Changed.on_any_event

    def counted(self, event):
        events.append(event.event_type)
        handle(self, event)

    monkeypatch.setattr(audit_worker._Changed, "on_any_event", counted)
    worker = AuditWorker(AuditConfig(policies=(str(policy),), interval=3600.0))
    worker.start()
    wait_until(lambda: worker.runs["start"] == 1, what="the first audit")
    yield worker, config, events
    worker.stop()
    worker.join(10)


def test_reads_do_not_wake_the_worker_and_a_mode_change_re_audits(watched):
    worker, config, events = watched
    for _ in range(200):
        config.read_text()
    os.chmod(config, 0o600)  # queued by the kernel after the reads: all are delivered by now
    wait_until(lambda: worker.runs["change"] == 1, timeout=10, what="the audit after chmod")
    assert set(events) == {"attrib"}
