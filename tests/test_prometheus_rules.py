"""contrib/: the alert rules, their unit tests, the example configs and the Grafana dashboard,
checked by Prometheus' and Alertmanager's own tools, and held to the metric catalogue
(agent/metric_names.py) so no alert or panel watches a metric the daemon does not export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT, require_program

from agent.metric_names import BY_NAME, CATALOGUE
from agent.webconfig import load_web_config

CONTRIB = PROJECT_ROOT / "contrib"
ALERTS = CONTRIB / "prometheus" / "alerts.yml"
ALERTS_TEST = CONTRIB / "prometheus" / "alerts_test.yml"
PROMETHEUS_EXAMPLE = CONTRIB / "prometheus" / "prometheus.yml"
WEB_EXAMPLE = CONTRIB / "prometheus" / "web.yml"
ALERTMANAGER_EXAMPLE = CONTRIB / "alertmanager" / "alertmanager.yml"
DASHBOARD = CONTRIB / "grafana" / "lappguard.json"
#: Series Prometheus makes itself, and the labels it adds to every scraped one.
PROMETHEUS_SERIES = {"up": ()}
TARGET_LABELS = ("job", "instance")


def run(*argv: str | Path) -> str:
    """Run a checker; fail the test with its output when it says no."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def alert_rules() -> list[dict]:
    return [
        rule
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def dashboard_queries() -> list[str]:
    """Every PromQL query of the dashboard, Grafana's variables as Prometheus would get them."""
    board = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":  # label_values(QUERY, LABEL)
            queries.append(
                re.sub(r"^label_values\((.*), \w+\)$", r"\1", variable["query"]["query"])
            )
    return [q.replace("$__rate_interval", "5m").replace("$instance", ".*") for q in queries]


# --- the tools' verdicts ---------------------------------------------------------------------


def test_alert_rules_are_valid() -> None:
    assert "SUCCESS" in run(require_program("promtool"), "check", "rules", ALERTS)


def test_alert_unit_tests_pass() -> None:
    run(require_program("promtool"), "test", "rules", ALERTS_TEST)


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_does_not() -> None:
    fires, quiet = set(), set()
    for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"


def test_every_alert_has_a_severity_and_names_the_host() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description"}, rule["alert"]
        if not rule["expr"].startswith("absent("):  # no host to name when none is there
            assert "$labels.instance" in annotations["summary"], rule["alert"]
            assert "$labels.instance" in annotations["description"], rule["alert"]


def test_example_prometheus_config_is_valid_with_and_without_tls(tmp_path) -> None:
    promtool = require_program("promtool")
    run(promtool, "check", "config", PROMETHEUS_EXAMPLE)
    # The commented TLS and basic-auth variant, uncommented, with its files in place.
    lines = PROMETHEUS_EXAMPLE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("# TLS and basic"))
    variant = [line.replace("# ", "", 1) for line in lines[start + 1 :] if line.strip()]
    text = "\n".join(lines[: start + 1] + variant) + "\n"
    for file in ("/etc/prometheus/lappguard-ca.crt", "/etc/prometheus/lappguard.password"):
        local = tmp_path / Path(file).name
        local.write_text("placeholder\n")
        text = text.replace(file, str(local))
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(text)
    assert "scheme: https" in text
    run(promtool, "check", "config", tmp_path / "prometheus.yml")


def test_example_web_config_is_valid(tmp_path) -> None:
    """promtool and our loader both accept it, with a certificate where it says."""
    promtool = require_program("promtool")
    require_program("openssl")
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-keyout",
        tmp_path / "metrics.key",
        "-out",
        tmp_path / "metrics.crt",
    )
    shutil.copy(WEB_EXAMPLE, tmp_path / "web.yml")
    run(promtool, "check", "web-config", tmp_path / "web.yml")
    config = load_web_config(tmp_path / "web.yml")
    assert config.tls is not None and set(config.users) == {"prometheus"}


