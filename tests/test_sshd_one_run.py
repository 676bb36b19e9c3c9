"""One ``sshd -T`` per audit when sshd_config has no Match block: the ``-C`` client only
selects Match blocks, so without any, every client's answer is the same and the baseline's
sshd checks share one run (announced once in the batch, asked once). The real sshd is the
oracle: its answers for every client the checks ask about are identical, and the verdicts
equal those of the same configuration with one run per client."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
from conftest import FIXTURES
from namespaces import PRIVATE_RUN, NamespacedHost, entered
from remote_hosts import Lan, lan_of_one
from test_types_config import OFFICE, context_for, sshd_tree

from checks.engine import audit_host, planned_commands, run_check
from checks.hosts import DEFAULT_COMMAND_TIMEOUT, CachedHost, CommandResult
from checks.parsers.sshd import parse_sshd_config
from checks.policy import Check, Policy, load_policy
from checks.result import Result
from checks.ssh_host import SSHHost
from checks.types.base import CheckContext
from policies import builtin_policy

DEFAULT_CLIENT = "user=lappguard-audit,host=audit.invalid,addr=192.0.2.10"
ROOT_CLIENT = "user=root,host=audit.invalid,addr=192.0.2.10"
#: The first outside client LAPP-SSH's network restriction asks about (OFFICE leaves it out).
PROBE_CLIENT = "user=lappguard-audit,host=192.0.2.10,addr=192.0.2.10"

HARDENED = "\n".join(
    line
    for line in (FIXTURES / "sshd/hardened_devsec_defaults_handrendered.sshd_config")
    .read_text()
    .splitlines()
    if not line.startswith("HostKey")
)
#: Root and passwords allowed: failures judged for root and for the default client.
WEAK = "PermitRootLogin yes\nPasswordAuthentication yes\nX11Forwarding yes\n"
#: No usable method: every client is refused, so the network restriction asks about each
#: outside client (the refusal path).
NO_WAY_IN = "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication no\n"


class RecordingHost(NamespacedHost):
    """The live host (sshd -T in a private /run) that remembers the ``sshd -T`` it ran."""

    def __init__(self) -> None:
        super().__init__(PRIVATE_RUN)
        self.sshd_t: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str], timeout: float = DEFAULT_COMMAND_TIMEOUT) -> CommandResult:
        if tuple(argv[:2]) == ("sshd", "-T"):
            self.sshd_t.append(tuple(argv))
        return super().run(argv, timeout)


@cache
def baseline() -> Policy:
    return load_policy(builtin_policy("lapp-baseline"), {"office_networks": OFFICE})


def baseline_sshd_checks(config: Path | str) -> list[Check]:
    """The baseline's checks that read sshd's configuration, pointed at ``config``."""
    checks = []
    for check in baseline().checks:
        params = check.implementation.params
        if check.type_name.startswith("sshd") and "config" in params:
            implementation = type(check.implementation)({**params, "config": str(config)})
            checks.append(replace(check, implementation=implementation))
    assert len(checks) > 40
    return checks


def audit_context(host: NamespacedHost) -> CheckContext:
    return context_for(host, dict(baseline().values))


def announced_clients(checks: list[Check], ctx: CheckContext, config: Path | str) -> list[str]:
    """The ``-C`` argument of every ``sshd -T`` of ``config`` the checks announce."""
    jobs = [(check, ctx) for check in checks]
    return [
        c.argv[-1]
        for c in planned_commands(jobs)
        if c.argv[:4] == ("sshd", "-T", "-f", str(config))
    ]


def audited(config: Path) -> tuple[list[str], list[Result], RecordingHost]:
    """The baseline's sshd checks on ``config``: the clients announced, the results, and
    the host (which says which sshd -T ran)."""
    host = RecordingHost()
    ctx = audit_context(host)
    checks = baseline_sshd_checks(config)
    announced = announced_clients(checks, ctx, config)
    return announced, [run_check(check, ctx) for check in checks], host


def shared_note(config: Path | str) -> str:
    return (
        f"sshd -T was asked about the client {DEFAULT_CLIENT}: {config} and its includes "
        "have no Match block, so its answer holds for every client"
    )


def without_shared_note(result: Result, config: Path) -> tuple:
    """A result as it reads with one sshd -T per client: the sharing note taken out."""
    note = f"note: {shared_note(config)}"
    evidence = tuple(e.replace(f" ({note})", "") for e in result.evidence if e != note)
    return result.check_id, result.status, evidence, result.reason, result.remediation


@pytest.mark.parametrize("text", [HARDENED, WEAK, NO_WAY_IN], ids=["hardened", "weak", "no-way-in"])
def test_without_match_one_sshd_t_serves_every_check_and_the_verdicts_stand(tmp_path, text):
    config = sshd_tree(tmp_path, text)
    announced, results, host = audited(config)
    assert announced == [DEFAULT_CLIENT]
    assert parse_sshd_config(CachedHost(RecordingHost()), str(config)).same_for_every_client
    assert [argv[-1] for argv in host.sshd_t] == [DEFAULT_CLIENT]  # asked once, for everyone

    with config.open("a") as file:  # a Match block that sets nothing: one run per client
        file.write("\nMatch all\n")
    oracle_announced, oracle, oracle_host = audited(config)
    assert sorted(oracle_announced) == sorted({ROOT_CLIENT, PROBE_CLIENT, DEFAULT_CLIENT})
    assert len(oracle_host.sshd_t) >= 3  # each client its own real sshd -T
    assert not any("sshd -T not used" in e for r in results + oracle for e in r.evidence)
    assert [without_shared_note(r, config) for r in results] == [
        without_shared_note(r, config) for r in oracle
    ]


def test_without_match_the_real_sshd_answers_every_client_alike(tmp_path):
    config = sshd_tree(tmp_path, WEAK)
    host = NamespacedHost(PRIVATE_RUN)
    clients = {
        DEFAULT_CLIENT,
        ROOT_CLIENT,
        PROBE_CLIENT,
        "user=deploy,host=x.example,addr=10.1.2.3",
    }
    answers = {host.run(["sshd", "-T", "-f", str(config), "-C", c]).stdout for c in clients}
    assert len(answers) == 1
    assert "permitrootlogin yes\n" in answers.pop()


def included_match(tmp_path: Path) -> Path:
    """A config whose Match block sits in a file it includes."""
    dropin = tmp_path / "sshd_config.d" / "50-backup.conf"
    dropin.parent.mkdir()
    dropin.write_text("Match User backup\n    PasswordAuthentication yes\n")
    return sshd_tree(tmp_path, f"Include {dropin.parent}/*.conf\n{WEAK}")


BACKUP_CLIENT = "user=backup,host=audit.invalid,addr=192.0.2.10"


@pytest.mark.parametrize(
    ("config_for", "contexts"),
    [
        (lambda tmp: sshd_tree(tmp, WEAK + "Match User backup\n    X11Forwarding no\n"),
         {BACKUP_CLIENT}),
        (included_match, {BACKUP_CLIENT}),
        (lambda tmp: sshd_tree(tmp, WEAK + "Match User nobody-here\n"), set()),
        # a line the parser reports: it might have been a Match, so no sharing
        (lambda tmp: sshd_tree(tmp, "Protocol 2\n" + WEAK), set()),
    ],
    ids=["match", "match-in-include", "empty-match", "reported-line"],
)  # fmt: skip
def test_with_a_match_block_each_client_has_its_own_sshd_t(tmp_path, config_for, contexts):
    config = config_for(tmp_path)
    announced, _, host = audited(config)
    expected = {DEFAULT_CLIENT, ROOT_CLIENT, PROBE_CLIENT, *contexts}
    assert sorted(announced) == sorted(expected)  # once each
    assert {argv[-1] for argv in host.sshd_t} == expected


def test_an_unreadable_config_is_announced_per_client_as_sshd_decides(tmp_path):
    announced = announced_clients(
        baseline_sshd_checks(tmp_path / "missing"),
        audit_context(RecordingHost()),
        tmp_path / "missing",
    )
    assert sorted(announced) == sorted({DEFAULT_CLIENT, ROOT_CLIENT, PROBE_CLIENT})


def test_the_evidence_names_the_client_sshd_was_asked_about(tmp_path):
    config = sshd_tree(tmp_path, NO_WAY_IN + "PermitRootLogin yes\n")
    _, results, _ = audited(config)
    by_id = {r.check_id: r for r in results}
    note = f"note: {shared_note(config)}"
    root_login = by_id["LAPP-SSH-004"]  # judged for root, asked about the default client
    assert root_login.evidence[0].startswith("permitrootlogin yes (sshd -T; set at ")
    assert root_login.evidence[0].endswith(f"[for {ROOT_CLIENT}]")
    assert root_login.evidence[1:] == (note,)
    restriction = by_id["LAPP-SSH-007"]  # its outside clients were not asked about either
    refused = "sshd refuses clients outside the office: 192.0.2.10: no authentication method"
    assert any(e.startswith(refused) and e.endswith(f" ({note})") for e in restriction.evidence)
    # a check about the default client was answered about that client: nothing to say
    assert not any(note in e for e in by_id["LAPP-SSH-001"].evidence)


# --- over SSH: the fleet's batch ------------------------------------------------------------


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[Lan]:
    with lan_of_one(tmp_path_factory.mktemp("onerun"), "onerun") as net:
        yield net


def test_a_remote_audit_runs_sshd_t_once_in_its_batch(network, monkeypatch):
    """The hardened host's sshd_config and drop-ins have no Match block. (Its sshd -T
    fails there, "no hostkeys available": one failed run serves every check alike.)"""
    commands: list[list[str]] = []
    real_command = SSHHost._command

    def command(host, argv, *rest):
        commands.append(list(argv))
        return real_command(host, argv, *rest)

    monkeypatch.setattr(SSHHost, "_command", command)
    with entered(network.auditor), SSHHost.open("onerun", network.options()) as host:
        audit_host([baseline()], host, only=lambda c: c.type_name.startswith("sshd"))
    asked = [
        argv[i + 5]  # sshd -T -f CONFIG -C CLIENT
        for argv in commands
        for i in range(len(argv))
        if argv[i : i + 2] == ["sshd", "-T"]
    ]
    assert asked == [DEFAULT_CLIENT]
    assert [c[:2] for c in commands if "sshd" in c] == [["sh", "-c"]]  # in the batch
