"""A real `lappguard run` started by a test, as systemd would start it.

The test owns the notify socket (``$NOTIFY_SOCKET``, a datagram socket in its temp dir)
and reads what the agent tells systemd; it scrapes the agent's metrics over HTTP and sends
it real signals. With ``namespace`` the agent runs inside that network namespace (its
loopback, its firewall), and scrapes are made from inside it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from conftest import free_port, lappguard_command
from namespaces import entered
from prometheus_client.parser import text_string_to_metric_families


class AgentProcess:
    def __init__(self, directory: Path, config: str, namespace: str | None = None) -> None:
        self.directory = directory
        self.namespace = namespace
        self.port = free_port()
        self.config = directory / "agent.yaml"
        self.config.write_text(config.replace("PORT", str(self.port)))
        self.notify_path = directory / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.messages: list[dict[str, str]] = []
        self.process: subprocess.Popen | None = None
        self.log = directory / "agent.log"

    def start(self, watchdog_usec: int = 2_000_000) -> None:
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path),
               "WATCHDOG_USEC": str(watchdog_usec)}  # fmt: skip
        argv = [lappguard_command(), "run", "--config", str(self.config)]
        if self.namespace:
            argv = ["ip", "netns", "exec", self.namespace, *argv]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=log)

    def receive(self, wanted: Callable[[dict[str, str]], bool], timeout: float = 60.0) -> dict:
        """The first notify message (``KEY=VALUE`` lines as a dict) that ``wanted`` accepts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"agent exited ({self.process.returncode}):\n{self.logs()}")
            self.notify.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
            try:
                data = self.notify.recv(65536)
            except TimeoutError:
                continue
            message = _message(data)
            self.messages.append(message)
            if wanted(message):
                return message
        raise AssertionError(f"no such notify message within {timeout} s:\n{self.logs()}")

    def ready(self, timeout: float = 60.0) -> dict:
        return self.receive(lambda m: m.get("READY") == "1", timeout)

    @contextmanager
    def notifications_read(self) -> Iterator[None]:
        """Read what the agent tells systemd in a thread for the block, as systemd does: an
        unread datagram socket fills after a few messages (net.unix.max_dgram_qlen) and the
        agent's next notify then blocks its main thread. For long stretches without
        :meth:`receive`, which must not be called meanwhile."""
        done = threading.Event()

        def drain() -> None:
            self.notify.settimeout(0.2)  # to notice the end of the block
            while not done.is_set():
                try:
                    self.messages.append(_message(self.notify.recv(65536)))
                except TimeoutError:
                    continue

        thread = threading.Thread(target=drain, name="notify reader", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample the agent exposes: (name, sorted labels) -> value."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with entered(self.namespace) if self.namespace else nullcontext():
            body = urllib.request.urlopen(url, timeout=10).read().decode()
        samples = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        return sum(
            value
            for (sample, sample_labels), value in self.scrape().items()
            if sample == name and set(labels.items()) <= set(sample_labels)
        )

    def memory(self) -> dict[str, int]:
        """The agent's resident memory now and at its peak: :func:`process_memory`."""
        assert self.process is not None
        return process_memory(self.process.pid)

    def send(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self.notify.close()


def process_memory(pid: int) -> dict[str, int]:
    """Resident memory now (``VmRSS``) and at its peak (``VmHWM``), bytes, from
    /proc/PID/status: the kernel's account, whatever the process thinks it holds."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024  # the kernel prints kB
    return found


def _message(data: bytes) -> dict[str, str]:
    """A notify datagram's ``KEY=VALUE`` lines as a dict."""
    return dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
