"""php_ini against Debian's real php.ini files (production passes, development fails), conf.d
order, Apache php_admin_* overrides, several PHP versions and broken input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apache_tree import hardened
from conftest import FIXTURES
from line_breaks import SEPARATORS, each_separator
from treeutil import context, make_tree

from checks.params import validate_params
from checks.parsers.phpini import ini_bool
from checks.result import Status, Verdict
from checks.types.php import PhpIni

PHP = FIXTURES / "php"
PRODUCTION = (PHP / "php.ini-production").read_text()
DEVELOPMENT = (PHP / "php.ini-development").read_text()
INI82 = "/etc/php/8.2/apache2/php.ini"
#: The PHP checks of the baseline policy (/tmp/snippets/B.yaml).
BASELINE = {
    "LAPP-PHP-001": {"setting": "expose_php", "default": "1"},
    "LAPP-PHP-002": {"setting": "display_errors", "default": "1"},
    "LAPP-PHP-003": {"setting": "allow_url_include", "default": "0"},
}


def php_ini(root: Path, raw: dict[str, Any]) -> Verdict:
    values, problems = validate_params(PhpIni.schema, raw, "test.yaml", "params", 1)
    assert problems == []
    return PhpIni(values).run(context(root))


def baseline(root: Path) -> dict[str, Verdict]:
    return {cid: php_ini(root, raw) for cid, raw in BASELINE.items()}


def statuses(verdicts: dict[str, Verdict]) -> dict[str, Status]:
    return {cid: v.status for cid, v in verdicts.items()}


def with_php_site(root: Path, site: str) -> None:
    """The hardened Apache tree with Debian's PHP module enabled and one more site."""
    tree = hardened(root)
    tree.put(
        "mods-available/php8.2.load",
        "LoadModule php_module /usr/lib/apache2/modules/libphp8.2.so\n",
    )
    tree.put("sites-available/app.conf", site)
    tree.enable_module("php8.2")
    tree.enable_site("app")


def test_debian_production_ini_passes(tmp_path: Path) -> None:
    make_tree(tmp_path, {INI82: PRODUCTION})
    verdicts = baseline(tmp_path)
    assert set(statuses(verdicts).values()) == {Status.PASS}
    assert verdicts["LAPP-PHP-001"].evidence == (
        "no /etc/apache2/apache2.conf: php.ini values only",
        f"{INI82}:400: expose_php = Off",
    )


def test_debian_development_ini_fails_expose_and_display(tmp_path: Path) -> None:
    make_tree(tmp_path, {INI82: DEVELOPMENT})
    verdicts = baseline(tmp_path)
    assert statuses(verdicts) == {
        "LAPP-PHP-001": Status.FAIL,
        "LAPP-PHP-002": Status.FAIL,
        "LAPP-PHP-003": Status.PASS,
    }
    assert verdicts["LAPP-PHP-001"].evidence[1:] == (
        f"{INI82}:404: expose_php = On: on, expected off",
    )
    assert verdicts["LAPP-PHP-002"].evidence[1:] == (
        f"{INI82}:512: display_errors = On: on, expected off",
    )


def test_conf_d_files_apply_in_lexical_order(tmp_path: Path) -> None:
    conf_d = "/etc/php/8.2/apache2/conf.d"
    make_tree(
        tmp_path,
        {
            INI82: PRODUCTION,
            "/etc/php/8.2/mods-available/debug.ini": "; priority=20\ndisplay_errors = On\n",
        },
        links={f"{conf_d}/20-debug.ini": "/etc/php/8.2/mods-available/debug.ini"},
    )
    verdict = php_ini(tmp_path, BASELINE["LAPP-PHP-002"])
    assert verdict.evidence[1:] == (
        f"{conf_d}/20-debug.ini:2: display_errors = On: on, expected off",
    )
    make_tree(tmp_path, {f"{conf_d}/30-quiet.ini": "[PHP]\ndisplay_errors = 'Off' ; quiet\n"})
    verdict = php_ini(tmp_path, BASELINE["LAPP-PHP-002"])
    assert (verdict.status, verdict.evidence[1:]) == (
        Status.PASS,
        (f"{conf_d}/30-quiet.ini:2: display_errors = Off",),
    )


def test_apache_php_admin_flag_in_a_vhost_fails(tmp_path: Path) -> None:
    make_tree(tmp_path, {INI82: PRODUCTION})
    with_php_site(
        tmp_path,
        "<VirtualHost *:443>\n  SSLEngine on\n  <IfModule mod_php.c>\n"
        "    php_admin_flag display_errors on\n    php_value display_errors Off\n"
        "  </IfModule>\n</VirtualHost>\n",
    )
    verdict = php_ini(tmp_path, BASELINE["LAPP-PHP-002"])
    assert verdict.status is Status.FAIL
    assert verdict.evidence == (
        "/etc/apache2/sites-enabled/app.conf:4: php_admin_flag display_errors on"
        " in <VirtualHost *:443>: on, expected off",
    )


def test_server_wide_apache_override_shadows_php_ini(tmp_path: Path) -> None:
    make_tree(tmp_path, {INI82: DEVELOPMENT})
    with_php_site(tmp_path, "php_admin_flag expose_php off\n")
    verdict = php_ini(tmp_path, BASELINE["LAPP-PHP-001"])
    assert verdict.status is Status.PASS
    assert verdict.evidence == (
        "/etc/php/8.2/apache2: set by /etc/apache2/sites-enabled/app.conf:1"
        f" ({INI82}:404: expose_php = On is overridden)",
        "/etc/apache2/sites-enabled/app.conf:1: php_admin_flag expose_php off",
    )


