"""SARIF against the OASIS 2.1.0 schema, JUnit against Jenkins' junit-10.xsd, JSON's added
fields: what code-scanning dashboards and CI servers will accept (tests/fixtures/schemas)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import xmlschema
from conftest import FIXTURES
from treeutil import hardened_root

from agent.cli import main

SCHEMAS = FIXTURES / "schemas"
SARIF = jsonschema.Draft4Validator(json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text()))
JUNIT = xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd"))
ISO8601 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def weakened(tmp_path_factory) -> Path:
    """The hardened tree with findings whose evidence names files and lines: an sshd drop-in
    read first turns passwords on, PostgreSQL's prefix is Debian's, a failing low check."""
    root = hardened_root(tmp_path_factory.mktemp("weakened"))
    drop_ins = root / "etc/ssh/sshd_config.d"
    (drop_ins / "10-cloud.conf").write_text("PasswordAuthentication yes\nMaxAuthTries 10\n")
    conf = root / "etc/postgresql/15/main/postgresql.conf"
    conf.write_text(conf.read_text().replace("%m [%p] %h %q%u@%d ", "%m [%p] %q%u@%d "))
    security = root / "etc/apache2/conf-available/security.conf"
    security.write_text(security.read_text().replace("ServerTokens Prod", "ServerTokens OS"))
    return root


def report(tmp_path: Path, root: Path, kind: str, *extra: str) -> tuple[int, str]:
    output = tmp_path / f"report.{kind}"
    code = main(
        ["audit", "--root", str(root), "--format", kind, "--output", str(output),
         "--var", "office_networks=10.0.0.0/8,192.168.10.0/24,2001:db8:a::/48", *extra]
    )  # fmt: skip
    return code, output.read_text(encoding="utf-8")


@pytest.mark.parametrize("tree", ["hardened", "weakened"])
def test_sarif_is_valid_against_the_oasis_schema(tmp_path, weakened, tree):
    root = weakened if tree == "weakened" else hardened_root(tmp_path)
    _, text = report(tmp_path, root, "sarif")
    document = json.loads(text)
    SARIF.validate(document)
    run = document["runs"][0]
    assert run["properties"]["lappguard"]["policies"][0]["id"] == "lapp-baseline"
    if tree == "hardened":
        assert run["results"] == []


def test_sarif_results_carry_the_files_and_lines_of_their_evidence(tmp_path, weakened):
    _, text = report(tmp_path, weakened, "sarif")
    run = json.loads(text)["runs"][0]
    base = run["originalUriBaseIds"]["AUDITED_ROOT"]["uri"]
    assert base == f"file://{weakened}/"
    places = {
        result["ruleId"]: [
            (loc["physicalLocation"]["artifactLocation"]["uri"],
             loc["physicalLocation"].get("region", {}).get("startLine"))
            for loc in result["locations"] if "physicalLocation" in loc
        ]
        for result in run["results"]
    }  # fmt: skip
    assert places["LAPP-SSH-001"] == [("etc/ssh/sshd_config.d/10-cloud.conf", 1)]
    assert places["LAPP-SSH-006"] == [("etc/ssh/sshd_config.d/10-cloud.conf", 2)]
    conf = weakened / "etc/postgresql/15/main/postgresql.conf"
    prefix_line = next(
        number
        for number, line in enumerate(conf.read_text().splitlines(), 1)
        if line.startswith("log_line_prefix")
    )
    assert places["LAPP-PG-006"] == [("etc/postgresql/15/main/postgresql.conf", prefix_line)]
    for result in run["results"]:  # every location resolves to a file of the audited tree
        for uri, _ in places[result["ruleId"]]:
            assert (weakened / uri).is_file(), uri


@pytest.mark.parametrize("fail_on", ["low", "medium", "critical"])
def test_junit_is_valid_against_junit_10_xsd(tmp_path, weakened, fail_on):
    code, text = report(tmp_path, weakened, "junit", "--fail-on", fail_on)
    JUNIT.validate(text)
    suite = JUNIT.to_dict(text)["testsuite"][0]
    failures = int(suite["@failures"]) + int(suite["@errors"])
    assert (failures > 0) == (code == 1)  # the suite fails exactly when the exit code does


def test_json_carries_version_time_policies_and_variables(tmp_path, weakened):
    _, text = report(tmp_path, weakened, "json")
    document = json.loads(text)
    assert document["tool"] == {"name": "lappguard", "version": "0.1.0"}
    assert ISO8601.match(document["generated_at"])
    assert ISO8601.match(document["hosts"][0]["started_at"])
    assert isinstance(document["hosts"][0]["started"], float)  # the old field stays
    (policy,) = document["policies"]
    assert (policy["id"], policy["version"]) == ("lapp-baseline", "1.0.0")
    assert document["config"] is None and document["root"] == str(weakened)
    variables = document["variables"]
    assert variables["office_networks"]["from"] == "--var"
    assert variables["office_networks"]["value"] == [
        "10.0.0.0/8",
        "192.168.10.0/24",
        "2001:db8:a::/48",
    ]
    assert variables["backup_max_age"] == {"value": 93600.0, "text": "26h", "from": "default"}


def test_json_names_the_config_and_the_line_of_each_variable(tmp_path, weakened):
    config = tmp_path / "agent.yaml"
    config.write_text("audit:\n  vars:\n    max_auth_tries: 3\n    backup_dir: /srv/backup\n")
    _, text = report(tmp_path, weakened, "json", "--config", str(config))
    document = json.loads(text)
    assert document["config"] == str(config)
    assert document["variables"]["max_auth_tries"]["from"] == f"{config}:3"
    assert document["variables"]["backup_dir"]["from"] == f"{config}:4"
    assert document["variables"]["ssh_auth"]["from"] == "default"


def test_schemas_are_the_vendored_ones():
    """SOURCE.txt names each file's checksum: a changed schema must change its record too."""
    import hashlib

    source = (SCHEMAS / "SOURCE.txt").read_text()
    for name in ("sarif-schema-2.1.0.json", "junit-10.xsd"):
        digest = hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest()
        assert digest in source, name


