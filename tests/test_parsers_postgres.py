"""postgresql.conf and pg_hba.conf parsers, checked against PostgreSQL's own reading.

The real-server tests run the installed PostgreSQL: ``postgres -C`` prints the value the
server would use from a config tree, and the ``pg_hba_file_rules`` view (queried through a
single-user backend, no TCP) shows how the server splits pg_hba.conf.
"""

from __future__ import annotations

import csv
import glob
import io
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES, require_program, require_root
from line_breaks import SEPARATORS, each_separator
from treeutil import make_tree

from checks.hosts import HostError, LocalHost
from checks.parsers.postgres import (
    default_value,
    find_clusters,
    parse_pg_hba,
    parse_postgresql_conf,
)

PG = FIXTURES / "postgres"


def settings_of(conf) -> dict[str, tuple[str, int]]:
    return {name: (s.value, s.origin.line) for name, s in conf.settings.items()}


def test_inspec_conf_edge_cases_are_reported_not_guessed():
    path = PG / "inspec_fixture_postgresql.conf"
    conf = parse_postgresql_conf(LocalHost(), str(path))
    assert settings_of(conf) == {
        "data_directory": ("/var/lib/postgresql/9.4/main", 2),
        "datestyle": ("iso, mdy", 3),
        "log_connections": ("on", 4),
        "pgaudit.log_parameter": ("on", 8),
    }
    # PostgreSQL rejects these three lines; we say so instead of inventing values
    assert [(p.line, p.message) for p in conf.problems] == [
        (5, "doublequote: syntax error near 'value' (PostgreSQL rejects this line)"),
        (6, "empty: missing value (PostgreSQL rejects this line)"),
        (7, "key: missing value (PostgreSQL rejects this line)"),
    ]


def test_commented_sample_gives_built_in_defaults_per_version(tmp_path):
    sample = (PG / "postgresql.conf.sample.excerpt").read_text()
    make_tree(
        tmp_path,
        {
            "/etc/postgresql/13/main/postgresql.conf": sample,
            "/etc/postgresql/15/main/postgresql.conf": sample,
        },
    )
    host = LocalHost(root=str(tmp_path))
    paths = find_clusters(host)
    assert paths == [
        "/etc/postgresql/13/main/postgresql.conf",
        "/etc/postgresql/15/main/postgresql.conf",
    ]
    old, new = (parse_postgresql_conf(host, p) for p in paths)
    assert old.settings == new.settings == {}
    assert (old.version, new.version) == (13, 15)
    assert str(old.get("password_encryption")) == "password_encryption = 'md5' (built-in default)"
    assert new.get("password_encryption").value == "scram-sha-256"
    assert new.get("listen_addresses").value == "localhost"
    assert new.get("log_line_prefix").value == "%m [%p] "
    assert new.get("no_such_setting") is None
    assert default_value("log_line_prefix", 9) == ""


