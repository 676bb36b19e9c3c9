"""dry-run backend: the contract with real packets (which must always get through), and the
file two processes share."""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_root
from contract_firewall import FirewallContract, NamespaceHarness, net

from agent.firewall import open_firewall
from agent.firewall.base import Entry
from agent.firewall.dryrun import FILE_NAME, DryRunFirewall


class DryRunHarness(NamespaceHarness):
    enforces = False

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def open(self) -> DryRunFirewall:
        return self.opened(DryRunFirewall.from_options({}, self.state_dir))

    def lose(self) -> None:
        (self.state_dir / FILE_NAME).unlink()

    def broken(self) -> DryRunFirewall:
        not_a_directory = self.state_dir / "file"
        not_a_directory.write_text("")
        return self.opened(DryRunFirewall.from_options({}, not_a_directory))


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[DryRunHarness]:
    require_root()
    with DryRunHarness(tmp_path) as harness:
        yield harness


class TestDryRunContract(FirewallContract):
    pass


def test_the_file_holds_what_would_be_banned(tmp_path: Path) -> None:
    firewall = open_firewall("dry-run", {}, tmp_path)
    firewall.ban([Entry(net("192.0.2.1/32"), 2e9), Entry(net("2001:db8::/64"), None)], 1e9)
    held = json.loads((tmp_path / FILE_NAME).read_text())
    assert held == {"192.0.2.1/32": 2e9, "2001:db8::/64": None}
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]  # no temporary file left


def test_expired_entries_are_not_listed(tmp_path: Path) -> None:
    firewall = DryRunFirewall.from_options({}, tmp_path)
    firewall.ban([Entry(net("192.0.2.1/32"), time.time() - 1), Entry(net("192.0.2.2/32"))], 0)
    assert firewall.listed() == {net("192.0.2.2/32")}


def test_each_change_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    firewall = DryRunFirewall.from_options({}, tmp_path)
    with caplog.at_level(logging.INFO, logger="agent.firewall.dryrun"):
        firewall.ban([Entry(net(f"192.0.2.{i}/32")) for i in range(12)], 0)
        firewall.unban([net("192.0.2.0/32")])
    assert caplog.messages == [
        "dry-run: would ban " + ", ".join(f"192.0.2.{i}/32" for i in range(10)) + " and 2 more",
        "dry-run: would unban 192.0.2.0/32",
    ]


def _ban_many(state_dir: Path, first: int) -> None:
    firewall = DryRunFirewall.from_options({}, state_dir)
    for i in range(first, first + 50):
        firewall.ban([Entry(net(f"10.0.{i}.1/32"))], 0)


def test_two_processes_lose_no_change(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_ban_many, args=(tmp_path, n)) for n in (0, 100)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(DryRunFirewall.from_options({}, tmp_path).listed()) == 100
