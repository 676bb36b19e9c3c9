"""Command and code injection in one value: shell commands after a shell operator or as the
whole value, shell expansions (``$(..)``, ``${IFS}``, globs in system paths, brace and
tilde expansion), cmd.exe and PowerShell syntax, and server-side code (PHP, templates).
Also Shellshock. Every function takes normalised (lower-case) text; the patterns are
linear: no nested unbounded quantifiers, callers cap the input.
"""

from __future__ import annotations

import re

__all__ = ["cmdi", "shellshock"]

# Commands probed for their output; they mean injection even with no argument.
_CMD_ALONE = (
    r"id|whoami|uname|ifconfig|ipconfig|pwd|ls|dir|systeminfo|netstat|ps|env|printenv|ver"
    r"|hostname|uptime|w|who|phpinfo|sleep \d+|ping -[nc] ?\d+|net user|tasklist|visudo"
    r"|lastlog|dmesg|getuid|sysinfo"
)
# Programs no English sentence names: any argument will do.
_CMD_STRONG = (
    r"wget|curl|lwp-\w+|nc|ncat|netcat|socat|telnet|tftp|bash|sh|zsh|ksh|csh|tcsh|dash"
    r"|busybox|python[0-9.]*|perl|php[0-9.]*|ruby|irb|nslookup|traceroute|killall|pkill|chmod"
    r"|chown|base64|base32|xxd|hexdump|crontab|nohup|sudo|doas|useradd|usermod|mkfifo|mknod"
    r"|unzip|gunzip|zcat|xzcat|bzcat|zstdcat|unxz|bsdtar|systemctl|journalctl|whereis"
    r"|openssl|nmap|getent|lsof|strace|ltrace|gdb|gcc|cc|c89|c99|clang|perf|cpulimit|flock"
    r"|setsid|ansible(?:-[a-z]+)?|chef-[a-z]+|cscli|kubectl|rmt(?:-tar|-dump)?"
    r"|findstr|icacls|cscript|wscript|msiexec|cmd(?:\.exe)?|powershell(?:\.exe)?|pwsh"
    r"|certutil|bitsadmin|mshta|rundll32|regsvr32|regedit|wmic|netsh|schtasks|taskkill|cacls"
    r"|chcp|bcdboot|bcdedit|vssadmin|wevtutil|iex|iwr|irm|iwmi"
    r"|invoke-(?:webrequest|expression|restmethod|wmimethod|command|item)|start-process"
    r"|new-object|echo|printf|uname|whoami|ifconfig|lastlog(?:in)?"
)
# Programs that are English words too: only with a shell-like argument (-x, a path, $).
_CMD_WORDS = (
    r"cat|tac|more|less|head|tail|nl|fetch|ssh|scp|ftp|lua|node|ping|dig|host|kill|rm|cp"
    r"|mv|mkdir|touch|find|grep|egrep|awk|gawk|sed|cut|od|strings|passwd|su|exec|eval|cd"
    r"|source|expr|xargs|tee|timeout|date|dd|tar|service|reboot|shutdown|which|locate"
    r"|file|stat|type|del|copy|start|call|net|reg|sc|attrib|export|alias|unset|print|read"
    r"|sort|uniq|diff|set|ls|dir|ps|env|id|sleep|column|fold|comm|rev|trap|time|bridge|ip"
)
# Words that run the command after them ("time sh -c id", "nohup ifconfig"), and an
# unset variable that expands to nothing ("|$u wget").
_PREFIX = (
    r"(?:(?:time|nohup|strace|ltrace|nice|env|sudo|doas|exec|command|builtin|xargs|setsid)\s+)?"
    r"(?:\$\w{1,20}\s+)?"
)
_SHELL_ARG = r"\s+(?:-{1,2}[a-z]|[\\/~$.]|[a-z]:\\|https?://|\d+\s*(?:$|[;|&`]))"
_CMD_OPERATOR = r"(?:[;|`\n\r&]|\$\(\(?|<\(|>\()"
_CMD_PATH = r"(?:[\w./\\-]{0,64}[\\/])?"
_CMD_QUOTE = r"['\"]?"
# A space, $IFS or an unset variable, a here-string, a comma before an option (gcc's
# "-wrapper sh,-c,id") or a cmd.exe switch (bcdboot/r).
_CMD_GLUE = r"(?:\s+|\$\{?ifs\}?|\$\{?[a-z_]\w{0,20}\}?\s+|<{1,3}|,(?=-)|(?=/[a-z]\b))"
_SHELLS = r"(?:ba|z|k|da|c|tc)?sh|busybox"
_SHELL_SYNTAX = (
    rf"{_CMD_OPERATOR}\s*{_PREFIX}{_CMD_QUOTE}{_CMD_PATH}(?:"
    rf"(?:{_CMD_ALONE})(?:\.exe)?{_CMD_QUOTE}(?=$|[\s;|&`)<>,}}]|\$)"
    rf"|(?:{_CMD_STRONG}){_CMD_QUOTE}{_CMD_GLUE}[^\s;|&]"
    rf"|(?:{_CMD_WORDS}){_CMD_QUOTE}{_SHELL_ARG})"
    rf"|^\s*['\"]?(?:{_CMD_ALONE})['\"]?\s*[;|&`]"  # whoami;...
    rf"|{_CMD_OPERATOR}\s*['\"]?(?:{_CMD_STRONG})['\"]?\s*(?:$|[;|&`])"  # ;rmt-dump
    rf"|\|\s*{_CMD_PATH}(?:{_SHELLS})\s*$"  # ... | sh
    rf"|[<>]\(\s*{_CMD_PATH}(?:{_CMD_ALONE}|{_CMD_STRONG}|{_CMD_WORDS})\b"  # <(cat file)
    r"|>&?\s*(?:/dev|\$\w{1,20})/(?:tcp|udp)/|\$\{?shell\}?\s+-c\b"
    r"|(?:^|[\s/'\"=;|&])(?:usr/(?:local/)?)?s?bin/(?:[a-z][\w.+-]{0,30})(?:$|[\s;|&])"
    r"|\balias\s+(?:[+-][a-z]{1,5}\+?\s+)?['\"]?[\w.!%,@-]{1,40}['\"]?=\S"
    r"|\$\{?ifs\b|\$\(\s*[a-z]|[\w'\"]\s*<<<\s*['\"]?\s*[\w/$]"
    rf"|\{{\s*{_CMD_PATH}(?:{_CMD_ALONE}|{_CMD_STRONG}|{_CMD_WORDS}),"  # {{cat,/etc/passwd}}
    r"|<!--\s*#\s*(?:exec|include|echo|set)\b"
    # shell expansions that text never has
    r"|\$\(\(|\$\[[^\]\s]{0,40}\]|\$\{\s*(?:#?\w{1,40}\s*(?:[#%/^,]|:[-=+?]|:\d)|!\w)"
    r"|(?:^|[\s;|&'\"=(])/(?:[\w.-]{0,20}/){0,4}[\w.-]{0,20}\[(?:![\w-]{1,10}|[a-z][\w-]{0,9})\]"
    r"|(?:^|[\s;|&'\"=(])/[\w.-]{0,4}[?*][\w?*.-]{0,6}/"
    r"|/(?:bin|sbin|etc|usr|dev|proc|tmp)/[\w.-]{0,20}[?*]"
    r"|(?:^|[\s;|&])~[+-]\d{0,3}(?:$|[/\s;|&])|!-\d+(?:!-\d|$|\s)"
    r"|[;|&\n`(]\s*\$\{?[a-z_]\w{0,30}\}?\s*(?:$|[;|&)`])|=\$'[^']{0,100}'"
    # cmd.exe control flow and environment, PowerShell, Windows admin commands
    r"|\bfor\s+(?:/[dflr]\s*(?:\\?\"[^\"]{0,80}\"\s*|[^\s%\"/]{1,80}\s+)?){0,4}%{1,2}\S{1,20}"
    r"\s+in\s*\("
    r"|\bif\s+(?:/i\s+)?(?:not\s+)?(?:exist|defined|errorlevel|cmdextversion)\s+\S"
    r"|\bif\s+(?:/i\s+)?(?:not\s+)?\S{1,80}?\s+(?:equ|neq|lss|leq|gtr|geq)\s+\S"
    r"|\bif\s+(?:/i\s+)?(?:not\s+)?[\"(\[]?%\S{1,40}\s*=="
    r"|\bif\s+(?:/i\s+)?(?:not\s+)?\S.{0,80}?==\s*\S.{0,80}?\s@?(?:echo|goto|set|call|exit|cmd"
    r"|start|del|copy|type|dir)\b"
    r"|%(?:systemroot|windir|systemdrive|comspec|programfiles|userprofile|appdata|temp|tmp"
    r"|homedrive|homepath|computername|username|allusersprofile|errorlevel)%"
    r"|\breg(?:\.exe)?\s+(?:add|query|delete|save|export|import|load)\s+['\"]?hk"
    r"|\bnet(?:\.exe)?\s+(?:user|localgroup|group|share|session|accounts)\b.{0,80}?/(?:add|del"
    r"|delete|domain)\b|\bnet(?:\.exe)?\s+(?:view|localgroup|share|session|accounts)\s*$"
    r"|-(?:enc|encodedcommand)\s+[a-z0-9+/=]{8}|\b(?:downloadstring|downloadfile)\s*\("
    # server-side code: PHP, template engines
    r"|\b(?:system|passthru|shell_exec|exec|popen|proc_open|pcntl_exec|eval|assert"
    r"|base64_decode|create_function|call_user_func)\s*\(\s*[^\s)]|\b(?:phpinfo|phpversion)\s*\("
    r"|\b(?:os\.(?:system|popen)|subprocess\.\w+|runtime\.getruntime\(\)\.exec|__import__)\b"
    r"|<\?php\b|<\?=|\$_(?:get|post|request|cookie|server|files|env)\s*\["
    r"|\$\{\s*@?[a-z_]\w{0,40}\s*\("
    r"|\{\{\s*[^{}\s]{0,60}?[\d.(\[*|'\"+-][^{}]{0,120}\}\}|\{%\s*(?:for|if|set|import|include|extends|block|macro|print)\b"
)
# A data URL's ";base64" is its own syntax, not a shell separator.
_DATA_URL = re.compile(r"\bdata:[\w.+-]{1,60}/[\w.+-]{1,60};base64\b")
# Administration tools whose names are no word of any language: a value starting with one
# is a command line, whatever follows.
_ADMIN_TOOLS = (
    r"ansible-[a-z]+|chef-[a-z]+|cscli|kubectl|netsh|visudo|systemctl|journalctl"
    r"|useradd|usermod|userdel|iptables|ip6tables|aa-(?:disable|complain|enforce|status"
    r"|teardown)"
)
# A whole value that is a command line, which only a web shell's parameter runs: in text a
# person typed (a search box), "tar -xzf archive.tar.gz" is a question, not a command.
_COMMAND_LINE = (
    rf"^\s*[<^'\"]?{_PREFIX}{_CMD_PATH}(?:{_CMD_STRONG}|{_CMD_WORDS}|{_CMD_ALONE})['\"]?"
    r"\s+(?:-{1,2}[a-z]|[\\/~]|[a-z]:\\|https?://)"
    rf"|^\s*['\"]?(?:time|nohup|strace|ltrace|sudo|doas|setsid)\s+(?:-\S+\s+)*{_CMD_PATH}"
    rf"(?:{_CMD_STRONG}|{_CMD_ALONE})(?:$|\s)"
    r"|^\s*(?:sleep\s+\d+|which\s+(?:gcc|cc|python\d?|perl|ruby|php|nc|netcat|ncat|wget|curl"
    r"|bash|sh|nmap|socat))\s*$"
    rf"|^\s*['\"]?{_CMD_PATH}(?:{_ADMIN_TOOLS})['\"]?(?:\s|$)"
    # Ansible (also a word of fiction) or a versioned interpreter ("php8.2" also names a
    # hosting plan) with an option or a script
    r"|^\s*['\"]?ansible['\"]?(?:\s+[\w.-]{1,40})?\s+-[a-z]"
    r"|^\s*['\"]?(?:python|php|perl|ruby)\d[\d.]*['\"]?\s+(?:-[a-z]|\S{1,80}\.(?:py|php|pl|rb|sh)\b)"
    r"|^\s*if\s*(?:/i\s*)?(?:not\s+)?[^=\s]{1,40}\s*==\s*\S"  # cmd.exe: if a==b cmd
)
# Backticks around a command (`id`), which Markdown also writes around code in a question.
_BACKTICKS = rf"`\s*{_CMD_PATH}(?:{_CMD_ALONE}|{_CMD_STRONG}|{_CMD_WORDS})[\s`]"
_CMDI = re.compile(f"{_SHELL_SYNTAX}|{_BACKTICKS}|{_COMMAND_LINE}")
_CMDI_IN_TEXT = re.compile(_SHELL_SYNTAX)
# Headers hold "; id)" (a language tag) and the like: there, only a command with an
# argument, or shell syntax that text never has, counts.
_CMDI_HEADER = re.compile(
    rf"(?:[;|`&]|\$\()\s*{_CMD_PATH}(?:{_CMD_STRONG}|{_CMD_WORDS})"
    r"\s+(?:-{1,2}[a-z]|[\\/~]|https?://)"
    r"|\$\{?ifs\b|\$\(\s*[a-z]|<!--\s*#\s*exec\b"
)
# Shell quoting tricks: w'h'o"am"i, c\at, c^md (cmd.exe escape).
_SHELL_QUOTES = re.compile(r"(?<=\w)(?:''|\"\"|['\"\\^])(?=\w)")
# Brace expansion hides a command: c{a,oun}t, {,ifconfig}, {l,-lh}s.
_BRACES = re.compile(r"([\w-]{0,20})\{([\w,-]{0,60},[\w,-]{0,60})\}([\w-]{0,20})")
_COMMAND = re.compile(rf"(?:{_CMD_ALONE}|{_CMD_STRONG}|{_CMD_WORDS})")

