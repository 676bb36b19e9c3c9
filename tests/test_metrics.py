"""What a running agent exports: exactly the catalogue the alerts and dashboard are checked
against, every series of it once the first audit has run (the last audit's time and
duration do not exist before it), and clean by `promtool check metrics`."""

from __future__ import annotations

import subprocess
import urllib.request

from agent_process import AgentProcess, wait_until
from conftest import require_program
from prometheus_client.parser import text_string_to_metric_families
from test_daemon import config

from agent.metric_names import CATALOGUE


def test_the_exposition_is_the_catalogue_and_promtool_clean(tmp_path):
    agent = AgentProcess(tmp_path, config(tmp_path))
    try:
        agent.start()
        agent.ready()
        wait_until(lambda: agent.value("lappguard_audit_runs_total", trigger="start") >= 1,
                   what="the first audit")  # fmt: skip
        url = f"http://127.0.0.1:{agent.port}/metrics"
        body = urllib.request.urlopen(url, timeout=10).read().decode()
    finally:
        agent.close()
    catalogue = {metric.name: set(metric.labels) for metric in CATALOGUE}
    families = set()
    for family in text_string_to_metric_families(body):
        families.add(family.name + ("_total" if family.type == "counter" else ""))
        for sample in family.samples:  # a family with no series yet shows no labels
            if not sample.name.endswith("_created"):
                assert set(sample.labels) == catalogue[sample.name], sample
    assert families == set(catalogue)
    done = subprocess.run([require_program("promtool"), "check", "metrics"], input=body,
                          capture_output=True, text=True)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_rule_series_exist_before_the_first_event(tmp_path):
    agent = AgentProcess(tmp_path, config(tmp_path))
    try:
        agent.start()
        agent.ready()
        samples = agent.scrape()
    finally:
        agent.close()
    events = {dict(labels)["rule"] for name, labels in samples if name == "lappguard_events_total"}
    assert {"sshd-failed-auth", "sshd-invalid-user"} <= events
    key = ("lappguard_events_total", (("jail", "sshd"), ("rule", "sshd-failed-auth")))
    assert samples[key] == 0
