"""docs/coverage.md: every listed reference control has a check that cites it or a reason it
does not apply, the complete lists hold exactly their reference's controls, and the
document is what scripts/coverage writes today."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import require_program, require_shared_data

from checks.coverage import (
    COVERAGE_DOC,
    REFERENCES_DIR,
    citations,
    control_cited,
    load_lists,
    problems,
    render,
    tally,
)
from checks.policy import load_policy
from policies import builtin_policy

LYNIS_INCLUDE = Path("/usr/share/lynis/include")
#: The lists this baseline's PostgreSQL and patching checks are measured against.
OWN_LISTS = (
    "devsec-postgres.yaml",
    "lynis-databases.yaml",
    "lynis-ports-packages.yaml",
    "lynis-kernel.yaml",
    "lynis-insecure-services.yaml",
    "lynis-firewalls.yaml",
    "lynis-tooling.yaml",
)


@pytest.fixture(scope="module")
def baseline():
    return load_policy(builtin_policy("lapp-baseline"))


def test_every_listed_control_is_implemented_or_ruled_out(baseline):
    lists, shape = load_lists()
    assert shape == []
    assert problems(lists, baseline) == []


def test_the_document_is_current(baseline):
    lists, _ = load_lists()
    assert COVERAGE_DOC.read_text() == render(lists, baseline), "run scripts/coverage"


def test_postgresql_and_patching_cover_ninety_percent_of_each_reference(baseline):
    lists = {listed.file.name: listed for listed in load_lists()[0]}
    cited = citations(baseline)
    devsec = tally([lists["devsec-postgres.yaml"]], cited)
    lynis = tally([lists[name] for name in OWN_LISTS if name.startswith("lynis")], cited)
    assert devsec.covered >= 0.9 * devsec.applicable and devsec.applicable >= 14
    assert lynis.covered >= 0.9 * lynis.applicable


#: The lists "SSH, accounts and logs" keeps.
SSH_LISTS = ("devsec-ssh.yaml", "ssh-audit.yaml")


def test_ssh_accounts_and_logs_cover_ninety_percent_of_each_reference(baseline):
    lists = {listed.file.name: listed for listed in load_lists()[0]}
    cited = citations(baseline)
    mine = [item for item in lists.values() if item.owner == "SSH, accounts and logs"]
    assert {item.file.name for item in mine} >= {*SSH_LISTS, "lynis-accounting.yaml",
                                                  "lynis-authentication.yaml",
                                                  "lynis-logging.yaml"}  # fmt: skip
    for name in SSH_LISTS:
        t = tally([lists[name]], cited)
        assert lists[name].complete and t.covered >= 0.9 * t.applicable, name
    lynis = tally([item for item in mine if item.cite == "Lynis"], cited)
    assert lynis.covered >= 0.9 * lynis.applicable
    assert all(item.complete for item in mine)


def test_the_ssh_list_holds_every_devsec_sshd_control():
    summary = require_shared_data("devsec_baselines/CHECKS_SUMMARY.md").read_text()
    section = summary.split("## ssh-baseline", 1)[1].split("(ssh_spec.rb", 1)[0]
    # "- sshd-01/02/03 Ciphers/...", "sshd-04 /etc/ssh dir ...; sshd-05 sshd_config ..."
    ids = {f"sshd-{n}" for n in re.findall(r"(?:sshd-|/)(\d\d)\b", section)}
    (listed,) = [item for item in load_lists()[0] if item.file.name == "devsec-ssh.yaml"]
    assert {control.id for control in listed.controls} == ids
    assert len(ids) == 49  # sshd-01..50 but sshd-26


def registered_tests(include: Path) -> set[str]:
    """The test IDs a Lynis include file registers (commented-out tests excluded)."""
    pattern = re.compile(r'^\s*Register --test-no "?([A-Z]+-\d+)', re.MULTILINE)
    return set(pattern.findall(include.read_text()))


@pytest.mark.parametrize("name", sorted(p.name for p in REFERENCES_DIR.glob("lynis-*.yaml")))
def test_a_lynis_list_holds_its_include_files_tests(name):
    require_program("lynis")
    (listed,) = [item for item in load_lists()[0] if item.file.name == name]
    include = LYNIS_INCLUDE / listed.source.rsplit("/", 1)[1]
    ids = {control.id for control in listed.controls}
    if listed.complete:
        assert ids == registered_tests(include)
    else:
        assert ids <= registered_tests(include)


@pytest.mark.parametrize("baseline_name", ["postgres", "apache"])
def test_a_complete_devsec_list_holds_every_control(baseline_name):
    summary = require_shared_data("devsec_baselines/CHECKS_SUMMARY.md").read_text()
    section = summary.split(f"## {baseline_name}-baseline", 1)[1].split("\n## ", 1)[0]
    # "- postgres-02 psql version ...; 03 exactly one postmaster ..."
    found = re.findall(rf"(?:{baseline_name}-|; )(\d\d) ", section)
    ids = {f"{baseline_name}-{n}" for n in found}
    (listed,) = [i for i in load_lists()[0] if i.file.name == f"devsec-{baseline_name}.yaml"]
    assert listed.complete
    assert {control.id for control in listed.controls} == ids


def test_a_parenthesised_detail_cites_the_control_before_it(baseline):
    assert control_cited("Lynis SSH-7408 (LogLevel)") == "Lynis SSH-7408"
    assert control_cited("dev-sec sshd-27") == "dev-sec sshd-27"
    cited = citations(baseline)
    assert {"LAPP-SSH-013", "LAPP-SSH-015"} <= set(cited["Lynis SSH-7408"])
    assert "Lynis SSH-7408 (LogLevel)" not in cited


def write_list(directory: Path, controls: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "example.yaml").write_text(
        "reference: Example\ncite: ex\nversion: '1'\nsource: here\nowner: me\nscope: all\n"
        f"complete: true\ncontrols:\n{controls}"
    )


def test_unresolved_contradicting_and_unknown_controls_are_named(tmp_path, baseline):
    write_list(
        tmp_path,
        "  - {id: one, title: neither cited nor ruled out}\n"
        "  - {id: PKGS-7392, title: cited and ruled out, not_applicable: because}\n",
    )
    lists, shape = load_lists(tmp_path)
    listed = lists[0]
    listed.cite = "Lynis"
    found = problems(lists, baseline)
    path = f"{tmp_path}/example.yaml"
    assert shape == []
    assert found[:2] == [
        f"{path}:9: Lynis one: no check cites it and no reason rules it out",
        f"{path}:10: Lynis PKGS-7392: ruled out, yet cited by LAPP-PATCH-009",
    ]
    assert "LAPP-PG-017 cite 'Lynis DBS-1828', which no list in docs/references holds" in found


def test_a_malformed_list_is_located(tmp_path):
    write_list(tmp_path, "  - {id: one, title: t, applicable: maybe}\n  - {title: no id}\n")
    _, shape = load_lists(tmp_path)
    path = f"{tmp_path}/example.yaml"
    assert shape == [f"{path}:9: one: unknown key applicable", f"{path}:10: a control needs "
                     "an id and a title"]  # fmt: skip


#: The lists this baseline's TLS, Apache and PHP checks are measured against.
WEB_LISTS = ("devsec-apache.yaml", "lynis-webservers.yaml", "lynis-crypto.yaml",
             "lynis-php.yaml", "sslyze.yaml", "mozilla-intermediate.yaml")  # fmt: skip


@pytest.mark.parametrize("name", WEB_LISTS)
def test_tls_apache_and_php_cover_ninety_percent_of_each_reference(baseline, name):
    (listed,) = [item for item in load_lists()[0] if item.file.name == name]
    covered = tally([listed], citations(baseline))
    assert covered.applicable and covered.covered >= 0.9 * covered.applicable


def test_the_sslyze_list_holds_every_scan_command():
    sslyze = pytest.importorskip("sslyze", reason="pip install -e '.[test]' brings sslyze")
    (listed,) = [item for item in load_lists()[0] if item.file.name == "sslyze.yaml"]
    assert listed.complete
    assert {control.id for control in listed.controls} == {c.value for c in sslyze.ScanCommand}


def test_the_mozilla_list_holds_the_intermediate_profile():
    sslyze = pytest.importorskip("sslyze", reason="pip install -e '.[test]' brings sslyze")
    shipped = Path(sslyze.__file__).parent / "mozilla_tls_profile" / "5.7.json"
    profile = json.loads(shipped.read_text())["configurations"]["intermediate"]
    (listed,) = [i for i in load_lists()[0] if i.file.name == "mozilla-intermediate.yaml"]
    ids = {control.id for control in listed.controls}
    assert ids == set(profile) if listed.complete else ids < set(profile)
