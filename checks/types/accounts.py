"""Password policy: pam_pwquality in the PAM password stack with length and class rules."""

from __future__ import annotations

import re

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.lines import C_SPACE, numbered
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType

CLASS_CREDITS = {"upper": "ucredit", "lower": "lcredit", "digit": "dcredit", "other": "ocredit"}


class PwqualityCheck(CheckType):
    """pam_pwquality enforces ``min_length`` and requires each class in ``require``.

    Settings come from pwquality.conf, then pwquality.conf.d/*.conf, then the module's
    arguments in the PAM stack, each later source overriding the earlier (libpwquality's
    order). A class is required when its credit is negative (``ucredit=-1``).
    """

    name = "pwquality"
    schema = {
        "min_length": Param("int", default=8),
        "require": Param("str_list", default=("upper", "lower", "digit")),
        "pam_file": Param("str", default="/etc/pam.d/common-password"),
        "conf": Param("str", default="/etc/security/pwquality.conf"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        unknown = [c for c in p["require"] if c not in CLASS_CREDITS]
        if unknown:
            return errored(
                f"unknown character class {unknown[0]!r} (known: {', '.join(CLASS_CREDITS)})"
            )
        try:
            pam_line, pam_args = _pam_pwquality(ctx, p["pam_file"])
        except HostError as exc:
            return errored(f"cannot read the PAM password stack: {exc}")
        if pam_line is None:
            return failed(f"{p['pam_file']}: pam_pwquality.so is not in the password stack")
        settings: dict[str, tuple[str, str]] = {}
        for path in [p["conf"], *ctx.host.glob(p["conf"] + ".d/*.conf")]:
            try:
                text = ctx.host.read_text(path)
            except HostError:
                if ctx.host.lexists(path):
                    return errored(f"cannot read {path}")
                continue
            for number, line in numbered(text):  # libpwquality: fgets(), isspace()
                key, sep, value = line.split("#", 1)[0].partition("=")
                if sep and key.strip(C_SPACE):
                    settings[key.strip(C_SPACE)] = (value.strip(C_SPACE), f"{path}:{number}")
        for key, value in pam_args.items():
            settings[key] = (value, pam_line)

        evidence, problems = [pam_line], []
        minlen = _int(settings.get("minlen", ("8", "default"))[0])
        source = settings.get("minlen", ("8", "libpwquality default"))[1]
        if minlen is None or minlen < p["min_length"]:
            problems.append(
                f"minlen {settings.get('minlen', ('8',))[0]} ({source}) < {p['min_length']}"
            )
        else:
            evidence.append(f"minlen {minlen} ({source})")
        for klass in p["require"]:
            key = CLASS_CREDITS[klass]
            value, where = settings.get(key, ("0", "default"))
            credit = _int(value)
            if credit is None or credit >= 0:
                problems.append(f"{klass} not required: {key}={value} ({where}); set {key}=-1")
            else:
                evidence.append(f"{key}={value} ({where})")
        return failed(*problems, *evidence) if problems else passed(*evidence)


def _pam_pwquality(ctx: CheckContext, pam_file: str) -> tuple[str | None, dict[str, str]]:
    text = ctx.host.read_text(pam_file)
    for number, raw in numbered(text):  # libpam: LF-ended lines, C whitespace
        fields = [f for f in re.split(r"[ \t\n\v\f\r]+", raw.split("#", 1)[0]) if f]
        if len(fields) < 3 or fields[0].lstrip("-") != "password":
            continue
        control_end = 2
        if fields[1].startswith("["):  # [success=1 default=ignore] may span fields
            while control_end < len(fields) and not fields[control_end - 1].endswith("]"):
                control_end += 1
        module = fields[control_end] if control_end < len(fields) else ""
        if module.rsplit("/", 1)[-1] == "pam_pwquality.so":
            args = dict(
                (arg.partition("=")[0], arg.partition("=")[2]) for arg in fields[control_end + 1 :]
            )
            return f"{pam_file}:{number}: {raw.strip(C_SPACE)}", args
    return None, {}


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None
