"""PHP under PHP-FPM: php.ini of the fpm SAPI, pools' php_admin_value/php_value overrides
(and disable_functions adding up), the pools' listeners and users, on Debian's own files."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES
from treeutil import context, make_tree

from checks.policy import load_policy
from checks.result import Status, Verdict
from policies import builtin_policy

HARDENED = FIXTURES / "hardened-root/etc/php/8.2"
FPM = "/etc/php/8.2/fpm"
POOL = f"{FPM}/pool.d/www.conf"
POLICY = {c.id: c for c in load_policy(builtin_policy("lapp-baseline")).checks}


def run(root: Path, cid: str) -> Verdict:
    policy = load_policy(builtin_policy("lapp-baseline"))
    return POLICY[cid].implementation.run(context(root, dict(policy.values)))


def fpm_tree(root: Path, pool_lines: str = "") -> Path:
    """Debian's php8.2-fpm files (hardened php.ini), the www pool with ``pool_lines`` added."""
    pool = (HARDENED / "fpm/pool.d/www.conf").read_text() + pool_lines
    return make_tree(
        root,
        {
            f"{FPM}/php.ini": (HARDENED / "fpm/php.ini").read_text(),
            f"{FPM}/php-fpm.conf": (HARDENED / "fpm/php-fpm.conf").read_text(),
            POOL: pool,
        },
    )


PHP_IDS = [f"LAPP-PHP-{n:03d}" for n in range(1, 13)]


def test_debian_fpm_with_hardened_ini_passes_every_php_check(tmp_path: Path) -> None:
    root = fpm_tree(tmp_path)
    assert {cid: run(root, cid).status for cid in PHP_IDS} == dict.fromkeys(PHP_IDS, Status.PASS)
    assert run(root, "LAPP-PHP-011").evidence == (
        f"{FPM} pool [www]: {POOL}:41: listen = /run/php/php8.2-fpm.sock",
    )


@pytest.mark.parametrize(
    ("lines", "cid", "problem"),
    [
        ("php_admin_flag[display_errors] = on", "LAPP-PHP-002", "on, expected off"),
        ("php_value[session.cookie_secure] = 0", "LAPP-PHP-008", "does not match"),
        ("listen = 0.0.0.0:9000", "LAPP-PHP-011", "listens on address 0.0.0.0"),
        ("listen = 9000", "LAPP-PHP-011", "listens on every address"),
        ("listen.mode = 0666", "LAPP-PHP-011", "other local users may connect"),
        ("user = root", "LAPP-PHP-012", "runs PHP as root"),
    ],
)
def test_a_pool_can_break_a_control(tmp_path: Path, lines: str, cid: str, problem: str) -> None:
    verdict = run(fpm_tree(tmp_path, f"\n{lines}\n"), cid)
    assert verdict.status is Status.FAIL
    assert problem in verdict.evidence[0]
    assert verdict.evidence[0].startswith(f"{FPM} pool [www]: ")


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        ("listen = 127.0.0.1:9000", Status.PASS),
        ("listen = [::1]:9000", Status.PASS),
        ("listen = 0.0.0.0:9000\nlisten.allowed_clients = 127.0.0.1,::1", Status.PASS),
        ("listen = 0.0.0.0:9000\nlisten.allowed_clients = 127.0.0.1,192.0.2.7", Status.FAIL),
    ],
)
def test_listeners(tmp_path: Path, lines: str, status: Status) -> None:
    assert run(fpm_tree(tmp_path, f"\n{lines}\n"), "LAPP-PHP-011").status is status


def test_a_pool_can_fix_what_php_ini_leaves_open(tmp_path: Path) -> None:
    root = fpm_tree(tmp_path, "\nphp_admin_value[disable_functions] = popen\n")
    ini = root / FPM.lstrip("/") / "php.ini"
    ini.write_text(
        ini.read_text().replace(",popen", "").replace("display_errors = Off", "display_errors = On")
    )
    functions = run(root, "LAPP-PHP-006")
    assert functions.status is Status.PASS  # the pool's list adds to php.ini's
    assert "and " + f"{POOL}" in functions.evidence[0]
    make_tree(
        root,
        {
            f"{POOL}": (root / POOL.lstrip("/")).read_text()
            + "php_admin_flag[display_errors] = off\n"
        },
    )
    assert run(root, "LAPP-PHP-002").status is Status.PASS


def test_pool_without_user_or_listen(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            f"{FPM}/php.ini": (HARDENED / "fpm/php.ini").read_text(),
            f"{FPM}/php-fpm.conf": f"[global]\ninclude={FPM}/pool.d/*.conf\n",
            POOL: "[app]\npm = static\n",
        },
    )
    assert run(root, "LAPP-PHP-012").status is Status.FAIL
    assert run(root, "LAPP-PHP-011").status is Status.FAIL
