"""``when: {installed: NAME}``: a check applies when its software shows, however it was
installed: the Debian package, the configuration it reads (built from source, another
distribution's packages, a container image without a dpkg database) or its running daemon."""

from __future__ import annotations

import pytest
from servers import psql_as_postgres, run_postgres
from treeutil import dpkg_status, make_tree

from checks.conditions import COMPONENTS, Condition, UndecidableCondition
from checks.engine import audit_host
from checks.hosts import LocalHost, ProcessInfo
from checks.parsers.dpkg import DpkgPackage
from checks.policy import load_policy
from checks.result import Status
from checks.yamlsource import InputError
from policies import builtin_policy

INSTALLED_PG = Condition("installed", "postgresql")
NOT_FOUND = (
    "PostgreSQL not found: postgresql-common not installed, no /etc/postgresql/*/*/"
    "postgresql.conf or /var/lib/postgresql/data/postgresql.conf or "
    "/usr/local/pgsql/data/postgresql.conf or /var/lib/pgsql/data/postgresql.conf or "
    "/var/lib/pgsql/*/data/postgresql.conf or /var/lib/postgres/data/postgresql.conf"
)


def reason(root, condition: Condition = INSTALLED_PG) -> str | None:
    return condition.unmet_reason(LocalHost(root=str(root)), {})


def test_the_debian_package_is_enough(tmp_path):
    make_tree(tmp_path, {"/var/lib/dpkg/status": dpkg_status("postgresql-common")})
    assert reason(tmp_path) is None


@pytest.mark.parametrize(
    "config",
    [
        "/etc/postgresql/16/main/postgresql.conf",  # PGDG packages
        "/var/lib/postgresql/data/postgresql.conf",  # the official container image
        "/usr/local/pgsql/data/postgresql.conf",  # built from source
        "/var/lib/pgsql/16/data/postgresql.conf",  # PGDG RPMs
    ],
)
def test_the_configuration_is_enough_without_a_package(tmp_path, config):
    """No dpkg database at all (a container image): the configuration decides."""
    make_tree(tmp_path, {config: "listen_addresses = '*'\n"})
    assert reason(tmp_path) is None


def test_neither_package_nor_configuration_is_not_applicable(tmp_path):
    make_tree(tmp_path, {"/var/lib/dpkg/status": dpkg_status("apache2")})
    assert reason(tmp_path) == NOT_FOUND
    (tmp_path / "empty").mkdir()
    assert reason(tmp_path / "empty") == NOT_FOUND  # no dpkg database: no packages
    assert reason(tmp_path, Condition("installed", "apache")) is None


def test_an_unreadable_dpkg_database_is_undecided_unless_the_configuration_answers(tmp_path):
    broken = {"/var/lib/dpkg/status": "this is not a dpkg database\n"}
    make_tree(tmp_path / "a", broken)
    with pytest.raises(UndecidableCondition, match="cannot list installed packages"):
        reason(tmp_path / "a")
    make_tree(tmp_path / "b", {**broken, "/etc/postgresql/15/main/postgresql.conf": ""})
    assert reason(tmp_path / "b") is None


class BuiltFromSource(LocalHost):
    """This machine seen as a host whose PostgreSQL was built from source into a directory
    of its own: the dpkg database and the usual configuration paths show none (the real
    packages cannot be removed for a test), the running postmaster is the test's own."""

    def __init__(self, postmaster_pid: int):
        super().__init__()
        self._pid = postmaster_pid

    def dpkg_packages(self) -> list[DpkgPackage]:
        return []

    def glob(self, pattern: str) -> list[str]:
        return [] if pattern in COMPONENTS["postgresql"].files else super().glob(pattern)

    def processes(self) -> list[ProcessInfo]:
        return [p for p in super().processes() if p.pid == self._pid or p.name != "postgres"]


def test_a_running_server_is_enough_on_a_live_host(tmp_path):
    """The checks inside PostgreSQL find it by its postmaster; the file checks look where
    packages and images put configurations (so a live audit and --root agree)."""
    with run_postgres(tmp_path) as pg:
        running = reason_on(BuiltFromSource(pg.pid))
        policy = load_policy(builtin_policy("lapp-baseline"))
        inside_and_files = ("LAPP-PG-020", "LAPP-PG-004")
        report = audit_host([policy], BuiltFromSource(pg.pid),
                            only=lambda c: c.id in inside_and_files)  # fmt: skip
        version = psql_as_postgres(pg, "SHOW server_version").split()[0]
    assert running is None
    files, inside = report.results
    assert (inside.status, inside.evidence) == (
        Status.PASS,
        (
            f"{pg.workdir}/data/postgresql.conf (PostgreSQL {version}): only the bootstrap "
            "superuser has SUPERUSER, CREATEROLE or CREATEDB",
        ),
    )
    assert files.status is Status.SKIP
    stopped = reason_on(BuiltFromSource(-1))
    assert stopped == f"{NOT_FOUND}, no postgres/postmaster process"


def reason_on(host: LocalHost) -> str | None:
    return INSTALLED_PG.unmet_reason(host, {})


def test_an_unknown_component_is_a_located_policy_error(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "id: p\ntitle: P\nchecks:\n"
        "  - id: LAPP-PG-001\n    title: t\n    severity: low\n    type: package\n"
        "    params: {names: [x]}\n    when: {installed: mysql}\n"
    )
    with pytest.raises(InputError) as error:
        load_policy(policy)
    assert [str(p) for p in error.value.problems] == [
        f"{policy}:9: LAPP-PG-001.when.installed: expects one of postgresql, apache, sshd, "
        "apt, unattended-upgrades"
    ]


def test_patching_checks_need_apt(tmp_path):
    """A tree of another distribution: the Debian patching checks do not apply."""
    make_tree(tmp_path, {"/etc/os-release": "ID=alpine\n"})
    policy = load_policy(builtin_policy("lapp-baseline"))
    report = audit_host([policy], LocalHost(str(tmp_path)), only=lambda c: c.area == "PATCH")
    assert {(r.status, r.reason) for r in report.results} == {
        (
            Status.SKIP,
            "APT not found: apt not installed, no /etc/apt/apt.conf.d/* or "
            "/etc/apt/sources.list or /etc/apt/sources.list.d/* or /var/lib/dpkg/status",
        ),
        (
            Status.SKIP,
            "unattended-upgrades not found: unattended-upgrades not installed, no "
            "/usr/bin/unattended-upgrade",
        ),
    }
