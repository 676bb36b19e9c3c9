"""File access in one request: path traversal, local and remote file inclusion, and
requests for files a web root should never serve (dumps, backups, dot-files).

Every function takes text already decoded and normalised (lower case, see decode.py) and
returns the matched excerpt or None. The patterns are linear: no nested unbounded
quantifiers, no back-references, and callers cap the input length.
"""

from __future__ import annotations

import re

__all__ = ["lfi", "rfi", "sensitive_file", "traversal"]

# --- traversal: dot-dot segments and operating-system files ---------------------------
# What stands between the dots of an exotic traversal after decoding: a separator, an
# escape no decoder understood (%c0%qf, %u2215), a hex literal, a non-ASCII byte.
_ODD = r"(?:[^\x00-\x7f]|[\x00-\x1f]|%[0-9a-z]{1,2}|%?u[0-9a-f]{4}|0x[0-9a-f]{2})"
_JUNK = rf"(?:[^\w\s.]|{_ODD}|2f|5c)"
_DOTS = r"(?:(?:\.|0x2e)(?:\.|0x2e)|\.\?|\?\.)"  # "?" stands in for a dot in wildcards
_DOTDOT = (
    r"(?:^|[\\/=;:,'\"&|\s(])\.{2,64}[\\/;](?![\s\"'<>]|$)"  # ../x ..\x ..../x ..;x
    r"|[\\/]\.\.(?:[\\/;]|$)"  # /.. at the end or before ;
    rf"|[\\/]\.\.{_ODD}|(?:^|[\\/=;:,'\"&|\s(]){_DOTS}[\\/;]{{0,2}}{_ODD}{{1,6}}\w"  # ..%c0%qfetc
    rf"|{_DOTS}{_JUNK}{{1,8}}{_DOTS}{_JUNK}"  # ..%c0%qf..%c0%qf, 0x2e0x2e%uf025..
    r"|^\.\.(?:2f|5c)[a-z]"  # a traversal whose "%" was stripped: ..2fetc2fpasswd
    r"|\.\.0x(?:2f|5c)|0x2e0x2e"  # hex-literal spellings
)
# Kernel files under /proc and /sys that only reconnaissance reads.
_PROC = (
    r"self|\d+|cpuinfo|meminfo|version|interrupts|mounts|partitions|modules|cmdline|environ"
    r"|kallsyms|kcore|loadavg|sched_debug|net/(?:tcp|udp|arp|route|fib_trie)"
)
# System files named with their directory: unambiguous even in a request path.
_SYSTEM_FILE = (
    r"(?:^|[\\/])(?:etc[\\/](?:passwd|shadow|group|hosts|issue|motd|crontab|sudoers|fstab"
    r"|hostname|resolv\.conf|master\.passwd|os-release|environment|profile|httpd|apache2?"
    rf"|nginx|mysql|php|ssh|ssl|init\.d|cron)|proc[\\/](?:{_PROC})(?:[\\/]|$)"
    r"|sys[\\/](?:class|kernel|devices|block|power|module|firmware|bus)(?:[\\/]|$)"
    r"|(?:windows|winnt)[\\/](?:win\.ini|system\.ini|repair[\\/]|panther[\\/]"
    r"|system32[\\/](?:cmd\.exe|config[\\/]|drivers[\\/]etc|inetsrv|[\w.-]{1,40}\.(?:exe|dll|ini)))"
    r"|(?:boot|win)\.ini)"
)
# In a parameter value, any absolute path into a system directory, or a well-known
# config/credential file name, is a file-inclusion attempt.
_OS_DIRS = (
    r"etc|proc|sys/(?:class|kernel|devices|block|power|module|firmware|bus)|root|usr|var"
    r"|tmp|logs?|private/(?:etc|var)|boot|dev/(?:tcp|udp|shm|fd|null|stdin)"
    r"|mysql/(?:bin|data)|php\d?|library/webserver|volumes"
    r"|inetpub|xampp|wamp"
    r"|apache\d?/(?:conf|logs?)|opt/(?:lampp|bitnami|apache\d?)|home/[^/\\]+/\."
)
_OS_FILES = (
    r"passwd|shadow|master\.passwd|(?:win|boot|system|php|desktop)\.ini|httpd\.conf"
    r"|apache2?\.conf|nginx\.conf|my\.cnf|(?:access|error|ssl_request)[._]log"
    r"|authorized_keys|known_hosts|id_[rd]sa|id_ecdsa|id_ed25519|\.bash_history|\.bashrc"
    r"|\.htpasswd|\.htaccess|web\.config|ntuser\.dat|wp-config\.php|localsettings\.php"
    r"|_?(?:config|configuration|settings|database|db|local_settings|conn|connection|setup)"
    r"(?:\.inc)?\.php|[\w.-]*\.(?:log|conf|cnf|ini)(?:\.php)?"
)
_TRAVERSAL_PATH = re.compile(f"{_DOTDOT}|{_SYSTEM_FILE}")
_TRAVERSAL_VALUE = re.compile(
    f"{_DOTDOT}|{_SYSTEM_FILE}"
    rf"|(?:^|[\\/'\"=:(\s])(?:[a-z]:)?[\\/]{{1,4}}(?:{_OS_DIRS})[\\/]"
    rf"|(?:^|[\\/])(?:{_OS_FILES})(?:$|[\s?;#&'\"])"
    # a value that is a Windows path to a file or a directory ("C:\\Windows\\System32\\ls",
    # a bare name, is how a command line is written, not a file to read)
    r"|^\s*['\"]?/?[a-z]:(?:[\\/]|(?=windows|winnt))(?:[^\\/]{1,64}[\\/]){0,8}"
    r"(?:[^\\/]{0,64}\.[a-z0-9]{1,5})?$"
    r"|(?:^|[\s'\"=:>])~?/(?:[\w.-]{1,40}/){0,6}\.(?!well-known\b)[a-z][\w-]{1,40}(?:/|$)"
    r"|>\s*/(?:tmp|var/tmp|dev/shm)/"  # output redirected into a world-writable directory
)


