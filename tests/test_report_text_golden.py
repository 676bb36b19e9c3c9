"""The text report, byte for byte, with and without colour (tests/fixtures/golden).

The audit is real (a small tree built here, a fixed excerpt of the baseline in
tests/fixtures/golden/policy.yaml); only what changes from run to run is fixed afterwards:
the host name, the durations and the time. After a deliberate change to
the report, rewrite the files with ``LAPPGUARD_UPDATE_GOLDEN=1 pytest
tests/test_report_text_golden.py`` and read the diff.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace

import pytest
from conftest import FIXTURES
from treeutil import dpkg_status, make_tree

from checks.engine import audit_host
from checks.hosts import LocalHost
from checks.policy import Origin, load_policies
from checks.report import RENDERERS
from checks.report.provenance import describe_run
from checks.result import Severity

GOLDEN = FIXTURES / "golden"
SGR = re.compile(r"\x1b\[[\d;]*m")
WHEN = 1763900000.0  # 2025-11-23T12:13:20Z


#: The audited tree, whole: the golden files change only with the report or this tree.
TREE = {
    "/var/lib/dpkg/status": dpkg_status(
        "openssh-server", "apache2", "postgresql-common", "unattended-upgrades"
    ),
    "/etc/ssh/sshd_config": (
        "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n"
        "AllowUsers admin@10.0.0.0/8\n"
    ),
    # read first, as cloud images ship it: its values win over the hardening file's
    "/etc/ssh/sshd_config.d/10-cloud.conf": "PasswordAuthentication yes\nMaxAuthTries 10\n",
    "/etc/ssh/sshd_config.d/50-hardening.conf": "PasswordAuthentication no\nPermitRootLogin no\n",
    "/etc/apache2/apache2.conf": "Listen 80\nIncludeOptional conf-enabled/*.conf\n",
    "/etc/apache2/conf-enabled/security.conf": "ServerTokens OS\nServerSignature Off\n",
    "/etc/postgresql/15/main/postgresql.conf": (
        "listen_addresses = 'localhost'\nlog_line_prefix = '%m [%p] %q%u@%d '\n"
    ),
    "/etc/apt/apt.conf.d/50unattended-upgrades": (
        'Unattended-Upgrade::Origins-Pattern { "origin=Debian,codename=${distro_codename}"; };\n'
    ),
    "/etc/systemd/system/lappguard.service": "[Service]\n",
}
LINKS = {
    "/etc/systemd/system/multi-user.target.wants/lappguard.service": (
        "/etc/systemd/system/lappguard.service"
    )
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[bool, str]:
    root = make_tree(tmp_path_factory.mktemp("golden"), TREE, links=LINKS)
    overrides = {"office_networks": "10.0.0.0/8,192.168.10.0/24,2001:db8:a::/48"}
    origins = {"office_networks": Origin()}
    policies = load_policies([GOLDEN / "policy.yaml"], overrides, origins)
    report = audit_host(policies, LocalHost(root=str(root)), clock=lambda: WHEN)
    report = replace(
        report,
        host="web01",
        duration_s=0.05,
        results=tuple(replace(r, duration_ms=1.0) for r in report.results),
    )
    provenance = describe_run(policies, root="/srv/images/web01", origins=origins, generated=WHEN)
    provenance = replace(provenance, tool_version="0.1.0")  # the golden file outlives releases
    render = RENDERERS["text"]
    return {
        colour: render([report], fail_on=Severity.MEDIUM, colour=colour, provenance=provenance)
        for colour in (False, True)
    }


@pytest.mark.parametrize("colour", [False, True], ids=["plain", "colour"])
def test_text_report_matches_the_golden_file(rendered, colour):
    golden = GOLDEN / ("audit-colour.txt" if colour else "audit.txt")
    if os.environ.get("LAPPGUARD_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered[colour], encoding="utf-8")
    assert rendered[colour] == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("colour", [False, True], ids=["plain", "colour"])
def test_every_line_fits_100_columns(rendered, colour):
    for line in rendered[colour].splitlines():
        assert len(SGR.sub("", line)) <= 100, line


def test_colour_marks_severities_apart(rendered):
    text = rendered[True]
    high = re.search(r"\x1b\[31mHIGH    \x1b\[0m", text)
    low = re.search(r"\x1b\[36mLOW     \x1b\[0m", text)
    assert high and low  # low findings are not painted in high's red
    below = next(line for line in text.splitlines() if "LAPP-WEB-002  Apache" in line)
    assert below.startswith("  \x1b[2mFAIL ")  # a finding that does not block is dimmed


def test_titles_show_values_and_fixes_name_the_file_read_first(rendered):
    text = rendered[False]
    assert "SSH allows at most 4 authentication attempts per connection" in text
    variables = "max_auth_tries|tls_min_version|cert_expiry_days|backup_max_age"
    assert not re.search(rf"\$\{{({variables})\}}", text)  # apt's ${distro_codename} stays
    assert "max_auth_tries authentication" not in text
    flat = " ".join(text.split())
    fix = 'Change /etc/ssh/sshd_config.d/10-cloud.conf:2 ("MaxAuthTries 10") to "MaxAuthTries 4"'
    assert fix in flat
    assert "match /" not in flat  # expectations are said in words, not as regexes
