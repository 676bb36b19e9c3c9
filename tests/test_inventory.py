"""Inventories as sysadmins write them: target lists, YAML lists, Ansible INI and YAML."""

from __future__ import annotations

import pytest

from checks.inventory import load_inventory, parse_target, select
from checks.remote_facts import parse_ss
from checks.yamlsource import InputError

ANSIBLE_INI = """\
# production
mail.example.com

[webservers]
web[01:03].example.com
www.example.com ansible_host=203.0.113.7 ansible_port=2222 ansible_user=deploy

[dbservers]
db-[a:b].example.com office_networks="198.51.100.0/24,2001:db8::/48"

[webservers:vars]
office_networks=192.0.2.0/24
tls_min_version=1.3

[prod:children]
webservers
dbservers

[prod:vars]
backup_dir=/srv/backup
tls_min_version=1.2
"""

ANSIBLE_YAML = """\
all:
  vars:
    backup_dir: /srv/backup
  hosts:
    mail.example.com:
  children:
    webservers:
      vars:
        office_networks: [192.0.2.0/24]
      hosts:
        web01.example.com:
        www.example.com:
          ansible_host: 203.0.113.7
          ansible_port: 2222
          ansible_user: deploy
          office_networks: [198.51.100.0/24]
    dbservers:
      hosts:
        db-a.example.com:
"""


def test_ansible_ini_groups_ranges_children_and_variables(tmp_path):
    path = tmp_path / "hosts.ini"
    path.write_text(ANSIBLE_INI)
    hosts = {h.name: h for h in load_inventory(path)}
    assert list(hosts) == [
        "mail.example.com",
        "web01.example.com",
        "web02.example.com",
        "web03.example.com",
        "www.example.com",
        "db-a.example.com",
        "db-b.example.com",
    ]
    www = hosts["www.example.com"]
    assert (www.address, www.port, www.user) == ("203.0.113.7", 2222, "deploy")
    assert www.groups == ("prod", "webservers")
    # a child group's variables win over its parent's; ansible_* are not policy variables
    assert www.variables == {
        "office_networks": "192.0.2.0/24",
        "tls_min_version": "1.3",
        "backup_dir": "/srv/backup",
    }
    assert hosts["db-b.example.com"].variables["office_networks"] == (
        "198.51.100.0/24,2001:db8::/48"
    )
    assert hosts["db-b.example.com"].variables["tls_min_version"] == "1.2"
    assert hosts["mail.example.com"].groups == ("ungrouped",)
    assert www.source == f"{path}:6"
    assert [h.name for h in select(list(hosts.values()), ["dbservers", "mail*"])] == [
        "mail.example.com",
        "db-a.example.com",
        "db-b.example.com",
    ]
    assert [h.name for h in select(list(hosts.values()), ["prod,!web0*"])] == [
        "www.example.com",
        "db-a.example.com",
        "db-b.example.com",
    ]


def test_ansible_yaml_inventory(tmp_path):
    path = tmp_path / "hosts.yaml"
    path.write_text(ANSIBLE_YAML)
    hosts = {h.name: h for h in load_inventory(path)}
    assert list(hosts) == [
        "mail.example.com",
        "web01.example.com",
        "www.example.com",
        "db-a.example.com",
    ]
    www = hosts["www.example.com"]
    assert (www.address, www.port, www.user, www.groups) == (
        "203.0.113.7", 2222, "deploy", ("webservers",)
    )  # fmt: skip
    assert www.variables == {"backup_dir": "/srv/backup", "office_networks": ["198.51.100.0/24"]}
    assert hosts["web01.example.com"].variables["office_networks"] == ["192.0.2.0/24"]
    assert hosts["mail.example.com"].variables == {"backup_dir": "/srv/backup"}


def test_plain_and_yaml_lists(tmp_path):
    plain = tmp_path / "hosts.txt"
    plain.write_text("# web\nweb1.example.com\nadmin@[2001:db8::5]:2200\n\n10.1.2.3\n")
    hosts = load_inventory(plain)
    assert [(h.name, h.address, h.port, h.user) for h in hosts] == [
        ("web1.example.com", "web1.example.com", None, None),
        ("2001:db8::5:2200", "2001:db8::5", 2200, "admin"),
        ("10.1.2.3", "10.1.2.3", None, None),
    ]
    listed = tmp_path / "hosts.yaml"
    listed.write_text(
        "- web1.example.com\n"
        "- host: db1.example.com\n  port: 2222\n  user: audit\n"
        "  vars: {office_networks: [192.0.2.0/24]}\n"
    )
    db = load_inventory(listed)[1]
    assert (db.name, db.port, db.user, db.variables) == (
        "db1.example.com:2222", 2222, "audit", {"office_networks": ["192.0.2.0/24"]}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("[web]\nweb1 ansible_port=ssh\n", "hosts.ini", "hosts.ini:2: web1.ansible_port: 'ssh'"),
        ("[web]\nweb1 stray\n", "hosts.ini", "hosts.ini:2: web1: 'stray' is not name=value"),
        ("[web]\nweb[3:1]\n", "hosts.ini", "hosts.ini:2: web[3:1]: 'web[3:1]': the range is"),
        ("all:\n  hosts:\n    - web1\n", "hosts.yaml", "hosts.yaml:2: all.hosts: hosts are"),
        ("all:\n  host:\n    web1:\n", "hosts.yaml", "hosts.yaml:2: all.host: unknown key"),
        ("web1\nroot@\n", "hosts.txt", "hosts.txt:2: 'root@' is not [user@]host[:port]"),
        ("- host: web1\n  port: 0\n", "hosts.yaml", "hosts.yaml:1: [0]: 0: a port is 1-65535"),
        ("all: [\n", "hosts.yaml", "hosts.yaml:2: invalid YAML"),
    ],
)
def test_a_broken_inventory_names_file_and_line(tmp_path, text, name, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_inventory(path)
    assert str(caught.value).startswith(f"{tmp_path}/{expected}"), str(caught.value)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("web1", ("web1", None, None)),
        ("root@web1:2222", ("web1", "root", 2222)),
        ("[::1]:22", ("::1", None, 22)),
        ("deploy@2001:db8::1", ("2001:db8::1", "deploy", None)),
    ],
)
def test_targets(text, parsed):
    host = parse_target(text)
    assert (host.address, host.user, host.port) == parsed
    for bad in ("web1:", "web1:99999", "a b", "[::1", "@web1"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_ss_lines_become_sockets_as_psutil_shows_them():
    text = (
        'tcp LISTEN 0 511 *:80 *:* users:(("apache2",pid=20,fd=4),("apache2",pid=19,fd=4))'
        " uid:33 ino:1 sk:1 cgroup:/ <->\n"
        "udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* uid:101 ino:2 sk:2 cgroup:/ <->\n"
        "tcp LISTEN 0 128 [::1]:5432 [::]:* ino:3 sk:3 cgroup:/ <->\n"
    )
    found = [(s.proto, s.address, s.port, s.pid, s.process, s.uid) for s in parse_ss(text)]
    assert found == [
        ("tcp", "::", 80, 20, "apache2", 33),
        ("tcp", "::", 80, 19, "apache2", 33),
        ("udp", "127.0.0.53", 53, None, None, 101),
        ("tcp", "::1", 5432, None, None, 0),
    ]