def test_every_php_version_is_checked(tmp_path: Path) -> None:
    make_tree(tmp_path, {INI82: PRODUCTION, "/etc/php/7.4/apache2/php.ini": DEVELOPMENT})
    verdict = php_ini(tmp_path, BASELINE["LAPP-PHP-001"])
    assert verdict.status is Status.FAIL
    assert verdict.evidence[1:] == (
        "/etc/php/7.4/apache2/php.ini:404: expose_php = On: on, expected off",
    )


def test_unset_settings_use_the_given_default(tmp_path: Path) -> None:
    make_tree(tmp_path, {INI82: "[PHP]\nmemory_limit = 128M\n"})
    verdicts = baseline(tmp_path)
    assert statuses(verdicts) == {
        "LAPP-PHP-001": Status.FAIL,
        "LAPP-PHP-002": Status.FAIL,
        "LAPP-PHP-003": Status.PASS,
    }
    assert verdicts["LAPP-PHP-001"].evidence[1:] == (
        "/etc/php/8.2/apache2: expose_php not set, PHP default '1': on, expected off",
    )
    unknown = php_ini(tmp_path, {"setting": "expose_php"})
    assert unknown.evidence[1:] == (
        "/etc/php/8.2/apache2: expose_php not set: not set and PHP's built-in default is"
        " unknown (give the check a default)",
    )


def test_expect_replaces_boolean_semantics(tmp_path: Path) -> None:
    make_tree(tmp_path, {INI82: PRODUCTION})
    verdict = php_ini(tmp_path, {"setting": "allow_url_fopen", "expect": {"equals": "Off"}})
    assert verdict.evidence[1:] == (f"{INI82}:866: allow_url_fopen = On: is 'On', expected 'Off'",)
    verdict = php_ini(
        tmp_path, {"setting": "session.use_strict_mode", "expect": {"one_of": [1, "On"]}}
    )
    assert verdict.status is Status.FAIL  # production leaves it 0


def test_values_that_are_not_on_or_off_fail(tmp_path: Path) -> None:
    make_tree(tmp_path, {INI82: PRODUCTION})
    with_php_site(
        tmp_path, "<Directory /srv/app>\n  php_admin_value display_errors stderr\n</Directory>\n"
    )
    verdict = php_ini(tmp_path, BASELINE["LAPP-PHP-002"])
    assert verdict.evidence == (
        "/etc/apache2/sites-enabled/app.conf:2: php_admin_value display_errors stderr"
        " in <Directory /srv/app>: 'stderr' is not an on/off value",
    )


def test_host_sections_do_not_apply_to_apache(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            INI82: PRODUCTION,
            "/etc/php/8.2/apache2/conf.d/90-dev.ini": (
                "[HOST=dev.example.org]\ndisplay_errors = On\n"
            ),
        },
    )
    assert php_ini(tmp_path, BASELINE["LAPP-PHP-002"]).status is Status.PASS


def test_broken_ini_is_an_error_not_a_pass(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {INI82: PRODUCTION, "/etc/php/8.2/apache2/conf.d/50-bad.ini": 'error_log = "/var/log\n'},
    )
    verdict = php_ini(tmp_path, BASELINE["LAPP-PHP-003"])
    assert (verdict.status, verdict.reason) == (
        Status.ERROR,
        "configuration problem: /etc/php/8.2/apache2/conf.d/50-bad.ini:1:"
        " unterminated \" quote in value '\"/var/log'",
    )


def test_missing_php_or_unreadable_apache_is_an_error(tmp_path: Path) -> None:
    verdict = php_ini(tmp_path, BASELINE["LAPP-PHP-001"])
    assert (verdict.status, verdict.reason) == (
        Status.ERROR,
        "no PHP configuration for a web server found (/etc/php/*/apache2, /etc/php/*/fpm)",
    )
    make_tree(tmp_path, {INI82: PRODUCTION})
    (tmp_path / "etc" / "apache2" / "apache2.conf").mkdir(parents=True)
    verdict = php_ini(tmp_path, BASELINE["LAPP-PHP-001"])
    assert (verdict.status, verdict.reason) == (
        Status.ERROR,
        "cannot read /etc/apache2/apache2.conf: /etc/apache2/apache2.conf: Is a directory",
    )


def test_ini_bool() -> None:
    assert [ini_bool(v) for v in ("On", "yes", "TRUE", "1", "2")] == [True] * 5
    assert [ini_bool(v) for v in ("Off", "no", "false", "none", "", "0", " 0 ")] == [False] * 7
    assert ini_bool("stderr") is None


@each_separator
def test_a_setting_behind_a_comment_and_a_separator(tmp_path: Path, sep: str) -> None:
    """``; off<FF>display_errors = Off`` is one comment line for PHP: the development
    php.ini's display_errors = On stays. Only a lone CR ends a php.ini line (unlike sshd)."""
    dropin = f"; disabled{sep}display_errors = Off\nexpose_php = Off\n"
    make_tree(tmp_path, {INI82: DEVELOPMENT, "/etc/php/8.2/apache2/conf.d/90-x.ini": dropin})
    verdict = php_ini(tmp_path, BASELINE["LAPP-PHP-002"])
    assert verdict.status is (Status.PASS if sep == SEPARATORS["CR"] else Status.FAIL)
    assert php_ini(tmp_path, BASELINE["LAPP-PHP-001"]).status is Status.PASS