def test_includes_last_value_wins_and_alter_system_file(tmp_path):
    make_tree(
        tmp_path,
        {
            "/etc/postgresql/15/main/postgresql.conf": "listen_addresses = '*'\n"
            "data_directory = '/var/lib/postgresql/15/main'\n"
            "include_dir 'conf.d'\n"
            "port = 5433\n"
            "include = 'extra.conf'\n"
            "include_if_exists = 'not-there.conf'\n"
            "include 'absent.conf'\n"
            "LOG_Connections = off\n",
            "/etc/postgresql/15/main/conf.d/01-a.conf": "port = 6000\nlog_connections = on\n",
            "/etc/postgresql/15/main/conf.d/02-b.conf": "include '../nested/deep.conf'\n",
            "/etc/postgresql/15/main/conf.d/.hidden.conf": "port = 1\n",
            "/etc/postgresql/15/main/conf.d/notes.txt": "port = 2\n",
            "/etc/postgresql/15/main/nested/deep.conf": "ssl = on\n",
            "/etc/postgresql/15/main/extra.conf": "log_line_prefix = '%m %h '\n",
            "/var/lib/postgresql/15/main/postgresql.auto.conf": "listen_addresses = 'localhost'\n",
        },
    )
    conf = parse_postgresql_conf(
        LocalHost(root=str(tmp_path)), "/etc/postgresql/15/main/postgresql.conf"
    )
    base = "/etc/postgresql/15/main"
    assert {n: str(s.origin) for n, s in conf.settings.items()} == {
        "listen_addresses": "/var/lib/postgresql/15/main/postgresql.auto.conf:1",
        "data_directory": f"{base}/postgresql.conf:2",
        "port": f"{base}/postgresql.conf:4",
        "log_connections": f"{base}/postgresql.conf:8",
        "ssl": f"{base}/nested/deep.conf:1",
        "log_line_prefix": f"{base}/extra.conf:1",
    }
    assert conf.get("log_connections").value == "off"
    assert conf.get("listen_addresses").value == "localhost"
    assert [str(p) for p in conf.problems] == [
        f"{base}/postgresql.conf:7: include {base}/absent.conf: no such file"
    ]
    assert conf.hba_path() == f"{base}/pg_hba.conf"


def test_quoting_and_value_forms(tmp_path):
    make_tree(
        tmp_path,
        {
            "/srv/pg/postgresql.conf": "cluster_name = 'it''s \\'quoted\\''\n"
            "application_name = 'tab\\there \\101'\n"
            "port 5432\n"
            "shared_buffers = 128MB   # trailing comment\n"
            "random_page_cost = 1.5\n"
            "password_encryption = scram-sha-256\n"
            "unix_socket_directories = '/var/run/postgresql'\n"
            "hba_file = '/srv/pg/hba.conf'\n"
            "log_line_prefix = '%m [%p] %q%u@%d '  # the Debian default\n"
            "= 'orphan'\n",
        },
    )
    conf = parse_postgresql_conf(LocalHost(root=str(tmp_path)), "/srv/pg/postgresql.conf")
    assert {n: s.value for n, s in conf.settings.items()} == {
        "cluster_name": "it's 'quoted'",
        "application_name": "tab\there A",
        "port": "5432",
        "shared_buffers": "128MB",
        "random_page_cost": "1.5",
        "password_encryption": "scram-sha-256",
        "unix_socket_directories": "/var/run/postgresql",
        "hba_file": "/srv/pg/hba.conf",
        "log_line_prefix": "%m [%p] %q%u@%d ",
    }
    assert [p.line for p in conf.problems] == [10]
    assert conf.hba_path() == "/srv/pg/hba.conf"


def test_unreadable_conf_is_an_error(tmp_path):
    with pytest.raises(HostError):
        parse_postgresql_conf(
            LocalHost(root=str(tmp_path)), "/etc/postgresql/15/main/postgresql.conf"
        )


def rules_of(path: Path | str, host: LocalHost | None = None) -> list[tuple]:
    hba = parse_pg_hba(host or LocalHost(), str(path))
    return [
        (
            r.origin.line,
            r.type,
            r.databases,
            r.address and str(r.address),
            str(r.network),
            r.method,
            r.open_to_everyone,
        )
        for r in hba.rules
    ]


