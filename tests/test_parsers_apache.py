"""The Apache configuration reader: Debian's real tree, httpd's reading rules, and a live
cross-check of the parsed LoadModule set against ``apache2ctl -M``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from apache_tree import DEBIAN_MODULES, ApacheTree, debian_stock
from conftest import require_program, require_root
from line_breaks import each_separator

from checks.hosts import LocalHost
from checks.parsers.apache import (
    DEBIAN_STATIC_MODULES,
    ApacheConfig,
    ApacheConfigError,
    load_apache_config,
    merge_options,
    module_id,
    protocol_set,
    split_args,
)

ETC = "/etc/apache2"


def parse(root: Path) -> ApacheConfig:
    return load_apache_config(LocalHost(root=str(root)))


def minimal(root: Path, main: str, files: dict[str, str] | None = None) -> ApacheConfig:
    """A tree whose apache2.conf is ``main`` (plus extra files under /etc/apache2)."""
    etc = root / "etc" / "apache2"
    etc.mkdir(parents=True)
    (etc / "apache2.conf").write_text(main)
    for name, text in (files or {}).items():
        (etc / name).parent.mkdir(parents=True, exist_ok=True)
        (etc / name).write_text(text)
    return parse(root)


def problems(config: ApacheConfig) -> list[str]:
    return [str(p) for p in config.problems]


def test_debian_stock_tree(tmp_path: Path) -> None:
    debian_stock(tmp_path)
    config = parse(tmp_path)
    assert problems(config) == []
    expected = {f"{m}_module" for m in (*DEBIAN_MODULES, "socache_shmcb", "ssl")}
    assert {module_id(d.args[0]) for d in config.load_modules} == expected
    assert config.modules == expected | set(DEBIAN_STATIC_MODULES)
    assert config.module_source == (
        "loaded modules from the LoadModule lines read (apache2ctl -M not available: "
        "apache2ctl: commands do not run under --root)"
    )
    assert [(str(v), v.ssl) for v in config.sites()] == [
        ("<VirtualHost *:80> (/etc/apache2/sites-enabled/000-default.conf:1)", False),
        ("<VirtualHost *:443> (/etc/apache2/sites-enabled/default-ssl.conf:1)", True),
    ]
    tokens = config.effective("ServerTokens")
    assert (tokens.value, str(tokens.sources[0].origin)) == (
        "OS",
        f"{ETC}/conf-enabled/security.conf:12",
    )
    # ${APACHE_LOG_DIR} comes from envvars (its $SUFFIX is empty for /etc/apache2).
    vhost = config.vhosts[0]
    assert config.effective("ErrorLog", vhost).value == "/var/log/apache2/error.log"
    # serve-cgi-bin.conf only defines /cgi-bin/ when a CGI module is loaded: none is.
    assert config.anywhere(["ScriptAlias"]) == []
    # <IfModule mod_gnutls.c> in ports.conf is skipped, <IfModule ssl_module> is read.
    assert [d.value for d in config.server_level("Listen")] == ["80", "443"]
    protocols = config.ssl_protocols(config.vhosts[1])
    assert protocols.ordered == ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    assert str(protocols.source.origin) == f"{ETC}/mods-enabled/ssl.conf:71"


def test_cgi_module_turns_on_debian_cgi_bin(tmp_path: Path) -> None:
    tree = debian_stock(tmp_path)
    tree.enable_module("cgid")
    config = parse(tmp_path)
    assert [str(d) for d in config.anywhere(["ScriptAlias", "Options"])] == [
        f"{ETC}/mods-enabled/alias.conf:16: Options FollowSymlinks"
        " in <Directory /usr/share/apache2/icons>",
        f"{ETC}/apache2.conf:160: Options FollowSymLinks in <Directory />",
        f"{ETC}/apache2.conf:171: Options Indexes FollowSymLinks in <Directory /var/www/>",
        f"{ETC}/conf-enabled/serve-cgi-bin.conf:11: ScriptAlias /cgi-bin/ /usr/lib/cgi-bin/",
        f"{ETC}/conf-enabled/serve-cgi-bin.conf:14: Options +ExecCGI -MultiViews"
        " +SymLinksIfOwnerMatch in <Directory /usr/lib/cgi-bin>",
    ]


def test_conditionals(tmp_path: Path) -> None:
    config = minimal(
        tmp_path,
        """
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
<IfModule mod_ssl.c>
  A 1
</IfModule>
<IfModule ssl_module>
  A 2
</IfModule>
<IfModule !mod_ssl.c>
  B no
</IfModule>
<IfModule mod_rewrite.c>
  B no
  <VirtualHost *:80>
    <IfModule mod_ssl.c>
      B no
    </IfModule>
  </VirtualHost>
</IfModule>
<IfModule !rewrite_module>
  A 3
