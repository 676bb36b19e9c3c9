"""A real Prometheus server for tests: the Debian package's binary with its own config,
storage and loopback port, optionally inside a network namespace, and a way to ask it."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import free_port, require_program


@contextmanager
def prometheus(tmp_path: Path, config: str, namespace: str | None = None) -> Iterator[str]:
    """The Debian package's Prometheus on a loopback port with its own config and storage
    (inside ``namespace`` when given: its loopback); yields its base URL."""
    binary = require_program("prometheus")
    port = free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "prometheus.yml").write_text(config)
    log = tmp_path / "prometheus.log"
    argv = [
        *(["ip", "netns", "exec", namespace] if namespace else []),
        binary,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        yield f"http://127.0.0.1:{port}"
    except BaseException:
        print(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def query_until(
    base: str, query: str, expected: str, want: dict[str, str] | None = None, attempts: int = 120
) -> dict:
    """Ask Prometheus every half second until ``query`` gives one series of value
    ``expected`` (and the labels in ``want``); fail with the last answer after ``attempts``
    tries."""
    answer: dict = {}
    for _ in range(attempts):
        try:
            url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
            with urllib.request.urlopen(url, timeout=5) as response:
                answer = json.load(response)
            result = answer["data"]["result"]
            if (
                len(result) == 1
                and result[0]["value"][1] == expected
                and (want or {}).items() <= result[0]["metric"].items()
            ):
                return result[0]
        except (OSError, KeyError, ValueError):
            pass  # not up yet
        time.sleep(0.5)
    pytest.fail(f"{query} never became {expected}: {answer}")