# In text a person typed, a path after words is named, not opened ("edit /etc/hosts on
# mac"): only dot-dots, or a system file the value starts with, count there.
_TRAVERSAL_TEXT = re.compile(f"{_DOTDOT}|^\\s*['\"]?(?:{_SYSTEM_FILE})")
_TRAVERSAL_HINTS = (".", "/", "\\", ":", "0x")
# A request path always has "/": there, only dot-dots or a system directory's name count.
_PATH_HINTS = ("..", "0x", ".?", "?.", "etc", "proc", "sys", "win", "boot")


def traversal(text: str, *, in_path: bool = False, free_text: bool = False) -> str | None:
    """Dot-dot segments or system files; a parameter value is also judged by absolute
    paths into system directories, dot-files and config/credential file names, unless it
    is ``free_text`` (see _TRAVERSAL_TEXT)."""
    hints = _PATH_HINTS if in_path else _TRAVERSAL_HINTS
    if not any(hint in text for hint in hints):
        return None  # every pattern needs one of these: most values stop here
    regex = _TRAVERSAL_PATH if in_path else _TRAVERSAL_TEXT if free_text else _TRAVERSAL_VALUE
    match = regex.search(text)
    return match.group() if match else None


# --- LFI / RFI: PHP stream wrappers, and remote URLs handed to include-like parameters --
_WRAPPER = re.compile(
    r"(?:php|zip|phar|expect|glob|file|data|zlib|compress\.zlib|compress\.bzip2|ogg|rar"
    r"|ssh2\.(?:shell|exec|tunnel|sftp|scp))://"
    r"|^\s*data:[a-z]+/[a-z0-9.+-]+(?:;[a-z0-9=.-]+)*,"
    # php://filter chains, also sent in pieces: convert.iconv.UTF8.CSISO2022KR|...
    r"|\bconvert\.(?:iconv\.|base64-(?:en|de)code|quoted-printable-)"
    r"|\bstring\.(?:rot13|toupper|tolower|strip_tags)\b|\bzlib\.(?:de|in)flate\b"
)
_REMOTE = re.compile(r"^\s*(?:https?|ftps?|smb|ssh|sftp|gopher|dict|ldap)://([^/?#\s]*)(.*)$")
# Parameter names that include-style PHP code feeds to include()/require().
_INCLUDE_NAMES = frozenset(
    [
        "file",
        "page",
        "include",
        "inc",
        "path",
        "template",
        "tpl",
        "dir",
        "folder",
        "doc",
        "document",
        "root",
        "pg",
        "style",
        "module",
        "mod",
        "load",
        "lang",
        "language",
        "conf",
        "config",
        "content",
        "show",
        "view",
        "layout",
        "skin",
        "theme",
        "pdf",
        "read",
        "filename",
        "filepath",
        "src",
        "source",
        "base_path",
        "basepath",
        "abspath",
        "mosconfig_absolute_path",
        "incl",
        "inc_file",
        "main_path",
        "rootpath",
        "class_path",
        "lib",
        "libpath",
        "prefix",
    ]
)
_IP_HOST = re.compile(r"^(?:[^@]*@)?(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\]|\d{8,10})(?::\d+)?$")
_RFI_TAIL = re.compile(r"(?:\?+|\x00|%00|#)$|\.(?:txt|php\d?|phtml|sh|pl|py|cgi|inc|gif|jpe?g)\?")