</IfModule>
<IfModule mod_dav.c>
  B no
</IfModule>
LoadModule dav_module /usr/lib/apache2/modules/mod_dav.so
<IfModule log_config_module>
  A 4
</IfModule>
<IfDefine FOO>
  B no
</IfDefine>
Define FOO bar
<IfDefine FOO>
  A ${FOO}
</IfDefine>
<IfDefine !FOO>
  B no
</IfDefine>
<IfVersion >= 2.4>
  A 6
</IfVersion>
<IfVersion < 2.4>
  B no
</IfVersion>
<IfVersion ~ ^2\\.4\\.>
  A 7
</IfVersion>
<IfFile /etc/apache2/envvars>
  B no
</IfFile>
<IfFile !envvars>
  A 8
</IfFile>
<Macro VHost $name>
  <VirtualHost *:80>
    B no
  </VirtualHost>
</Macro>
Use VHost example
""",
    )
    assert problems(config) == []
    assert [d.value for d in config.anywhere(["A"])] == ["1", "2", "3", "4", "bar", "6", "7", "8"]
    assert config.anywhere(["B"]) == []
    assert config.vhosts == []
    assert "dav_module" in config.modules


def test_lines_words_and_variables(tmp_path: Path) -> None:
    config = minimal(
        tmp_path,
        """# comment
   # indented comment
ServerAdmin   "web master@example.org"   'single quoted'
Header set X "a \\"quoted\\" word" \\
    second-line
