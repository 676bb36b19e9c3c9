"""Shared test plumbing: where the fixtures are, and honest skips for missing system parts."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
from hypothesis import Phase, settings

TESTS_DIR = Path(__file__).resolve().parent
FIXTURES = TESTS_DIR / "fixtures"
PROJECT_ROOT = TESTS_DIR.parent
#: Evaluation-only data sets are read in place, never copied into the project.
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
IN_CI = os.environ.get("CI") == "true"

#: Property tests run under one of these profiles, named by $LAPPGUARD_HYPOTHESIS_PROFILE
#: (scripts/test sets ``ci`` when CI=true). ``ci`` tries the same examples on every run and
#: reports a failure with the example as found: shrinking a slow input once took ten minutes.
#: ``dev`` explores new examples, keeps failures in .hypothesis/ and shrinks them to a small
#: one. A test's own ``@settings`` keep the rest (its max_examples) and inherit these, since
#: settings objects built at import take unset values from the profile loaded here.
settings.register_profile(
    "ci",
    derandomize=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
    deadline=None,
    print_blob=True,
)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("LAPPGUARD_HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))


def require_root() -> None:
    """Skip (on a laptop) when not root; in CI every test must run, so fail instead."""
    if os.geteuid() != 0:
        _missing("needs root")


def require_program(*names: str) -> str:
    """Return the path of the first program found, or skip naming the Debian package to install."""
    for name in names:
        path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/lib/systemd")
        if path:
            return path
    _missing(f"needs {' or '.join(names)} (apt-get install the package that provides it)")
    return ""


def lappguard_command() -> str:
    """The installed console script, as a sysadmin runs it: next to the interpreter running
    the tests (the venv), else on PATH."""
    import sys

    command = shutil.which("lappguard", path=str(Path(sys.executable).parent))
    return command or require_program("lappguard")


def require_shared_data(relative: str) -> Path:
    """An evaluation-only data set, read in place from ../shared/data."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"evaluation data {path} is absent (it is not redistributed with lappguard)")
    return path


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI must run every test, but this one {reason}")
    pytest.skip(reason)


def drain_terminal(leader: int) -> bytes:
    """What was written to a pseudo-terminal, read from its leader side until the other
    side is closed (EIO then), and the leader closed."""
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return shown


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on host (tests start real servers on loopback)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A property test that sets derandomize or phases itself escapes the profile: refuse it."""
    profile = settings.default
    for item in items:
        own = getattr(getattr(item, "function", None), "_hypothesis_internal_use_settings", None)
        if own is not None and (own.derandomize, own.phases) != (
            profile.derandomize,
            profile.phases,
        ):
            raise pytest.UsageError(
                f"{item.nodeid}: its @settings set derandomize or phases; "
                "leave them to the profile (tests/conftest.py)"
            )
