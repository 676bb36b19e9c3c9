"""Many argv commands in one SSH exec, each run as ``SSHHost.run`` would run it alone.

Every exec on a remote host is a round trip, a session sshd forks, a login shell and a
``timeout`` wrapper: about a dozen per audit (``sshd -T`` for each client a Match block
tells apart, else once, ``ss``, the firewall dumps, ``apache2ctl -M``...). The checks say
beforehand which commands they will run (``CheckType.commands``) and ``SSHHost.prefetch``
runs them all in one exec with the script built here; a command nobody announced, or
whose result this cannot vouch for, still runs alone when asked.

The script's text is ours alone: fixed code, the directories of ``REMOTE_PATH``, numbers,
and positional references (``"${12}"``). Every word of every command travels as a
positional parameter, quoted by ``shlex.join``, so nothing from a policy or from the host is
ever read by a shell as syntax. Each command's stdout, stderr and exit code are files in a
private temporary directory that ``tar`` sends back at the end: tar's framing cannot be
confused by what a command prints.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Sequence

from checks.hosts import CommandResult, PlannedCommand

#: A program a script found nowhere on the search path: run() says "command not found".
NOT_FOUND = "not found"
#: coreutils timeout's exit codes for a command it ended: its duration is unknown here,
#: so whether it ran out of *its own* time is too, and it runs again alone.
_TIMED_OUT = (124, 137)
_MEMBER = re.compile(r"\./(\d+)\.(out|err|rc|missing|unsure)\Z")


def batch_script(
    commands: Sequence[PlannedCommand], search_path: Sequence[str], kill_after: int
) -> str:
    """The sh script that runs ``commands`` one after another; its positional parameters
    are the commands' words, in order (``batch_words``)."""
    directories = " ".join(search_path)  # ours: plain absolute paths, nothing to quote
    lines = [
        "d=$(mktemp -d) || exit 125",
        "trap 'rm -rf \"$d\"' EXIT",
        # which(): the first regular file with an x bit. [ -x ] asks "may I execute it",
        # which differs only for a file executable by others but not us: then "unsure".
        "run() {",
        "  n=$1 t=$2; shift 2",
        "  case $1 in",
        '  */*) p=$1; [ -e "$p" ] || { : >"$d/$n.missing"; return; } ;;',
        f"  *) p=; for dir in {directories}; do",
        '       if [ -f "$dir/$1" ]; then',
        '         [ -x "$dir/$1" ] || { : >"$d/$n.unsure"; return; }',
        "         p=$dir/$1; break",
        "       fi",
        "     done",
        '     [ -n "$p" ] || { : >"$d/$n.missing"; return; } ;;',
        "  esac",
        "  shift",
        f'  timeout -k {kill_after} "$t" "$p" "$@" </dev/null >"$d/$n.out" 2>"$d/$n.err"',
        '  echo $? >"$d/$n.rc"',
        "}",
    ]
    position = 1
    for index, command in enumerate(commands):
        words = " ".join(f'"${{{position + i}}}"' for i in range(len(command.argv)))
        lines.append(f"run {index} {command.timeout:g} {words}")
        position += len(command.argv)
    lines.append('cd "$d" && tar -c -f - .')
    return "\n".join(lines) + "\n"


def batch_words(commands: Sequence[PlannedCommand]) -> list[str]:
    """The script's positional parameters: every command's words, in order."""
    return [word for command in commands for word in command.argv]


def batch_results(
    commands: Sequence[PlannedCommand], archive: bytes
) -> dict[PlannedCommand, CommandResult | str]:
    """What the script's archive vouches for: each command's result, or NOT_FOUND. A
    command that timed out, or whose files did not all come back, is left out.

    Raises tarfile.TarError for an archive that is not one."""
    files: dict[tuple[int, str], bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        for member in tar:
            name = _MEMBER.match(member.name)
            if name and member.isfile():
                data = tar.extractfile(member)
                files[int(name.group(1)), name.group(2)] = data.read() if data else b""
    results: dict[PlannedCommand, CommandResult | str] = {}
    for index, command in enumerate(commands):
        if (index, "missing") in files:
            results[command] = NOT_FOUND
            continue
        parts = [files.get((index, part)) for part in ("rc", "out", "err")]
        if any(part is None for part in parts) or not parts[0].strip().isdigit():
            continue
        code = int(parts[0])
        if code not in _TIMED_OUT:
            stdout, stderr = (part.decode("utf-8", errors="replace") for part in parts[1:])
            results[command] = CommandResult(command.argv, code, stdout, stderr)
    return results