def lfi(text: str) -> str | None:
    match = _WRAPPER.search(text)
    return match.group() if match else None


def rfi(name: str, value: str) -> str | None:
    """A remote URL in a parameter, when something marks it as an inclusion: an
    include-like parameter name, a bare IP host, or a trailing ``?`` that neutralises the
    suffix the application appends."""
    match = _REMOTE.match(value)
    if match is None:
        return None
    host, rest = match.groups()
    if name.strip() in _INCLUDE_NAMES or _IP_HOST.match(host) or _RFI_TAIL.search(rest):
        return match.group()
    return None


# --- sensitive files and admin panels, by request path ------------------------------
# File names a web root never serves: backups, dumps, archives of the site, credentials.
_SENSITIVE_NAME = (
    r"(?:^|/)[\w.-]*\.(?:php|inc|conf|config|cfg|ini|ya?ml|json|xml|py|rb|js|asp|aspx|jsp)"
    r"(?:\.(?:bak|old|orig|save|swp|swo|tmp|dist|copy|backup|\d)|~|[_-](?:bak|old|backup))$"
    r"|(?:^|/)#[\w.-]{1,80}#$"  # an Emacs auto-save file
    r"|(?:^|/)copy of [\w. -]{1,80}\.(?:php|inc|conf|config|ini)$"  # a copy Windows made
    r"|(?:^|/)cvs/(?:entries|root|repository)$"  # CVS's bookkeeping, beside every file
    r"|\.(?:sql|sqlite3?|mdb|dump)(?:\.(?:gz|bz2|xz|zip|7z|tar))?$"
    r"|(?:^|/)(?:backup|backups|bak|db|database|dump|site|www|wwwroot|htdocs|public_html"
    r"|web|html|old|archive|data|sql|website|home|files)\.(?:zip|tar|tar\.gz|tgz|rar|7z|gz"
    r"|bz2|xz)$"
    r"|(?:^|/)[\w.-]*\.(?:bak|old|orig|swp|save|sql)$"
    r"|(?:^|/)(?:errors?|access|debug|php_errors?|laravel|ssl_request|install)[._-]log$"
    r"|(?:^|/)(?:web\.config|wp-config\.php\.\w+|id_[rd]sa|credentials|\.env|\.htpasswd"
    r"|\.git/config)$"
)
_SENSITIVE_FILE = re.compile(_SENSITIVE_NAME)
_DOT_ENTRY = re.compile(r"(?:^|/)\.(?!well-known(?:/|$))[^/.]")  # .env .git/ .htpasswd
_PANEL_HINTS = ("admin", "pma", "sql", "server-", "info.php", "phpunit")
_PANEL = re.compile(
    r"(?:^|/)(?:phpmyadmin[\w.-]*|pma|myadmin|mysqladmin|phpmy-?admin|sqladmin|dbadmin|pmadb"
    r"|phpminiadmin|sqlweb|websql|mysql-admin|php-myadmin|adminer)(?:/|$)"
    r"|(?:^|/)adminer[\w.-]*\.php"
    r"|(?:^|/)server-(?:status|info)(?:/|$)"
    r"|(?:^|/)(?:phpinfo|php_info|info)\.php$"
    r"|/phpunit/.*eval-stdin\.php"
)


def sensitive_file(path: str, *, in_value: bool = False) -> str | None:
    """A request path for such a file, a dot-file or an admin panel; a parameter value
    naming one (``download?file=backup.sql.zip``) is judged by the file names alone."""
    if in_value:
        if "." not in path and "/" not in path:
            return None  # "error_log" alone is a word, "/error_log" a file
        match = _SENSITIVE_FILE.search(path)
        return match.group() if match else None
    last = path.rfind("/")
    match = _SENSITIVE_FILE.search(path, max(0, path.rfind("/", 0, last)))
    if match is None and ("/." in path or path.startswith(".")):
        match = _DOT_ENTRY.search(path)
    if match is None and any(hint in path for hint in _PANEL_HINTS):
        match = _PANEL.search(path)
    return match.group() if match else None
