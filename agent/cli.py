"""The ``lappguard`` command line: one parser for every command, and the exit-code contract.

Each command's module adds its parser and handler. ``main`` turns whatever a handler raises
into a one-line message and the documented exit code (``agent.exits``), never a traceback:
2 for what the user can fix (usage, input, a file that cannot be read or written), 4 for a
bug in lappguard, and never 1, which means "findings".
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from collections.abc import Sequence

from agent import exits
from agent.state import StateError
from checks.yamlsource import InputError


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["scan"]:  # scan writes its report itself, pipes and full disks too
        return _run(arguments)
    stdout = sys.stdout
    sys.stdout = ReaderMayLeave(stdout)  # type: ignore[assignment]
    try:
        return _run(arguments)
    finally:
        sys.stdout = stdout


def _run(arguments: list[str]) -> int:
    try:
        # `lappguard scan` builds only its own parser: the audit side's imports (check
        # types, reports, psutil) would take longer than scanning a small log
        parser = _scan_only_parser() if arguments[:1] == ["scan"] else build_parser()
        args = parser.parse_args(arguments)
        if not getattr(args, "handler", None):
            parser.print_help(sys.stderr)
            return exits.USAGE
        code = args.handler(args)
        if sys.stdout is not None:  # None: started with stdout closed (scan reports that)
            sys.stdout.flush()
        return code
    except InputError as exc:
        for problem in exc.problems:
            _say(str(problem))
        return exits.USAGE
    except StateError as exc:
        _say(str(exc))
        return exits.USAGE
    except OSError as exc:  # a file or device the command was pointed at
        _say(describe_os_error(exc))
        return exits.USAGE
    except KeyboardInterrupt:
        _say("interrupted")
        return exits.INTERRUPTED
    except Exception as exc:  # a bug: say so in one line, the traceback only when asked
        if os.environ.get(exits.DEBUG_VARIABLE):
            traceback.print_exc()
        _say(
            f"internal error: {type(exc).__name__}: {exc} (a bug in lappguard; "
            f"{exits.DEBUG_VARIABLE}=1 prints the traceback)"
        )
        return exits.INTERNAL


def describe_os_error(exc: OSError) -> str:
    """``/x/report.json: No such file or directory``: the file and why, without an errno."""
    reason = exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def _say(message: str) -> None:
    """One line on stderr, whatever the message holds (a file name, an exception text)."""
    from checks.visible import visible

    print(f"lappguard: {visible(message)}", file=sys.stderr)


class ReaderMayLeave:
    """stdout that outlives its reader. When the reader goes away (``lappguard audit | head``)
    the rest of the output is dropped and the command finishes, keeping its exit code:
    a pipeline must still see the findings code. Started with stdout closed (``>&-``,
    Python's None), writing is an error the command reports (exit 2), not a crash."""

    def __init__(self, stream: object | None) -> None:
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if self._stream is None:
            raise OSError(errno.EBADF, "standard output is closed")
        if not self._gone:
            try:
                return self._stream.write(text)  # type: ignore[attr-defined]
            except BrokenPipeError:
                self._leave()
        return len(text)

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()  # type: ignore[attr-defined]

    def flush(self) -> None:
        if self._stream is not None and not self._gone:
            try:
                self._stream.flush()  # type: ignore[attr-defined]
            except BrokenPipeError:
                self._leave()

    def _leave(self) -> None:
        """Point the descriptor at /dev/null, so the interpreter's last flush of what is
        still buffered cannot fail (Python would print a traceback and exit 120)."""
        self._gone = True
        try:
            fd = self._stream.fileno()  # type: ignore[attr-defined]
            devnull = os.open(os.devnull, os.O_WRONLY)
        except (OSError, ValueError, AttributeError):
            return  # not a real file (a test's capture): nothing is flushed at exit
        os.dup2(devnull, fd)
        os.close(devnull)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def build_parser() -> argparse.ArgumentParser:
    from agent.commands import audit, bans, explain, policy, run
    from agent.commands.helptext import decorate

    parser = _top_parser()
    commands = parser.add_subparsers(metavar="COMMAND", title="commands")
    audit.add_commands(commands)
    policy.add_commands(commands)
    explain.add_commands(commands)
    _add_scan_command(commands)
    bans.add_commands(commands)
    run.add_commands(commands)
    decorate(parser)
    return parser


def _top_parser() -> argparse.ArgumentParser:
    from agent import __version__

    parser = argparse.ArgumentParser(
        prog="lappguard",
        description="Security hardening audits and attack monitoring for LAPP servers.",
    )
    parser.add_argument("--version", action="version", version=f"lappguard {__version__}")
    return parser


def _scan_only_parser() -> argparse.ArgumentParser:
    parser = _top_parser()
    _add_scan_command(parser.add_subparsers(metavar="COMMAND"))
    return parser


def _add_scan_command(commands: argparse._SubParsersAction) -> None:
    try:
        from agent import scan
    except ImportError:
        return
    from agent.commands.helptext import HELP, epilog

    parser = commands.add_parser(
        "scan",
        help="run detection offline over log files (like fail2ban-regex)",
        description="Run detection offline over log files (like fail2ban-regex).",
        epilog=epilog(HELP["scan"]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_scan_arguments(parser)
    parser.set_defaults(handler=scan.run_scan)


if __name__ == "__main__":
    sys.exit(main())
