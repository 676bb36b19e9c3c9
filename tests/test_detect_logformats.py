"""Headers and timestamps of every log format the detector reads, taken apart by position."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from agent.detect.logformats import (
    DEBIAN_PG_PREFIX,
    ApacheErrorParser,
    PostgresPrefix,
    SyslogClock,
    SyslogParser,
    apache_error_time,
    clf_time,
    iso_time,
)

NOW = calendar.timegm((2026, 1, 10, 12, 0, 0))  # the reference clock: 2026-01-10 12:00 UTC
PARIS = ZoneInfo("Europe/Paris")


def utc(*fields: float) -> float:
    return datetime(*map(int, fields[:6]), tzinfo=UTC).timestamp() + (
        fields[6] if len(fields) > 6 else 0
    )


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("Jan  5 10:00:00", utc(2026, 1, 5, 10, 0, 0)),
        ("Jan 11 13:00:00", utc(2026, 1, 11, 13, 0, 0)),  # a day ahead: clock skew, same year
        ("Jan 13 00:00:00", utc(2025, 1, 13, 0, 0, 0)),  # three days ahead: last year's
        ("Dec 31 23:59:59", utc(2025, 12, 31, 23, 59, 59)),  # December read in January
        ("Feb 29 10:00:00", None),  # 2026 is no leap year and 2025 neither
        ("Foo  5 10:00:00", None),
    ],
)
def test_syslog_stamps_get_the_newest_year_that_is_not_in_the_future(stamp, expected):
    assert SyslogClock(lambda: NOW, UTC).parse(stamp) == expected


def test_syslog_stamps_are_local_wall_clock_time_of_the_given_zone():
    clock = SyslogClock(lambda: NOW, PARIS)
    assert clock.parse("Jan  5 10:00:00") == utc(2026, 1, 5, 9, 0, 0)  # CET, UTC+1
    summer = SyslogClock(lambda: utc(2026, 8, 1), PARIS)
    assert summer.parse("Jul  5 10:00:00") == utc(2026, 7, 5, 8, 0, 0)  # CEST, UTC+2


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-01-05T10:00:00.123456+00:00", utc(2024, 1, 5, 10, 0, 0, 0.123456)),
        ("2023-11-14T00:20:42.738197+01:00", utc(2023, 11, 13, 23, 20, 42, 0.738197)),
        ("2018-12-20 10:09:05.180218+0000", utc(2018, 12, 20, 10, 9, 5, 0.180218)),
        ("2019-07-08T17:40:16-04:00", utc(2019, 7, 8, 21, 40, 16)),
        ("2024-01-05T10:00:00Z", utc(2024, 1, 5, 10, 0, 0)),
        ("2024-01-05 10:00:00.123 UTC", utc(2024, 1, 5, 10, 0, 0, 0.123)),  # PostgreSQL %m
        ("2024-01-05 10:00:00 GMT", utc(2024, 1, 5, 10, 0, 0)),  # PostgreSQL %t
        ("2024-01-05 10:00:00.5 +03", utc(2024, 1, 5, 7, 0, 0, 0.5)),
        ("2024-01-05 10:00:00 CET", utc(2024, 1, 5, 9, 0, 0)),  # named zone: read in tz
        ("2024-13-05 10:00:00 UTC", None),
        ("yesterday", None),
    ],
)
def test_iso_and_postgres_stamps(stamp, expected):
    assert (
        iso_time(stamp, PARIS) == pytest.approx(expected) if expected else iso_time(stamp) is None
    )


def test_apache_stamps():
    assert clf_time("[05/Jan/2024:10:00:00 +0000]") == utc(2024, 1, 5, 10, 0, 0)
    assert clf_time("05/Jan/2024:10:00:00 -0130") == utc(2024, 1, 5, 11, 30, 0)
    assert clf_time("05/Foo/2024:10:00:00 +0000") is None
    assert clf_time("31/Feb/2024:10:00:00 +0000") is None
    assert apache_error_time("Fri Jan 05 10:00:00.123456 2024", UTC) == utc(
        2024, 1, 5, 10, 0, 0, 0.123456
    )
    assert apache_error_time("Fri Jan 05 10:00:00 2024", PARIS) == utc(2024, 1, 5, 9, 0, 0)
    assert apache_error_time("Fri Jan 05 25:00:00 2024", UTC) is None


@pytest.mark.parametrize(
    ("line", "program", "pid", "message", "repeat"),
    [
        ("Jan  5 10:00:00 web1 sshd[123]: Invalid user a from 1.2.3.4", "sshd", "123",
         "Invalid user a from 1.2.3.4", 1),
        ("May 9 11:11:17 sshd[30876]: Invalid user www", "sshd", "30876", "Invalid user www", 1),
        ("Jun 20 02:18:39 vps auth.info sshd[13482]: msg", "sshd", "13482", "msg", 1),
        ("Jan  1 00:00:00 <10.5> foxtrot sshd[1234]: msg", "sshd", "1234", "msg", 1),
        ("2020-05-29T11:28:56.058908+02:00 bastion sshd[20974] error: PAM: x", "sshd", "20974",
         "error: PAM: x", 1),
        ("Mar  3 00:17:22 [sshd]: User root", "sshd", None, "User root", 1),
        ("Jun 25 23:53:34 [sshd] User root", "sshd", None, "User root", 1),
        ("Mar 29 05:59:23 dusky sshd[20878]: [ID 800047 auth.info] Failed x", "sshd", "20878",
         "Failed x", 1),
        ("Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 5 times: [ Failed password]",
         "sshd", "24227", "Failed password", 5),
        ("Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 9999 times: [ x]", "sshd", "24227",
         "x", 100),
        ("Jan  5 10:00:00 web1 CRON[99]: pam_unix(cron:session): session opened", "CRON", "99",
         "pam_unix(cron:session): session opened", 1),
        ("<35>1 2020-01-03T11:57:14.257387-05:00 1.2.3.4 sshd 86784 - - error: PAM: x", "sshd",
         "86784", "error: PAM: x", 1),
        ('<38>1 2019-07-08T17:40:17.9-04:00 h sshd 55555 - [a b="1"][c@1 t="[x] \\"y\\""] msg',
         "sshd", "55555", "msg", 1),
    ],
)  # fmt: skip
def test_syslog_headers(line, program, pid, message, repeat):
    header = SyslogParser(lambda: NOW, UTC).parse(line)
    assert (header.program, header.pid, header.message, header.repeat) == (
        program, pid, message, repeat,
    )  # fmt: skip
    assert header.address is None


@pytest.mark.parametrize(
    "line",
    ["Dec 10 07:13:56 LabSZ", "no header at all", "", "Jan  5 10:00:00 web1 message without tag"],
)
def test_lines_without_a_syslog_header(line):
    assert SyslogParser(lambda: NOW, UTC).parse(line) is None


@pytest.mark.parametrize(
    ("line", "address", "message"),
    [
        ("[Sat Jul 20 22:11:44.147674 2013] [authz_owner:error] [pid 17540:tid 1] "
         "[client [2001:db8::80da:af6b:8b2c]:51548] AH01637: x", "2001:db8::80da:af6b:8b2c",
         "AH01637: x"),
        ("[Thu Jul 11 01:21:44 2013] [error] [client 2001:db8::80da:af6b:8b2c] user t not found",
         "2001:db8::80da:af6b:8b2c", "user t not found"),
        ("[Thu Jul 11 01:21:44.1 2013] [core:error] [pid 9] [client 2001:db8::1:51548] AH1: x",
         "2001:db8::1", "AH1: x"),
        ("[Sat Sep 28 09:18:06 2018] [error] [client 192.0.2.1:55555] [client 192.0.2.1] "
         "ModSecurity: x", "192.0.2.1", "ModSecurity: x"),
        ("[Mon Nov 06 13:39:56.6 2023] [auth_basic:error] [pid 3:tid 4] [remote 192.0.2.111:35924]"
         " AH01618: y", "192.0.2.111", "AH01618: y"),
        ("[Sat Jun 01 02:17:42 2013] [error] [client 192.168.33.1] File does not exist: "
         "/site/[client 192.168.0.1] user root not found", "192.168.33.1",
         "File does not exist: /site/[client 192.168.0.1] user root not found"),
        ("[Sat Jun 01 02:17:42 2013] [notice] Apache configured -- resuming", None,
         "Apache configured -- resuming"),
        ("Feb 15 16:23:40 srv httpd/backend1[22034]: [authz_core:error] [pid 22036] "
         "[client 192.0.2.2:59392] AH01630: z", "192.0.2.2", "AH01630: z"),
        # %a always ends in the port in Apache 2.4, IPv6 unbracketed: microseconds, a module
        # or a pid show the line is 2.4's, whatever its ErrorLogFormat
        ("[Thu Dec 03 14:00:00.123456 2026] [error] [client ::1:4000] AH01617: x", "::1",
         "AH01617: x"),
        ("[Thu Dec 03 14:00:00 2026] [auth_basic:error] [client 2001:db8::5:4000] x",
         "2001:db8::5", "x"),
        ("[Thu Dec 03 14:00:00 2026] [error] [pid 7] [client ::1:4000] x", "::1", "x"),
        ("[Thu Dec 03 14:00:00 2026] [error] [client 192.0.2.3:4000] x", "192.0.2.3", "x"),
        ("[Thu Dec 03 14:00:00 2026] [error] [client [2001:db8::5]:4000] x", "2001:db8::5", "x"),
        # no sign of 2.4: a five-digit port is no IPv6 group, a shorter one could be
        ("[Thu Dec 03 14:00:00 2026] [error] [client ::1:54000] x", "::1", "x"),
        ("[Thu Dec 03 14:00:00 2026] [error] [client ::1:4000] x", None, "x"),
        ("[Thu Dec 03 14:00:00 2026] [error] [client 2001:db8::5] x", "2001:db8::5", "x"),
    ],
)  # fmt: skip
def test_apache_error_headers_take_the_address_from_apaches_own_field(line, address, message):
    header = ApacheErrorParser(lambda: NOW, UTC).parse(line)
    assert (header.address, header.message) == (address, message)


def test_apache_error_lines_from_other_programs_are_not_apaches():
    parser = ApacheErrorParser(lambda: NOW, UTC)
    assert parser.parse("Feb 15 16:23:40 srv CRON[1]: [error] [client 1.2.3.4] x") is None
    assert parser.parse("[not a time] [error] x") is None


@pytest.mark.parametrize(
    ("prefix", "line", "pid", "address", "message"),
    [
        (DEBIAN_PG_PREFIX, '2024-01-05 10:00:00.123 UTC [12] alice@db FATAL:  password x',
         "12", None, "FATAL:  password x"),
        (DEBIAN_PG_PREFIX, "2024-01-05 10:00:00.123 UTC [12] LOG:  checkpoint starting: time",
         "12", None, "LOG:  checkpoint starting: time"),
        ("%m [%p] %h %q%u@%d ", "2021-09-28 09:22:18.536 UTC [147] 1.2.3.4 u@postgres FATAL:  x",
         "147", "1.2.3.4", "FATAL:  x"),
        ("%m:%r:%u@%d:[%p]:", "2021-09-28 09:22:19.536 UTC:1.2.3.4(5432):u@pg:[127]:FATAL:  x",
         "127", "1.2.3.4", "FATAL:  x"),
        ("%h %m [%p] %q%u@%d ", "65.2.129.7 2023-03-12 11:17:28.425 UTC [53962] zysk@postgres "
         "FATAL:  x", "53962", "65.2.129.7", "FATAL:  x"),
        ("%t [%p-%l] %q%a %u@%d ", "2024-01-05 10:00:00 CET [77-1] psql bob@db ERROR:  x",
         "77", None, "ERROR:  x"),
        ("%n %%[%p] ", "1704448800.500 %[5] LOG:  x", "5", None, "LOG:  x"),
    ],
)  # fmt: skip
def test_postgres_prefixes(prefix, line, pid, address, message):
    header = PostgresPrefix(prefix, UTC).parse(line)
    assert (header.pid, header.address, header.message, header.ambiguous) == (
        pid, address, message, False,
    )  # fmt: skip


def test_postgres_times():
    assert PostgresPrefix("%n [%p] ").parse("1704448800.500 [5] LOG:  x").time == 1704448800.5
    header = PostgresPrefix("%t [%p] ", PARIS).parse("2024-01-05 10:00:00 CET [5] LOG:  x")
    assert header.time == utc(2024, 1, 5, 9, 0, 0)


def test_postgres_prefix_with_user_chosen_text_that_spells_a_message_is_ambiguous():
    line = (
        '2024-01-05 10:00:00.000 UTC [9] x FATAL:  y@db FATAL:  password failed for "x FATAL:  y"'
    )
    assert PostgresPrefix(DEBIAN_PG_PREFIX).parse(line).ambiguous


@pytest.mark.parametrize(
    ("prefix", "error"),
    [
        ("%u %h ", "prints %u (chosen by the client) before %h: the client could forge it"),
        ("%a [%p] ", "prints %a (chosen by the client) before %p"),
        ("%h %r ", "names the client host twice"),
        ("%m %Z ", "escape %Z is not supported"),
    ],
)
def test_unsafe_or_unknown_prefixes_are_refused(prefix, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        PostgresPrefix(prefix)