def test_inspec_hba_fixture_including_the_slash_zero_traps():
    assert rules_of(PG / "inspec_fixture_pg_hba.conf") == [
        (3, "local", ("all",), None, "None", "peer", False),
        (6, "local", ("all",), None, "None", "md5", False),
        (9, "host", ("all",), "::1/128", "::1/128", "md5", False),
        (12, "host", ("all",), "127.0.0.1/32", "127.0.0.1/32", "md5", False),
        (14, "host", ("acme_test_db",), "::1/0", "::/0", "md5", True),
        (15, "host", ("acme_test_db",), "127.0.0.1/0", "0.0.0.0/0", "md5", True),
        (16, "host", ("acme_test",), "::1/0", "::/0", "md5", True),
        (17, "host", ("acme_test",), "127.0.0.1/0", "0.0.0.0/0", "md5", True),
        (20, "hostssl", ("acme_test_db",), "::/0", "::/0", "cert", True),
        (21, "hostssl", ("acme_test_db",), "0.0.0.0/0", "0.0.0.0/0", "cert", True),
        (22, "hostssl", ("acme_test",), "::/0", "::/0", "cert", True),
        (23, "hostssl", ("acme_test",), "0.0.0.0/0", "0.0.0.0/0", "cert", True),
    ]
    options = parse_pg_hba(LocalHost(), str(PG / "inspec_fixture_pg_hba.conf")).rules[-1].options
    assert options == ("clientcert=1", "map=ssl-test")


def test_rendered_initdb_files():
    trust = rules_of(PG / "pg_hba.rendered_initdb_default_trust.conf")
    assert [(line, kind, method) for line, kind, _, _, _, method, _ in trust] == [
        (7, "local", "trust"),
        (9, "host", "trust"),
        (11, "host", "trust"),
        (14, "local", "trust"),
        (15, "host", "trust"),
        (16, "host", "trust"),
    ]
    scram = rules_of(PG / "pg_hba.rendered_peer_scram.conf")
    assert {method for *_, method, _ in scram} == {"peer", "scram-sha-256"}
    assert [line for line, *_ in scram] == [3, 5, 7, 10, 11, 12]


def test_unrendered_sample_reports_its_placeholders():
    hba = parse_pg_hba(LocalHost(), str(PG / "pg_hba.conf.sample"))
    assert [p.line for p in hba.problems] == [91, 95, 96, 98, 100, 103, 104, 105]
    assert str(hba.problems[3]).endswith(
        ":98: invalid authentication method '@authmethodhost@' (PostgreSQL rejects this line)"
    )
    assert hba.rules == []


def test_hba_includes_quotes_continuations_and_netmask_columns(tmp_path):
    make_tree(
        tmp_path,
        {
            "/etc/pg/pg_hba.conf": "include_dir hba.d\n"
            'host "all" all 10.0.0.0 255.0.0.0 md5\n'
            'host db1,"x y" +admins,bob \\\n'
            "     .example.org scram-sha-256 # a comment\n"
            "host all all samenet reject\n"
            "include_if_exists missing.conf\n"
            'include "more rules.conf"\n'
            "host all all 10.0.0.0\n"
            "hostnossl all all 0.0.0.0/0 trust\n",
            "/etc/pg/hba.d/10-local.conf": "local all postgres peer\n",
            "/etc/pg/hba.d/README": "host all all all trust\n",
            "/etc/pg/more rules.conf": "hostgssenc all all all gss\n",
        },
    )
    host = LocalHost(root=str(tmp_path))
    hba = parse_pg_hba(host, "/etc/pg/pg_hba.conf")
    assert [
        (str(r.origin), r.type, r.databases, r.users, r.address and str(r.address), r.method)
        for r in hba.rules
    ] == [
        ("/etc/pg/hba.d/10-local.conf:1", "local", ("all",), ("postgres",), None, "peer"),
        ("/etc/pg/pg_hba.conf:2", "host", ("all",), ("all",), "10.0.0.0/255.0.0.0", "md5"),
        (
            "/etc/pg/pg_hba.conf:3",
            "host",
            ("db1", "x y"),
            ("+admins", "bob"),
            ".example.org",
            "scram-sha-256",
        ),
        ("/etc/pg/pg_hba.conf:5", "host", ("all",), ("all",), "samenet", "reject"),
        ("/etc/pg/more rules.conf:1", "hostgssenc", ("all",), ("all",), "all", "gss"),
        ("/etc/pg/pg_hba.conf:9", "hostnossl", ("all",), ("all",), "0.0.0.0/0", "trust"),
    ]
    assert str(hba.rules[1].network) == "10.0.0.0/8"
    assert [r.open_to_everyone for r in hba.rules] == [False, False, False, False, True, True]
    assert [str(p) for p in hba.problems] == [
        "/etc/pg/pg_hba.conf:8: host record is missing fields (PostgreSQL rejects this line)"
    ]
    assert hba.files == [
        "/etc/pg/pg_hba.conf",
        "/etc/pg/hba.d/10-local.conf",
        "/etc/pg/more rules.conf",
    ]


