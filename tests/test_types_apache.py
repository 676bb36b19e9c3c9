"""Apache check types against real trees: Debian's stock configuration fails exactly the
controls it violates, the hardened one passes them all, the insecure example fails its
annotated ones; plus the edge cases of each type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apache_tree import HARDENED, OURS, debian_stock, hardened
from treeutil import context, make_tree

from checks.params import validate_params
from checks.result import Status, Verdict
from checks.types.apache import (
    ApacheDirective,
    ApacheForbidden,
    ApacheHttpsRedirect,
    ApacheModules,
    ApacheTlsProtocols,
)
from checks.types.base import CheckContext, CheckType

ETC = "/etc/apache2"
TLS12 = {"tls_min_version": "1.2"}
#: The Apache checks of the baseline policy (/tmp/snippets/B.yaml), by ID.
BASELINE: dict[str, tuple[type[CheckType], dict[str, Any]]] = {
    "LAPP-TLS-001": (ApacheTlsProtocols, {}),
    "LAPP-WEB-001": (ApacheHttpsRedirect, {}),
    "LAPP-WEB-002": (
        ApacheDirective,
        {
            "directive": "ServerTokens",
            "scope": "server",
            "default": "Full",
            "expect": {"one_of": ["Prod", "ProductOnly"]},
        },
    ),
    "LAPP-WEB-003": (
        ApacheDirective,
        {"directive": "ServerSignature", "default": "Off", "expect": {"equals": "Off"}},
    ),
    "LAPP-WEB-004": (
        ApacheDirective,
        {"directive": "TraceEnable", "default": "On", "expect": {"equals": "Off"}},
    ),
    "LAPP-WEB-005": (ApacheModules, {"absent": ["cgi_module", "cgid_module"]}),
    "LAPP-WEB-006": (ApacheForbidden, {"directives": ["Options"], "enables": "ExecCGI"}),
    "LAPP-WEB-007": (ApacheForbidden, {"directives": ["ScriptAlias", "ScriptAliasMatch"]}),
    "LAPP-WEB-008": (
        ApacheForbidden,
        {"directives": ["Dav"], "except_values": ["Off"], "allowed_in_ssl_vhosts": True},
    ),
}


def build(cls: type[CheckType], raw: dict[str, Any]) -> CheckType:
    """Parameters go through the same validation a policy file gets."""
    values, problems = validate_params(cls.schema, raw, "test.yaml", "params", 1)
    assert problems == []
    return cls(values)


def check(root: Path, cls: type[CheckType], raw: dict[str, Any], variables=TLS12) -> Verdict:
    return build(cls, raw).run(context(root, variables))


def baseline(root: Path, variables=TLS12) -> dict[str, Verdict]:
    ctx: CheckContext = context(root, variables)  # one audit: one memoised parse
    return {cid: build(cls, raw).run(ctx) for cid, (cls, raw) in BASELINE.items()}


def failing(verdicts: dict[str, Verdict]) -> set[str]:
    assert {v.status for v in verdicts.values()} <= {Status.PASS, Status.FAIL}, verdicts
    return {cid for cid, v in verdicts.items() if v.status is Status.FAIL}


def test_debian_stock_fails_exactly_what_it_violates(tmp_path: Path) -> None:
    debian_stock(tmp_path)
    verdicts = baseline(tmp_path)
    assert failing(verdicts) == {"LAPP-TLS-001", "LAPP-WEB-001", "LAPP-WEB-002", "LAPP-WEB-003"}
    ssl_site = f"<VirtualHost *:443> ({ETC}/sites-enabled/default-ssl.conf:1)"
    plain_site = f"<VirtualHost *:80> ({ETC}/sites-enabled/000-default.conf:1)"
    assert verdicts["LAPP-TLS-001"].evidence == (
        f"{ssl_site}: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 from 'SSLProtocol all -SSLv3' at"
        f" {ETC}/mods-enabled/ssl.conf:71; older than TLSv1.2: TLSv1, TLSv1.1",
    )
    assert verdicts["LAPP-WEB-001"].evidence == (
        f"{plain_site}: serves plain HTTP without an https:// redirect",
    )
    assert verdicts["LAPP-WEB-002"].evidence == (
        "server level: ServerTokens is 'OS', expected one of Prod, ProductOnly"
        f" at {ETC}/conf-enabled/security.conf:12",
    )
    signature = f"ServerSignature is 'On', expected 'Off' at {ETC}/conf-enabled/security.conf:23"
    assert verdicts["LAPP-WEB-003"].evidence == (
        f"server level: {signature}",
        f"{plain_site}: {signature} (inherited from the server level)",
        f"{ssl_site}: {signature} (inherited from the server level)",
    )
    assert verdicts["LAPP-WEB-004"].evidence == (
        f"server level: TraceEnable 'Off' at {ETC}/conf-enabled/security.conf:32",
        f"{plain_site}: TraceEnable 'Off' at {ETC}/conf-enabled/security.conf:32"
        " (inherited from the server level)",
        f"{ssl_site}: TraceEnable 'Off' at {ETC}/conf-enabled/security.conf:32"
        " (inherited from the server level)",
    )


def test_debian_stock_with_cgi_module_also_fails_cgi_controls(tmp_path: Path) -> None:
    tree = debian_stock(tmp_path)
    tree.enable_module("cgid")
    verdicts = baseline(tmp_path)
    assert failing(verdicts) == {
        "LAPP-TLS-001",
        "LAPP-WEB-001",
        "LAPP-WEB-002",
        "LAPP-WEB-003",
        "LAPP-WEB-005",
        "LAPP-WEB-006",
        "LAPP-WEB-007",
    }
    assert verdicts["LAPP-WEB-005"].evidence == (
        "loaded modules from the LoadModule lines read (apache2ctl -M not available:"
        " apache2ctl: commands do not run under --root)",
        f"cgid_module is loaded (LoadModule at {ETC}/mods-enabled/cgid.load:1)",
    )
    assert verdicts["LAPP-WEB-006"].evidence[1:] == (
        f"{ETC}/conf-enabled/serve-cgi-bin.conf:14: Options +ExecCGI -MultiViews"
        " +SymLinksIfOwnerMatch in <Directory /usr/lib/cgi-bin>",
    )
    assert verdicts["LAPP-WEB-007"].evidence == (
        "looked for ScriptAlias, ScriptAliasMatch in 35 files",
        f"{ETC}/conf-enabled/serve-cgi-bin.conf:11: ScriptAlias /cgi-bin/ /usr/lib/cgi-bin/",
    )


def test_hardened_tree_passes_everything(tmp_path: Path) -> None:
    hardened(tmp_path)
    verdicts = baseline(tmp_path)
    assert failing(verdicts) == set()
    assert verdicts["LAPP-TLS-001"].evidence == (
        f"<VirtualHost *:443> ({ETC}/sites-enabled/default-ssl.conf:1): TLSv1.2, TLSv1.3 from"
        f" 'SSLProtocol -all +TLSv1.2 +TLSv1.3' at {ETC}/mods-enabled/ssl.conf:8",
    )
    assert verdicts["LAPP-WEB-001"].evidence == (
        f"<VirtualHost *:80> www.example.org ({ETC}/sites-enabled/000-default.conf:2):"
        f" {ETC}/sites-enabled/000-default.conf:7: Redirect permanent /"
        " https://www.example.org/ in <VirtualHost *:80>",
    )


def test_insecure_example_fails_its_annotated_controls(tmp_path: Path) -> None:
    tree = hardened(tmp_path)
    tree.put("conf-available/zz-insecure.conf", HARDENED / "insecure_example.conf")
    tree.enable_conf("zz-insecure")
    verdicts = baseline(tmp_path)
    assert failing(verdicts) == {
        "LAPP-TLS-001",
        "LAPP-WEB-002",
        "LAPP-WEB-003",
        "LAPP-WEB-004",
        "LAPP-WEB-005",
        "LAPP-WEB-006",
    }
    insecure = f"{ETC}/conf-enabled/zz-insecure.conf"
    weak = (
        "SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 from 'SSLProtocol all' at"
        f" {insecure}:14; older than TLSv1.2: SSLv3, TLSv1, TLSv1.1"
    )
    assert verdicts["LAPP-TLS-001"].evidence == (
        f"<VirtualHost *:443> ({insecure}:19): {weak}",
        f"<VirtualHost *:443> ({ETC}/sites-enabled/default-ssl.conf:1): {weak}",
    )
    assert verdicts["LAPP-WEB-005"].evidence[1:] == (
        f"cgi_module is loaded (LoadModule at {insecure}:6)",
    )
    assert verdicts["LAPP-WEB-006"].evidence[1:] == (
        f"{insecure}:9: Options Indexes FollowSymLinks Includes ExecCGI in <Directory /var/www/>",
    )
    # Its other annotated lines are caught by the same types with other parameters.
    ctx = context(tmp_path, TLS12)
    extra = {
        "indexes": (ApacheForbidden, {"directives": ["Options"], "enables": "Indexes"}),
        "include": (ApacheModules, {"absent": ["mod_include.c"]}),
        "compression": (
            ApacheDirective,
            {"directive": "SSLCompression", "default": "Off", "expect": {"equals": "Off"}},
        ),
        "order": (
            ApacheDirective,
            {"directive": "SSLHonorCipherOrder", "scope": "server", "expect": {"equals": "On"}},
        ),
    }
    results = {name: build(cls, raw).run(ctx) for name, (cls, raw) in extra.items()}
    assert {n: r.status for n, r in results.items()} == dict.fromkeys(extra, Status.FAIL)
    assert results["indexes"].evidence[1:] == (
        f"{ETC}/apache2.conf:171: Options Indexes FollowSymLinks in <Directory /var/www/>",
        f"{insecure}:9: Options Indexes FollowSymLinks Includes ExecCGI in <Directory /var/www/>",
    )
    assert results["order"].evidence == (
        f"server level: SSLHonorCipherOrder is 'Off', expected 'On' at {insecure}:16",
    )


def test_tls_minimum_is_a_parameter(tmp_path: Path) -> None:
    debian_stock(tmp_path)
    assert check(tmp_path, ApacheTlsProtocols, {"min_version": "1.0"}, {}).status is Status.PASS
    assert check(tmp_path, ApacheTlsProtocols, {"min_version": "1.1"}, {}).status is Status.FAIL
    assert check(tmp_path, ApacheTlsProtocols, {}, {}).status is Status.FAIL  # default 1.2


def test_tls_1_3_minimum_fails_the_hardened_tree(tmp_path: Path) -> None:
    hardened(tmp_path)
    verdict = check(tmp_path, ApacheTlsProtocols, {"min_version": "1.3"})
    assert verdict.status is Status.FAIL
    assert verdict.evidence[0].endswith("; older than TLSv1.3: TLSv1.2")


def test_tls_vhost_override_and_illegal_token(tmp_path: Path) -> None:
    tree = hardened(tmp_path)
    tree.put(
        "sites-available/legacy.conf",
        "<VirtualHost *:8443>\n  SSLEngine on\n  SSLProtocol all -SSLv3\n</VirtualHost>\n"
        "<VirtualHost *:9443>\n  SSLEngine on\n  SSLProtocol +TLSv1.2 +TLS9\n</VirtualHost>\n",
    )
    tree.enable_site("legacy")
    verdict = check(tmp_path, ApacheTlsProtocols, {})
    site = f"{ETC}/sites-enabled/legacy.conf"
    assert verdict.status is Status.FAIL
    assert verdict.evidence == (
        f"<VirtualHost *:8443> ({site}:1): TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 from"
        f" 'SSLProtocol all -SSLv3' at {site}:3; older than TLSv1.2: TLSv1, TLSv1.1",
        f"<VirtualHost *:9443> ({site}:5): SSLProtocol: illegal protocol '+TLS9'",
    )


def test_no_ssl_site_passes_tls_with_a_note(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{ETC}/apache2.conf": "Listen 80\n<VirtualHost *:80>\n</VirtualHost>\n"})
    verdict = check(tmp_path, ApacheTlsProtocols, {})
    assert (verdict.status, verdict.evidence) == (
        Status.PASS,
        ("no SSL site in the configuration",),
    )


REDIRECT_CASES = [
    ("Redirect / https://example.org/", Status.PASS),
    ("Redirect permanent / https://example.org/", Status.PASS),
    ("Redirect 301 / HTTPS://example.org/", Status.PASS),
    ("RedirectPermanent / https://example.org/", Status.PASS),
    ("RedirectMatch ^/(.*)$ https://example.org/$1", Status.PASS),
    ("RedirectMatch permanent (.*) https://example.org$1", Status.PASS),
    ("RewriteEngine On\n  RewriteRule ^(.*)$ https://%{HTTP_HOST}$1 [R=301,L]", Status.PASS),
    ("<Location />\n    Redirect permanent https://example.org/\n  </Location>", Status.PASS),
    ("RewriteRule ^(.*)$ https://%{HTTP_HOST}$1 [R=301,L]", Status.FAIL),  # engine off
    ("RewriteEngine on\n  RewriteRule ^/admin https://example.org/admin [R]", Status.FAIL),
    ("Redirect /admin https://example.org/admin", Status.FAIL),
    ("RedirectMatch ^/login$ https://example.org/login", Status.FAIL),
    ("Redirect / http://example.org/", Status.FAIL),
    ("Redirect gone /", Status.FAIL),
    ("<Location /app>\n    Redirect https://example.org/app\n  </Location>", Status.FAIL),
    ("<Directory /var/www>\n    Redirect / https://example.org/\n  </Directory>", Status.FAIL),
    # httpd refuses these patterns, or Python's re could run them for minutes: undecided
    ("RedirectMatch ([ https://example.org/", Status.ERROR),
    ("RedirectMatch a{4294967296} https://example.org/", Status.ERROR),
    ('RedirectMatch "^/$|^((.|.)*)*X" https://example.org/', Status.ERROR),
    ("RedirectMatch (.|.)* https://example.org/\n  Redirect / https://example.org/", Status.PASS),
]


@pytest.mark.parametrize(("lines", "expected"), REDIRECT_CASES)
def test_https_redirect_forms(tmp_path: Path, lines: str, expected: Status) -> None:
    make_tree(
        tmp_path,
        {f"{ETC}/apache2.conf": f"Listen 80\n<VirtualHost *:80>\n  {lines}\n</VirtualHost>\n"},
    )
    assert check(tmp_path, ApacheHttpsRedirect, {}).status is expected


def test_https_redirect_inheritance_and_main_server(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            f"{ETC}/apache2.conf": (
                "Listen 80\nListen 8080\n"
                "Redirect permanent / https://example.org/\n"  # inherited by *:80
                "<VirtualHost *:80>\n</VirtualHost>\n"
            )
        },
    )
    verdict = check(tmp_path, ApacheHttpsRedirect, {})
    # mod_alias redirects reach vhosts, and the main server answering 8080 has it itself.
    assert verdict.status is Status.PASS
    make_tree(
        tmp_path,
        {
            f"{ETC}/apache2.conf": "Listen 80\nListen 8080\n<VirtualHost *:80>\n"
            "  Redirect / https://example.org/\n</VirtualHost>\n"
        },
    )
    verdict = check(tmp_path, ApacheHttpsRedirect, {})
    assert verdict.evidence == (
        f"main server (Listen 8080 at {ETC}/apache2.conf:2): serves plain HTTP without an"
        " https:// redirect",
    )


def test_webdav_only_in_ssl_vhosts(tmp_path: Path) -> None:
    tree = hardened(tmp_path)
    tree.put("sites-available/webdav.conf", OURS / "webdav.conf")
    tree.enable_module("dav", "dav_fs")
    tree.enable_site("webdav")
    verdict = check(tmp_path, *BASELINE["LAPP-WEB-008"])
    site = f"{ETC}/sites-enabled/webdav.conf"
    assert verdict.status is Status.FAIL
    assert verdict.evidence[1:] == (
        f"{site}:17: Dav filesystem in <VirtualHost *:80> in <Directory /srv/dav>",
    )
    tree.put("sites-available/webdav.conf", (OURS / "webdav.conf").read_text().split("\n\n")[0])
    verdict = check(tmp_path, *BASELINE["LAPP-WEB-008"])
    assert verdict.status is Status.PASS
    assert verdict.evidence[1:] == (
        f"allowed in an SSL virtual host: {site}:8: Dav On in <VirtualHost *:443>"
        " in <Location /files>",
    )


def test_dav_at_server_level_is_outside_ssl(tmp_path: Path) -> None:
    config = "SSLEngine on\n<Location /dav>\n  Dav On\n</Location>\n"
    make_tree(tmp_path, {f"{ETC}/apache2.conf": config})
    verdict = check(tmp_path, *BASELINE["LAPP-WEB-008"])
    assert verdict.evidence[1:] == (f"{ETC}/apache2.conf:3: Dav On in <Location /dav>",)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("Options ExecCGI", Status.FAIL),
        ("Options +ExecCGI", Status.FAIL),
        ("Options All", Status.FAIL),
        ("Options +Indexes +execcgi", Status.FAIL),
        ("Options -ExecCGI", Status.PASS),
        ("Options None", Status.PASS),
        ("Options Indexes MultiViews", Status.PASS),
    ],
)
def test_execcgi_forms(tmp_path: Path, options: str, expected: Status) -> None:
    make_tree(tmp_path, {f"{ETC}/apache2.conf": f"<Directory /srv>\n  {options}\n</Directory>\n"})
    assert check(tmp_path, *BASELINE["LAPP-WEB-006"]).status is expected


def test_directive_scope_and_default(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            f"{ETC}/apache2.conf": (
                "<VirtualHost *:80>\n  ServerSignature EMail\n</VirtualHost>\n"
                "<VirtualHost *:81>\n</VirtualHost>\n"
            )
        },
    )
    raw = {"directive": "ServerSignature", "expect": {"equals": "Off"}}
    no_default = check(tmp_path, ApacheDirective, {**raw, "scope": "server"})
    assert no_default.evidence == ("server level: ServerSignature not set (expected equals=Off)",)
    with_default = check(tmp_path, ApacheDirective, {**raw, "default": "Off", "scope": "vhosts"})
    assert with_default.status is Status.FAIL
    assert with_default.evidence == (
        f"<VirtualHost *:80> ({ETC}/apache2.conf:1): ServerSignature is 'EMail', expected 'Off'"
        f" at {ETC}/apache2.conf:2",
    )
    server_only = check(tmp_path, ApacheDirective, {**raw, "default": "Off", "scope": "server"})
    assert server_only.evidence == (
        "server level: ServerSignature 'Off' (not set: httpd's default)",
    )


def test_modules_present(tmp_path: Path) -> None:
    debian_stock(tmp_path)
    verdict = check(tmp_path, ApacheModules, {"present": ["mod_ssl.c", "rewrite"]})
    assert verdict.status is Status.FAIL
    assert verdict.evidence[1:] == ("rewrite_module is not loaded",)
    assert check(tmp_path, ApacheModules, {"present": ["ssl"]}).status is Status.PASS


def test_config_problems_never_give_a_silent_pass(tmp_path: Path) -> None:
    tree = debian_stock(tmp_path)
    tree.put(
        "sites-available/broken.conf",
        "<VirtualHost *:8080>\n  Include /etc/apache2/nope.conf\n</VirtualHost>\n",
    )
    tree.enable_site("broken")
    verdicts = baseline(tmp_path)
    problem = (
        f"configuration problem: {ETC}/sites-enabled/broken.conf:2:"
        f" Include: {ETC}/nope.conf does not exist"
    )
    assert verdicts["LAPP-WEB-004"].status is Status.ERROR
    assert verdicts["LAPP-WEB-004"].reason == problem
    # A violation found is still a violation: the check fails and names the problem too.
    assert verdicts["LAPP-WEB-002"].status is Status.FAIL
    assert verdicts["LAPP-WEB-002"].evidence[-1] == problem
    assert {cid for cid, v in verdicts.items() if v.status is Status.ERROR} == {
        "LAPP-WEB-004",
        "LAPP-WEB-005",
        "LAPP-WEB-006",
        "LAPP-WEB-007",
        "LAPP-WEB-008",
    }


def test_missing_configuration_is_an_error(tmp_path: Path) -> None:
    verdicts = baseline(tmp_path)
    assert {v.status for v in verdicts.values()} == {Status.ERROR}
    assert verdicts["LAPP-WEB-001"].reason == (
        "cannot read /etc/apache2/apache2.conf: /etc/apache2/apache2.conf:"
        " No such file or directory"
    )