_CMD_HINTS = frozenset(";|&`\n\r${(<>-/\\~%!^'\"")
_CMD_WORD_HINTS = (
    *("if ", "sleep", "which", "{", "time ", "nohup", "strace", "alias ", "ansible", "chef-"),
    *("cscli", "kubectl", "netsh", "visudo", "systemctl", "journalctl", "useradd", "usermod"),
    *("userdel", "iptables", "aa-", "python", "php", "perl"),
)


def cmdi(text: str, *, header: bool = False, free_text: bool = False) -> str | None:
    """Shell or code syntax in a value; in a ``header``, or in ``free_text`` a person typed,
    a command line without shell syntax around it does not count."""
    if _CMD_HINTS.isdisjoint(text) and not any(word in text for word in _CMD_WORD_HINTS):
        return None  # no shell syntax, option, path, brace or cmd.exe "if": nothing to find
    regex = _CMDI_HEADER if header else _CMDI_IN_TEXT if free_text else _CMDI
    if "data:" in text:
        text = _DATA_URL.sub("data-url", text)
    match = regex.search(text)
    if match is None and ("'" in text or '"' in text or "\\" in text or "^" in text):
        match = regex.search(_SHELL_QUOTES.sub("", text))
    if match is not None:
        return match.group()
    return None if header else _brace_command(text)


def _brace_command(text: str) -> str | None:
    if "{" not in text:
        return None
    for match in _BRACES.finditer(text):
        prefix, choices, suffix = match.groups()
        for choice in choices.split(","):
            if _COMMAND.fullmatch(prefix + choice + suffix):
                return match.group()
    return None


_SHELLSHOCK = re.compile(r"^\s*\(\s*\)\s*\{")


def shellshock(text: str) -> str | None:
    match = _SHELLSHOCK.search(text)
    return match.group() if match else None