# --- the real PostgreSQL as the judge --------------------------------------------------------


def _bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        require_program("postgres")
    return Path(found[-1]).parent


@pytest.fixture
def postgres_dir() -> Iterator[Path]:
    """A directory the postgres user can read (pytest's tmp_path is root-only)."""
    require_root()
    require_program("runuser")
    base = Path(tempfile.mkdtemp(prefix="lappguard-pgconf-"))
    shutil.chown(base, "postgres", "postgres")
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_postgres(*argv: str, stdin: str | None = None) -> str:
    """Run as the postgres user; stdout decoded as is (text mode would turn a CR into LF)."""
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv],
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        check=True,
    )
    return done.stdout.decode()


def write_owned(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    for item in (path, path.parent):
        shutil.chown(item, "postgres", "postgres")


def test_real_postgres_reads_postgresql_conf_like_us(postgres_dir):
    bindir = _bindir()
    write_owned(
        postgres_dir / "postgresql.conf",
        "listen_addresses = '*'\n"
        "include_dir 'conf.d'\n"
        "cluster_name = 'it''s \\'x\\''\n"
        "port 5555\n"
        "include_if_exists 'absent.conf'\n"
        "log_line_prefix = '%m [%p] %q%u@%d %h '\n"
        "password_encryption = md5\n",
    )
    write_owned(
        postgres_dir / "conf.d" / "10-net.conf", "listen_addresses = 'localhost,10.0.0.5'\n"
    )
    write_owned(
        postgres_dir / "conf.d" / "20-port.conf",
        "port = 6000\npassword_encryption = 'scram-sha-256'\n",
    )
    write_owned(postgres_dir / "postgresql.auto.conf", "log_line_prefix = '%t %r '\n")
    conf = parse_postgresql_conf(LocalHost(), str(postgres_dir / "postgresql.conf"))
    assert conf.problems == []
    names = ("listen_addresses", "cluster_name", "port", "log_line_prefix", "password_encryption")
    for name in names:
        truth = as_postgres(str(bindir / "postgres"), "-D", str(postgres_dir), "-C", name)
        assert conf.get(name).value == truth.rstrip("\n"), name
    assert conf.get("port").value == "5555"  # port 5555 came after include_dir
    assert conf.get("log_line_prefix").origin.file.endswith("postgresql.auto.conf")


HBA_EXTRA = (
    "host all all 10.0.0.0 255.0.0.0 md5\n"
    'host "all" all ::/0 \\\n  reject\n'
    'host db1,"x y" +grp samenet scram-sha-256\n'
    "host all all .example.org md5\n"
    "host all all\n"
    "hostnossl sameuser all 192.168.0.0/16 password\n"
)


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Path]:
    """One initdb'd data directory for the module (a single-user backend reads it)."""
    require_root()
    require_program("runuser")
    bindir = _bindir()
    base = Path(tempfile.mkdtemp(prefix="lappguard-pghba-"))
    shutil.chown(base, "postgres", "postgres")
    try:
        as_postgres(
            str(bindir / "initdb"), "-D", str(base / "data"), "-A", "trust", "--no-sync", "-N"
        )
        yield base / "data"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def server_hba_rules(data: Path) -> dict[int, tuple]:
    query = (
        "copy (select line_number, type, database, user_name, address, netmask, auth_method, "
        "error from pg_hba_file_rules) to stdout with (format csv);\n"
    )
    argv = [
        str(_bindir() / "postgres"),
        "--single",
        "-D",
        str(data),
        "-c",
        "log_min_messages=fatal",
    ]
    out = as_postgres(*argv, "postgres", stdin=query)
    rows = {}
    for line in out.split("\n"):  # an error message may quote a token holding FF or NEL
        line = line.removeprefix("backend> ")
        if not line or not line[0].isdigit():
            continue
        number, kind, database, user, address, netmask, method, error = next(
            csv.reader(io.StringIO(line))
        )
        rows[int(number)] = (
            kind,
            _pg_array(database),
            _pg_array(user),
            address,
            netmask,
            method,
            error,
        )
    return rows