def test_example_alertmanager_config_is_valid() -> None:
    assert "SUCCESS" in run(require_program("amtool"), "check-config", ALERTMANAGER_EXAMPLE)


def test_dashboard_queries_are_valid_promql(tmp_path) -> None:
    """promtool parses each query as a recording rule (there is no Grafana here to ask)."""
    queries = dashboard_queries()
    rules = [{"record": f"dashboard:query_{i}", "expr": query} for i, query in enumerate(queries)]
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]})
    )
    run(require_program("promtool"), "check", "rules", tmp_path / "queries.yml")


def test_dashboard_is_well_formed() -> None:
    board = json.loads(DASHBOARD.read_text())
    panels = board["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"])
    titles = " ".join(panel["title"].lower() for panel in panels)
    for subject in (
        "checks failing by host",
        "attacks",
        "active bans",
        "unbans",
        "firewall",
        "lag",
        "audit age",
    ):
        assert subject in titles


# --- the catalogue ---------------------------------------------------------------------------

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"


def promql_names(query: str) -> tuple[set[str], set[tuple[str, str]], set[str]]:
    """(metric names, (metric, label) pairs of selectors, labels of by/on/... clauses) in a
    PromQL query: enough PromQL to catch a misspelt metric or label, not a parser."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'", '""', query)  # strings
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    selected: set[tuple[str, str]] = set()
    for match in re.finditer(rf"({_NAME})?\s*\{{([^}}]*)\}}", text):
        for label in re.findall(rf"({_NAME})\s*(?:=~|!~|!=|=)", match.group(2)):
            selected.add((match.group(1) or "", label))
    text = re.sub(r"\{[^}]*\}", " ", text)
    grouping: set[str] = set()
    for labels in re.findall(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text
    ):
        grouping.update(label.strip() for label in labels.split(",") if label.strip())
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = {
        word
        for word in re.findall(rf"(?<![\w.:]){_NAME}(?![\w:]|\s*\()", text)
        if word.lower() not in _KEYWORDS and not re.fullmatch(r"\d.*", word)
    }
    return names, selected, grouping


def test_promql_names_reads_what_the_checks_rely_on() -> None:
    names, selected, grouping = promql_names(
        'sum by (job, instance) (increase(lappguard_bans_total{jail="a,b", x!~"y"}[1d] offset'
        ' 10m)) / 144 > on (instance) group_left (jail) up{job="lappguard"} == bool 1'
    )
    assert names == {"lappguard_bans_total", "up"}
    assert selected == {
        ("lappguard_bans_total", "jail"),
        ("lappguard_bans_total", "x"),
        ("up", "job"),
    }
    assert grouping == {"job", "instance", "jail"}


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_alerts_and_dashboard_use_only_catalogued_metrics_and_labels(source) -> None:
    alerts = [rule["expr"] for rule in alert_rules()]
    queries = alerts if source == "alerts" else dashboard_queries()
    known = {name: metric.labels for name, metric in BY_NAME.items()} | PROMETHEUS_SERIES
    for query in queries:
        names, selected, grouping = promql_names(query)
        assert names <= set(known), f"not in agent/metric_names.py: {names - set(known)}: {query}"
        for metric, label in selected:
            allowed = (*known.get(metric, ()), *TARGET_LABELS)
            assert label in allowed, f"{metric}{{{label}}}: {query}"
        labels = {label for name in names for label in known[name]}
        assert grouping <= labels | set(TARGET_LABELS), f"{grouping - labels}: {query}"


def test_catalogue_follows_prometheus_conventions() -> None:
    assert len(BY_NAME) == len(CATALOGUE)
    for metric in CATALOGUE:
        assert metric.name.startswith(("lappguard_", "process_")), metric.name
        assert metric.type in ("gauge", "counter"), metric.name
        assert (metric.type == "counter") == metric.name.endswith("_total"), metric.name
        assert metric.help and not metric.help.endswith("."), metric.name
        assert all(re.fullmatch(r"[a-z_]+", label) for label in metric.labels), metric.name
