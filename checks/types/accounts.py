"""Accounts: the password policy (pam_pwquality), the account databases, home directories,
login.defs and the password asked in single-user mode."""

from __future__ import annotations

import re

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.accounts import DATABASES, Entry, malformed, read_database
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


# --- the account databases ---------------------------------------------------------------------

#: Hash prefixes crypt(5) documents as strong: yescrypt, gost-yescrypt, scrypt, SHA-512
#: and SHA-256 crypt. MD5 ($1$), bcrypt variants and DES are refused (Lynis AUTH-9229).
STRONG_HASHES = ("$y$", "$gy$", "$7$", "$6$", "$5$")
ACCOUNT_ASPECTS = (
    "uid0",
    "duplicate_ids",
    "duplicate_names",
    "empty_passwords",
    "legacy_entries",
    "hash_methods",
    "consistency",
    "password_expiry",
    "expired_passwords",
    "locked_accounts",
)
#: User accounts as Lynis AUTH-9284 counts them: UID 1000 and up, but nobody.
LOGIN_UID_MIN, NOBODY_UID = 1000, 65534


class AccountsCheck(CheckType):
    """One property of /etc/passwd, /etc/shadow, /etc/group and /etc/gshadow (``aspect``):

    - ``uid0``: no account but root has UID 0;
    - ``duplicate_ids``: no two accounts share a UID, no two groups a GID;
    - ``duplicate_names``: no name appears twice in any of the four files;
    - ``empty_passwords``: no account has an empty password field (passwd or shadow);
    - ``legacy_entries``: no NIS ``+``/``-`` compat line, which can admit unknown accounts;
    - ``hash_methods``: every password hash is yescrypt or SHA-crypt;
    - ``consistency``: every line is well formed, every account has a shadow entry and every
      group a gshadow entry (and none without the other), as pwck and grpck require;
    - ``password_expiry``: every account with a usable password has a maximum age of at
      most ``max_days``;
    - ``expired_passwords``: no usable password is past its maximum age (on the audit's day);
    - ``locked_accounts``: no user account (UID 1000 and up, not nobody) has a password that
      was locked (``!`` before a hash, as ``passwd -l`` leaves it) while the account itself
      is not expired: ``passwd -l`` does not stop SSH keys (Debian's sshd leaves locking to
      PAM, which does not read ``!``), so such an account looks disabled and is not.
    """

    name = "accounts"
    schema = {
        "aspect": Param("choice", required=True, choices=ACCOUNT_ASPECTS),
        "max_days": Param("int", default=365, help="password_expiry: longest maximum age"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            db = ctx.memo(("accounts",), lambda: _read_all(ctx))
        except HostError as exc:
            return errored(f"cannot read the account databases: {exc}")
        aspect = self.params["aspect"]
        if aspect in ("expired_passwords", "locked_accounts"):
            problems = getattr(self, f"_{aspect}")(db, int(ctx.clock() // 86400))
        else:
            problems = getattr(self, f"_{aspect}")(db)
        counts = ", ".join(f"{len(entries)} in /etc/{name}" for name, entries in db.items())
        return failed(*problems) if problems else passed(f"{aspect.replace('_', ' ')}: {counts}")

    def _uid0(self, db: dict[str, list[Entry]]) -> list[str]:
        return [
            f"{e}: UID 0 but not root"
            for e in _real(db["passwd"])
            if len(e.fields) > 2 and e.fields[2] == "0" and e.name != "root"
        ]

    def _duplicate_ids(self, db: dict[str, list[Entry]]) -> list[str]:
        return _duplicates(db["passwd"], 2, "UID") + _duplicates(db["group"], 2, "GID")

    def _duplicate_names(self, db: dict[str, list[Entry]]) -> list[str]:
        return [p for name in DATABASES for p in _duplicates(db[name], 0, "name")]

    def _empty_passwords(self, db: dict[str, list[Entry]]) -> list[str]:
        return [
            f"{e}: empty password field (anyone may log in as {e.name})"
            for name in ("passwd", "shadow")
            for e in _real(db[name])
            if len(e.fields) > 1 and e.fields[1] == ""
        ]

    def _legacy_entries(self, db: dict[str, list[Entry]]) -> list[str]:
        return [f"{e}: NIS compat entry" for name in DATABASES for e in db[name] if e.legacy]

    def _hash_methods(self, db: dict[str, list[Entry]]) -> list[str]:
        problems = []
        for e in _real(db["shadow"]):
            field = e.fields[1] if len(e.fields) > 1 else ""
            hashed = field.lstrip("!")
            if hashed.startswith("$") and not hashed.startswith(STRONG_HASHES):
                method = hashed.split("$")[1] if hashed.count("$") > 1 else "?"
                problems.append(f"{e}: weak hash method ${method}$")
            elif hashed and not hashed.startswith(("$", "*", "x")) and len(hashed) == 13:
                problems.append(f"{e}: DES crypt hash")
        return problems

    def _consistency(self, db: dict[str, list[Entry]]) -> list[str]:
        problems = [p for name in DATABASES for e in db[name] if (p := malformed(e, name))]
        for main, shadow in (("passwd", "shadow"), ("group", "gshadow")):
            names = {e.name for e in _real(db[main])}
            shadowed = {e.name for e in _real(db[shadow])}
            problems += [f"{e}: no /etc/{shadow} entry" for e in _real(db[main])
                         if e.name not in shadowed]  # fmt: skip
            problems += [f"{e}: no /etc/{main} entry" for e in _real(db[shadow])
                         if e.name not in names]  # fmt: skip
        return problems

    def _password_expiry(self, db: dict[str, list[Entry]]) -> list[str]:
        limit = self.params["max_days"]
        problems = []
        for e in _usable_passwords(db):
            maximum = e.fields[4] if len(e.fields) > 4 else ""
            if not maximum.isdigit() or int(maximum) > limit:
                shown = maximum or "none"
                problems.append(f"{e}: password maximum age {shown} (at most {limit} wanted)")
        return problems

    def _expired_passwords(self, db: dict[str, list[Entry]], today: int) -> list[str]:
        problems = []
        for e in _usable_passwords(db):
            changed, maximum = e.fields[2], e.fields[4] if len(e.fields) > 4 else ""
            if changed.isdigit() and maximum.isdigit() and int(changed) + int(maximum) < today:
                since = today - int(changed) - int(maximum)
                problems.append(f"{e}: password expired {since} days ago (changed on day "
                                f"{changed}, maximum age {maximum})")  # fmt: skip
        return problems

    def _locked_accounts(self, db: dict[str, list[Entry]], today: int) -> list[str]:
        shadow = {e.name: e for e in _real(db["shadow"])}
        problems = []
        for account in _real(db["passwd"]):
            uid = account.fields[2] if len(account.fields) > 2 else ""
            if not uid.isdigit() or int(uid) < LOGIN_UID_MIN or int(uid) == NOBODY_UID:
                continue
            entry = shadow.get(account.name, account)
            password = entry.fields[1] if len(entry.fields) > 1 else ""
            if not password.startswith("!") or not password.lstrip("!"):
                continue  # usable, or never had one ("!", "*": a key-only account)
            if password.lstrip("!").startswith("*"):
                continue
            expires = entry.fields[7] if entry is not account and len(entry.fields) > 7 else ""
            if expires.isdigit() and int(expires) <= today:
                continue  # expired: neither a password nor a key logs it in
            until = f"expires on day {expires}" if expires.isdigit() else "never expires"
            problems.append(
                f"{entry}: password locked ({password[:4]}...) but the account {until}: "
                f"an SSH key still logs it in (usermod --expiredate 1 {account.name})"
            )
        return problems


def _usable_passwords(db: dict[str, list[Entry]]) -> list[Entry]:
    """shadow entries whose password can log in: a hash, not locked (!) or disabled (*)."""
    return [e for e in _real(db["shadow"]) if len(e.fields) > 1 and e.fields[1][:1] == "$"]


def _read_all(ctx: CheckContext) -> dict[str, list[Entry]]:
    return {name: read_database(ctx.host, name) for name in DATABASES}


def _real(entries: list[Entry]) -> list[Entry]:
    return [e for e in entries if not e.legacy]


def _duplicates(entries: list[Entry], index: int, what: str) -> list[str]:
    seen: dict[str, Entry] = {}
    found = []
    for e in _real(entries):
        if len(e.fields) <= index:
            continue
        key = e.fields[index]
        if key in seen:
            found.append(f"{e}: {what} {key} also at {seen[key]}")
        else:
            seen[key] = e
    return found


# --- home directories -------------------------------------------------------------------------


class HomeDirsCheck(CheckType):
    """Every login account's home directory (UID ``min_uid`` and up, shell not nologin) is
    owned by its account and grants nothing beyond ``mode_max``."""

    name = "home_dirs"
    schema = {
        "min_uid": Param("int", default=1000),
        "mode_max": Param("mode", default=0o750),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            entries = read_database(ctx.host, "passwd")
        except HostError as exc:
            return errored(f"cannot read /etc/passwd: {exc}")
        problems, good = [], []
        for e in _real(entries):
            if malformed(e, "passwd") or int(e.fields[2]) < self.params["min_uid"]:
                continue
            if e.fields[6].endswith(("nologin", "/false")) or int(e.fields[2]) == 65534:
                continue
            home = e.fields[5]
            try:
                info = ctx.host.stat(home)
            except HostError:
                continue  # no home directory: nothing to expose
            wrong = []
            if info.mode & ~self.params["mode_max"]:
                wrong.append(f"mode {info.mode:04o} exceeds {self.params['mode_max']:04o}")
            if str(info.uid) != e.fields[2]:
                wrong.append(f"owned by {info.owner}, not {e.name}")
            line = f"{home} ({e.name}): {info.mode:04o} {info.owner}:{info.group}"
            (problems if wrong else good).append(f"{line} ({'; '.join(wrong)})" if wrong else line)
        if problems:
            return failed(*problems, *good)
        return passed(*good) if good else passed("no login account has a home directory")


class HistoryFilesCheck(CheckType):
    """Shell history files in login accounts' homes are regular files: a link to /dev/null
    or a FIFO there is how an intruder keeps commands out of the record."""

    name = "history_files"
    schema = {"min_uid": Param("int", default=1000)}

    def run(self, ctx: CheckContext) -> Verdict:
        try:
            entries = read_database(ctx.host, "passwd")
        except HostError as exc:
            return errored(f"cannot read /etc/passwd: {exc}")
        homes = {"/root"}
        for e in _real(entries):
            if not malformed(e, "passwd") and int(e.fields[2]) >= self.params["min_uid"]:
                homes.add(e.fields[5])
        problems, seen = [], []
        for home in sorted(homes):
            for path in ctx.host.glob(f"{home}/.*history"):
                info = ctx.host.stat(path, follow_symlinks=False)
                if info.is_file:
                    seen.append(path)
                    continue
                kind = f"a link to {ctx.host.readlink(path)}" if info.is_link else "not a file"
                problems.append(f"{path}: {kind}")
        if problems:
            return failed(*problems)
        return passed(
            f"{len(seen)} history file(s), all regular files"
            if seen
            else "no shell history file in root's or login accounts' homes"
        )


# --- login.defs and single-user mode -----------------------------------------------------------


def login_defs(ctx: CheckContext) -> dict[str, tuple[str, str]]:
    """KEY -> (value, file:line) from /etc/login.defs; the last line for a key wins, as the
    shadow suite's getdef reads it."""
    values: dict[str, tuple[str, str]] = {}
    for number, line in numbered(ctx.host.read_text("/etc/login.defs")):
        words = line.split("#", 1)[0].split(None, 1)
        if len(words) == 2:
            values[words[0]] = (words[1].strip(C_SPACE).strip('"'), f"/etc/login.defs:{number}")
    return values


class LoginDefsCheck(CheckType):
    """Each of ``keys`` that /etc/login.defs sets meets ``expect``; with none set, ``default``
    is judged (no default: the check fails, the setting is missing)."""

    name = "login_defs"
    schema = {
        "keys": Param("str_list", required=True),
        "expect": Param("expect", required=True),
        "default": Param("str", help="the shadow suite's value when no key is set"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        try:
            defs = ctx.memo(("login.defs",), lambda: login_defs(ctx))
        except HostError as exc:
            return errored(f"cannot read /etc/login.defs: {exc}")
        found = [(key, *defs[key]) for key in p["keys"] if key in defs]
        if not found:
            if p["default"] is None:
                return failed(f"{' and '.join(p['keys'])} not set in /etc/login.defs")
            found = [(p["keys"][0], p["default"], "default")]
        problems, good = [], []
        for key, value, where in found:
            violation = p["expect"].violation(value)
            line = f"{key} {value} ({where})"
            (problems if violation else good).append(f"{line}: {violation}" if violation else line)
        return failed(*problems, *good) if problems else passed(*good)


#: Where systemd looks for unit files, first found wins.
UNIT_PATHS = ("/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system",
              "/lib/systemd/system")  # fmt: skip


class SingleUserLoginCheck(CheckType):
    """The rescue and emergency units ask for root's password: the ExecStart that systemd
    uses (the unit file found first, then its drop-ins in order) runs sulogin."""

    name = "single_user_login"
    schema = {"units": Param("str_list", default=("rescue.service", "emergency.service"))}

    def run(self, ctx: CheckContext) -> Verdict:
        problems, good = [], []
        for unit in self.params["units"]:
            files = [f"{d}/{unit}" for d in UNIT_PATHS if ctx.host.exists(f"{d}/{unit}")][:1]
            drop_ins = sorted(
                {path.rsplit("/", 1)[1]: path for d in reversed(UNIT_PATHS)
                 for path in ctx.host.glob(f"{d}/{unit}.d/*.conf")}.items()
            )  # fmt: skip
            if not files:
                continue  # no such unit: nothing boots into it
            command = where = ""
            for path in [*files, *(p for _, p in drop_ins)]:
                try:
                    text = ctx.host.read_text(path)
                except HostError as exc:
                    return errored(f"cannot read {path}", str(exc))
                for number, line in numbered(text):
                    key, sep, value = line.strip(C_SPACE).partition("=")
                    if sep and key.strip() == "ExecStart" and value.strip():
                        command, where = value.strip(), f"{path}:{number}"
            shown = f"{unit}: ExecStart={command} ({where})" if where else f"{unit}: no ExecStart"
            (good if "sulogin" in command else problems).append(shown)
        if not problems and not good:
            return passed("neither rescue nor emergency unit exists")
        return failed(*problems, *good) if problems else passed(*good)