def _pg_array(text: str) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(next(csv.reader(io.StringIO(text[1:-1]))))


SSL_OFF = "hostssl record cannot match because SSL is disabled"  # the test cluster has no SSL


def as_view_rows(hba) -> dict[int, tuple]:
    """Our rules and rejected lines in the shape of pg_hba_file_rules rows."""
    rows: dict[int, tuple] = {p.line: ("", (), (), "", "", "", str(p)) for p in hba.problems}
    for rule in hba.rules:
        where = rule.address
        if where is None:
            address, netmask = "", ""
        elif where.ip is not None:
            address, netmask = numeric(where.ip), numeric(where.netmask)
        else:
            address, netmask = where.keyword or where.hostname, ""
        rows[rule.origin.line] = (
            rule.type,
            rule.databases,
            rule.users,
            address,
            netmask,
            rule.method,
            "",
        )
    return rows


def numeric(address) -> str:
    """An address spelled as the server's getnameinfo() spells it (``::ffff:1.2.3.4``)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return socket.inet_ntop(family, address.packed)


def comparable(rows: dict[int, tuple]) -> list[tuple]:
    """Rows in file order, reduced to what both sides can say: the rule as loaded, or that
    the line is rejected (the server's wording is not ours)."""
    reduced = []
    for _, row in sorted(rows.items()):
        if row[0] == "hostssl" or row[-1] == SSL_OFF:
            reduced.append(("hostssl", SSL_OFF))  # a server setting, not a syntax question
        elif row[-1]:
            reduced.append(("rejected",))
        else:
            reduced.append(row)
    return reduced


def assert_server_agrees(truth: dict[int, tuple], hba, same_lines: bool = True) -> None:
    """Every line the server loads we read the same; every line it rejects we report.

    ``same_lines=False`` compares in file order only: the server counts a line whose NUL
    swallowed the next one as a single line, we name the physical line it starts on.
    """
    ours = as_view_rows(hba)
    assert comparable(ours) == comparable(truth)
    if same_lines:
        assert sorted(ours) == sorted(truth)


def test_real_postgres_splits_pg_hba_like_us(pg_cluster):
    text = (PG / "inspec_fixture_pg_hba.conf").read_text() + HBA_EXTRA
    write_owned(pg_cluster / "pg_hba.conf", text)
    truth = server_hba_rules(pg_cluster)
    hba = parse_pg_hba(LocalHost(), str(pg_cluster / "pg_hba.conf"))
    assert_server_agrees(truth, hba)
    assert len(truth) == 18
    assert {p.line for p in hba.problems} == {30}


#: ADDRESS columns PostgreSQL reads through getaddrinfo(AI_NUMERICHOST) and strtol().
ADDRESS_FORMS = (
    "0/0",
    "0 0",
    "0.0/0",
    "0.0 0",
    "0",  # an address: "trust" is then read as its netmask, and rejected
    "10.1/16",
    "10.1 255.255.0.0",
    "::0/0",
    "::0 ::",
    "0x7f.1/32",
    "010.0.0.1/32",
    "4294967295/32",
    "1.2.3.4/+8",
    "1.2.3.4/-0",
    "1.2.3.4/08",
    '"1.2.3.4/ 8"',
    "1.2.3.4/33",
    "1.2.3.4/",
    "10.0.0.0 255.0.255.0",
    "10.0.0.0 0.0.0.0",
    "::1 255.0.0.0",
    "1.2.3.4 ::",
    "all",
    '"all"',
    'a"ll"',
    "samehost",
    "samenet",
    ".example.com",
    "host.example",
    "*",
    '""',
    "fe80::1%lo/64",
    "fe80::1%nope/64",
    "::1%1",
    "1.2.3.4,5.6.7.8/32",
    "1.2.3",
    "1.2.3.4.5",
    "08",
    "1e2",
    "0x",
    "[::1]",
    "::ffff:1.2.3.4/96",
    "1.2.3.4/8 extra",
)
#: The forms above that admit every client: LAPP-PG-003 must see them.
EVERYONE = {"0/0", "0 0", "0.0/0", "0.0 0", "::0/0", "::0 ::", "1.2.3.4/-0", "10.0.0.0 0.0.0.0"}


def test_real_postgres_reads_pg_hba_addresses_like_us(pg_cluster):
    text = "".join(f"host all all {form} trust\n" for form in ADDRESS_FORMS)
    write_owned(pg_cluster / "pg_hba.conf", text)
    hba = parse_pg_hba(LocalHost(), str(pg_cluster / "pg_hba.conf"))
    assert_server_agrees(server_hba_rules(pg_cluster), hba)
    everyone = {ADDRESS_FORMS[r.origin.line - 1] for r in hba.rules if r.open_to_everyone}
    assert everyone == EVERYONE | {"all", 'a"ll"'}  # a quote after the first letter: a keyword
    assert {r.method for r in hba.rules} == {"trust"}


#: pg_hba.conf records around a separator, one blank line apart (a NUL joins the next line).
HBA_SEPARATOR_CASES = (
    "# hidden{sep}host all all all trust",
    "host all all all trust{sep}",
    "{sep}host all all all trust",
    "host all all{sep}all trust",
    "local all all peer #{sep}\nhost all all 127.0.0.1/32 trust",
    "host all all 127.0.0.1/32 md5{sep}\\\nhost all all all trust",
)


@each_separator
def test_real_postgres_splits_pg_hba_lines_like_us(pg_cluster, sep):
    text = "\n\n".join(case.format(sep=sep) for case in HBA_SEPARATOR_CASES) + "\n"
    write_owned(pg_cluster / "pg_hba.conf", text)
    hba = parse_pg_hba(LocalHost(), str(pg_cluster / "pg_hba.conf"))
    assert_server_agrees(server_hba_rules(pg_cluster), hba, same_lines=sep != SEPARATORS["NUL"])


#: postgresql.conf files around a separator; postgres -C refuses a file with any bad line.
#: (log_line_prefix: cluster_name would be cleaned to ASCII by the server.)
CONF_SEPARATOR_CASES = (
    "# hidden{sep}log_line_prefix = 'hidden'\n",
    "log_line_prefix = 'x'{sep}\n",
    "{sep}log_line_prefix = 'x'\n",
    "log_line_prefix = ab{sep}cd\n",
    "log_line_prefix = 'a{sep}b'\n",
    "log_line_prefix = 'x' #{sep}\nlog_line_prefix = 'y'\n",
)


@each_separator
def test_real_postgres_splits_postgresql_conf_lines_like_us(postgres_dir, sep):
    postgres = str(_bindir() / "postgres")
    for case in CONF_SEPARATOR_CASES:
        write_owned(postgres_dir / "postgresql.conf", case.format(sep=sep))
        conf = parse_postgresql_conf(LocalHost(), str(postgres_dir / "postgresql.conf"))
        try:
            truth = as_postgres(postgres, "-D", str(postgres_dir), "-C", "log_line_prefix")
        except subprocess.CalledProcessError:
            assert conf.problems, f"postgres refuses {case!r}; the parser must say so"
            continue
        assert conf.problems == [], case
        assert conf.get("log_line_prefix").value == truth.removesuffix("\n"), case