@pytest.fixture(scope="module")
def two_hosts(weakened, tmp_path_factory) -> list:
    """A fleet's reports: two real audits (the hardened and the weakened tree) named as two
    hosts, and a third host that could not be audited (LAPP-HOST-001)."""
    from checks.engine import audit_host
    from checks.fleet import not_audited
    from checks.hosts import LocalHost
    from checks.policy import load_policies
    from policies import builtin_policy

    policies = load_policies([builtin_policy("lapp-baseline")], {"office_networks": "10.0.0.0/8"})
    hardened = hardened_root(tmp_path_factory.mktemp("fleet-hardened"))
    return [
        replace(audit_host(policies, LocalHost(root=str(hardened))), host="web1"),
        replace(audit_host(policies, LocalHost(root=str(weakened))), host="web2"),
        not_audited("db1", "root@db1:22: Connection refused", 1763900000.0, 0.1),
    ]


def fleet_report(reports: list, kind: str) -> str:
    from checks.report import RENDERERS
    from checks.result import Severity

    return RENDERERS[kind](reports, fail_on=Severity.MEDIUM, fleet=True)


def test_a_fleets_sarif_is_valid_and_names_each_results_host(two_hosts):
    document = json.loads(fleet_report(two_hosts, "sarif"))
    SARIF.validate(document)
    run = document["runs"][0]
    assert run["originalUriBaseIds"]["AUDITED_ROOT@web2"]["uri"] == "file://web2/"
    results = run["results"]
    assert "web2" in {r["properties"]["host"] for r in results}
    for result in results:  # the file is on that host, and says so twice
        host = result["properties"]["host"]
        for location in result["locations"]:
            assert location["logicalLocations"] == [{"name": host, "kind": "module"}]
            if "physicalLocation" in location:
                base = location["physicalLocation"]["artifactLocation"]["uriBaseId"]
                assert base == f"AUDITED_ROOT@{host}"
    (unreachable,) = [
        n
        for n in run["invocations"][0]["toolExecutionNotifications"]
        if n["descriptor"]["id"] == "LAPP-HOST-001"
    ]
    assert unreachable["message"]["text"].startswith("db1: LAPP-HOST-001: root@db1:22")


def test_a_fleets_junit_is_valid_with_a_suite_per_host(two_hosts):
    text = fleet_report(two_hosts, "junit")
    JUNIT.validate(text)
    suites = {s["@name"]: s for s in JUNIT.to_dict(text)["testsuite"]}
    assert list(suites) == ["web1", "web2", "db1"]
    assert int(suites["web2"]["@failures"]) > int(suites["web1"]["@failures"])
    assert (suites["db1"]["@tests"], suites["db1"]["@errors"]) == ("1", "1")


def test_a_fleets_json_has_every_host(two_hosts):
    document = json.loads(fleet_report(two_hosts, "json"))
    assert [h["host"] for h in document["hosts"]] == ["web1", "web2", "db1"]
    assert document["hosts"][2]["results"][0]["id"] == "LAPP-HOST-001"
    assert document["summary"]["total"] == sum(len(h["results"]) for h in document["hosts"])