# a comment ending in a backslash swallows the next line \\
Swallowed yes
CustomLog ${APACHE_LOG_DIR}/x.log ${UNDEFINED}
Define SITE example.org
ServerName www.${SITE}
""",
        {"envvars": "export APACHE_LOG_DIR=/var/log/apache2$SUFFIX\nAPACHE_NOT_EXPORTED=x\n"},
    )
    assert [(d.name, d.args, d.origin.line) for d in config.directives] == [
        ("ServerAdmin", ("web master@example.org", "single quoted"), 3),
        ("Header", ("set", "X", 'a "quoted" word', "second-line"), 4),
        ("CustomLog", ("/var/log/apache2/x.log", "${UNDEFINED}"), 8),
        ("Define", ("SITE", "example.org"), 9),
        ("ServerName", ("www.example.org",), 10),
    ]
    assert split_args("  a\t'b c'  \"d\"") == ["a", "b c", "d"]


def test_includes(tmp_path: Path) -> None:
    config = minimal(
        tmp_path,
        """Include conf.d/*.conf
<VirtualHost *:80>
  Include vhost.inc
</VirtualHost>
IncludeOptional missing/*.conf
IncludeOptional /etc/apache2/missing.conf
Include dir
Include /etc/apache2/absent.conf
Include nomatch/*.conf
Include loop.conf
Last yes
""",
        {
            "conf.d/b.conf": "Order 2\n",
            "conf.d/a.conf": "Order 1\n",
            "conf.d/.hidden.conf": "Order hidden\n",
            "conf.d/c.txt": "Order not-a-conf\n",
            "vhost.inc": "<Location />\n  InVhost yes\n</Location>\n",
            "dir/z": "Order 4\n",
            "dir/sub/y": "Order 3\n",
            "loop.conf": "Include loop2.conf\n",
            "loop2.conf": "Include loop.conf\n",
        },
    )
    assert [d.value for d in config.anywhere(["Order"])] == ["1", "2", "3", "4"]
    (inner,) = config.anywhere(["InVhost"])
    assert [str(s) for s in inner.sections] == ["<VirtualHost *:80>", "<Location />"]
    assert inner.origin.file == f"{ETC}/vhost.inc"
    assert config.vhost_of(inner) is config.vhosts[0]
    assert [d.value for d in config.anywhere(["Last"])] == ["yes"]
    assert problems(config) == [
        f"{ETC}/apache2.conf:8: Include: {ETC}/absent.conf does not exist",
        f"{ETC}/apache2.conf:9: Include: no file matches {ETC}/nomatch/*.conf",
        f"{ETC}/loop2.conf:1: include loop: {ETC}/loop.conf -> {ETC}/loop2.conf"
        f" -> {ETC}/loop.conf (httpd refuses this)",
    ]


def test_broken_sections_are_reported(tmp_path: Path) -> None:
    config = minimal(
        tmp_path,
        """<Directory /a>
  Options None
</Location>
</VirtualHost>
<Directory /b
<VirtualHost *:443>
  <VirtualHost *:8443>
  </VirtualHost>
<IfModule mod_nothing.c>
  <VirtualHost *:80>
</IfModule>
""",
    )
    # The skipped <IfModule> counts nesting as httpd does, so its </IfModule> closes the
    # <VirtualHost *:80> inside it and the <IfModule> itself stays open.
    assert problems(config) == [
        f"{ETC}/apache2.conf:3: </Location> closes <Directory> opened at {ETC}/apache2.conf:1",
        f"{ETC}/apache2.conf:4: </VirtualHost> without an open <VirtualHost>",
        f"{ETC}/apache2.conf:5: section line without closing '>': <Directory /b",
        f"{ETC}/apache2.conf:7: <VirtualHost> inside another <VirtualHost>",
        f"{ETC}/apache2.conf:6: <VirtualHost> is never closed",
        f"{ETC}/apache2.conf:9: <IfModule> is never closed",
    ]


def test_a_section_closed_in_another_file_is_a_problem(tmp_path: Path) -> None:
    config = minimal(
        tmp_path,
        "<VirtualHost *:80>\n  Include close.conf\n",
        {"close.conf": "</VirtualHost>\n"},
    )
    assert problems(config) == [
        f"{ETC}/close.conf:1: </VirtualHost> without an open <VirtualHost>",
        f"{ETC}/apache2.conf:1: <VirtualHost> is never closed",
    ]


def test_unreadable_main_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ApacheConfigError, match=r"cannot read /etc/apache2/apache2\.conf"):
        parse(tmp_path)


def test_dangling_enabled_link_is_a_problem(tmp_path: Path) -> None:
    tree = debian_stock(tmp_path)
    (tree.etc / "sites-enabled" / "gone.conf").symlink_to("../sites-available/gone.conf")
    config = parse(tmp_path)
    assert problems(config) == [
        f"{ETC}/apache2.conf:225: Include: cannot read {ETC}/sites-enabled/gone.conf:"
        " No such file or directory"
    ]


def test_effective_values_and_options(tmp_path: Path) -> None:
    config = minimal(
        tmp_path,
        """TraceEnable On
TraceEnable Off
Options Indexes FollowSymLinks
<VirtualHost *:80>
  TraceEnable extended
  Options -Indexes +ExecCGI
  <Directory /x>
    TraceEnable ignored-here
  </Directory>
</VirtualHost>
<VirtualHost *:81>
</VirtualHost>
""",
    )
    own, inherits = config.vhosts
    server = config.effective("TraceEnable")
    assert (server.value, server.sources[0].origin.line, server.inherited) == ("Off", 2, False)
    assert config.effective("traceenable", own).value == "extended"
    assert config.effective("TraceEnable", inherits).inherited is True
    assert config.effective("ServerTokens", own) is None
    assert config.effective("Options", own).value == "ExecCGI FollowSymLinks"
    assert config.effective("Options", inherits).value == "FollowSymLinks Indexes"
    options = config.anywhere(["Options"])
    assert merge_options(options[:1]) == {"indexes", "followsymlinks"}
    assert merge_options([]) == {"followsymlinks"}


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        ("all -SSLv3", ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]),
        ("all", ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]),
        ("-all +TLSv1.2 +TLSv1.3", ["TLSv1.2", "TLSv1.3"]),
        ("+TLSv1.3", ["TLSv1.3"]),
        ("TLSv1.2 TLSv1.3", ["TLSv1.3"]),
        ("all -sslv3 -tlsv1 -TLSv1.1", ["TLSv1.2", "TLSv1.3"]),
        ("SSLv2 +SSLv3", ["SSLv2", "SSLv3"]),
        ("-all", []),
    ],
)
def test_ssl_protocol_rules(tokens: str, expected: list[str]) -> None:
    order = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
    assert sorted(protocol_set(tokens.split()), key=order.index) == expected


def test_illegal_protocol() -> None:
    with pytest.raises(ValueError, match=r"illegal protocol '-TLSv1\.4'"):
        protocol_set(["all", "-TLSv1.4"])


def test_ssl_engine_and_protocol_inheritance(tmp_path: Path) -> None:
    config = minimal(
        tmp_path,
        """Listen 80
Listen 443
Listen 8443
Listen 127.0.0.1:9000
SSLEngine on
SSLProtocol all -SSLv3
<VirtualHost *:443>
  SSLProtocol -all +TLSv1.3
</VirtualHost>
<VirtualHost *:80>
  SSLEngine off
</VirtualHost>
<VirtualHost _default_:8443>
</VirtualHost>
""",
    )
    sites = config.sites()
    assert [(str(s), s.ssl) for s in sites] == [
        (f"<VirtualHost *:443> ({ETC}/apache2.conf:7)", True),
        (f"<VirtualHost *:80> ({ETC}/apache2.conf:10)", False),
        (f"<VirtualHost _default_:8443> ({ETC}/apache2.conf:13)", True),
        (f"main server (Listen 127.0.0.1:9000 at {ETC}/apache2.conf:4)", True),
    ]
    assert [config.ssl_protocols(s).ordered for s in (sites[0], sites[2], sites[3])] == [
        ["TLSv1.3"],
        ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
        ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
    ]


def test_ssl_engine_address_form_and_default_protocols(tmp_path: Path) -> None:
    config = minimal(
        tmp_path,
        "SSLEngine *:443\n<VirtualHost *:443>\n</VirtualHost>\n"
        "<VirtualHost *:80>\n</VirtualHost>\n",
    )
    assert [v.ssl for v in config.vhosts] == [True, False]
    protocols = config.ssl_protocols(config.vhosts[0])
    assert (protocols.ordered, protocols.source) == (
        ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
        None,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mod_ssl.c", "ssl_module"),
        ("ssl_module", "ssl_module"),
        ("SSL", "ssl_module"),
        ("mod_cgid.c", "cgid_module"),
        ("mod_dav_fs.c", "dav_fs_module"),
        ("php8.2", "php_module"),
        ("mod_php.c", "php_module"),
        ("libphp8.2.so", "php_module"),
        ("php7.4", "php7_module"),
        ("mod_php7.c", "php7_module"),
        ("event.c", "mpm_event_module"),
        ("core.c", "core_module"),
    ],
)
def test_module_names(name: str, expected: str) -> None:
    assert module_id(name) == expected


def test_tree_helper_matches_debian_layout(tmp_path: Path) -> None:
    """The a2enmod-style links point into *-available as Debian's helpers make them."""
    tree = ApacheTree(tmp_path)
    tree.enable_module("ssl")
    link = tree.etc / "mods-enabled" / "ssl.conf"
    assert str(link.readlink()) == "../mods-available/ssl.conf"


def test_live_apache2ctl_modules_equal_parsed_loadmodule_set() -> None:
    """The installed package's /etc/apache2: httpd's own module list equals ours."""
    require_root()
    require_program("apache2ctl")
    live = load_apache_config(LocalHost())
    assert live.module_source == "loaded modules as reported by apache2ctl -M"
    assert problems(live) == []
    shared = {module_id(d.args[0]) for d in live.load_modules}
    assert shared
    assert live.modules == shared | set(DEBIAN_STATIC_MODULES)
    # The same tree read as files only (no command run) reaches the same set.
    as_files = load_apache_config(LocalHost(root="/"))
    assert as_files.module_source.startswith("loaded modules from the LoadModule lines read")
    assert as_files.modules == live.modules
    assert [str(v) for v in as_files.vhosts] == [str(v) for v in live.vhosts]


#: A server root httpd -t accepts on its own; the case under test follows it.
STANDALONE = (
    "ServerRoot {root}\nPidFile {root}/httpd.pid\nErrorLog {root}/error.log\n"
    "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n"
)
#: httpd reads a line up to LF; ``Define`` makes what it read visible in DUMP_RUN_CFG.
SEPARATOR_CASES = (
    "# hidden{sep}Define HIDDEN\n",
    "Define V x{sep}\n",
    "{sep}Define V x\n",
    "Define V a{sep}b\n",
    "Define V a\\{sep}\nDefine W b\n",
    "Define V a\\\nDefine W{sep}\n",
    "Define V a\\ {sep}\nDefine W b\n",
    "# comment \\\nDefine HIDDEN{sep}\n",
)


def httpd_defines(root: Path) -> dict[str, str] | None:
    """``apache2 -t -D DUMP_RUN_CFG``'s Define lines, or None when httpd refuses the config."""
    config = ["-d", str(root), "-f", str(root / "apache2.conf")]
    done = subprocess.run(
        [require_program("apache2"), *config, "-t", "-D", "DUMP_RUN_CFG"],
        capture_output=True,
        env={"PATH": os.environ["PATH"]},
        check=False,
    )
    if done.returncode != 0:
        return None
    defines = {}
    for line in done.stdout.decode().split("\n"):
        name, _, value = line.removeprefix("Define: ").partition("=")
        if line.startswith("Define: ") and name != "DUMP_RUN_CFG":
            defines[name] = value
    return defines


@each_separator
def test_real_httpd_splits_lines_like_us(tmp_path, sep):
    for number, case in enumerate(SEPARATOR_CASES):
        root = tmp_path / str(number)
        root.mkdir()
        text = STANDALONE.format(root=root) + case.format(sep=sep)
        (root / "apache2.conf").write_bytes(text.encode())
        config = load_apache_config(LocalHost(), str(root))
        truth = httpd_defines(root)
        if truth is None:
            assert config.problems, f"httpd refuses {case!r}; the parser must say so"
            continue
        assert config.problems == [], case
        ours = {d.args[0]: " ".join(d.args[1:]) for d in config.anywhere(["Define"])}
        assert ours == truth, case
