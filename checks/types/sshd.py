"""sshd checks: a keyword's value (files or ``sshd -T``), the auth mode, network restriction.

``sshd -T`` is the truth when it can run (it applies Include, Match, defaults and the
build's own quirks); the file parser is the fallback and always names the file:line a
value comes from. Connection specs default to an outside client, because that is who the
hardening is for.
"""

from __future__ import annotations

import ipaddress
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from checks.expect import Expectation
from checks.hosts import HostError, PlannedCommand
from checks.params import Param
from checks.parsers.firewall_rules import AddressSet
from checks.parsers.origin import Origin
from checks.parsers.sshd import (
    DEFAULT_CONFIG,
    ConnectionSpec,
    Directive,
    EffectiveSshd,
    SshdConfig,
    SshdUnavailable,
    canonical_keyword,
    listen_host,
    listen_port,
    match_host_and_ip,
    normalize_values,
    parse_cidr,
    parse_sshd_config,
    run_sshd_t,
    sshd_t_command,
    user_groups,
)
from checks.result import Verdict, errored, failed, passed
from checks.types.base import CheckContext, CheckType
from checks.types.firewall import firewall_state
from checks.variables import how_to_set

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
RELOAD = '"sshd -t && systemctl reload ssh"'
#: Documentation addresses (RFC 5737, RFC 3849): never anyone's office.
OUTSIDE_PROBES = ("192.0.2.10", "2001:db8::10")
_METHOD_SWITCHES = {
    "publickey": "pubkeyauthentication",
    "password": "passwordauthentication",
    "keyboard-interactive": "kbdinteractiveauthentication",
    "hostbased": "hostbasedauthentication",
    "gssapi-with-mic": "gssapiauthentication",
}

SPEC_SCHEMA = {
    "config": Param("str", default=DEFAULT_CONFIG, help="sshd_config path (sshd -f)"),
    "user": Param("str", default=ConnectionSpec.user, help="connecting user"),
    "host": Param("str", default=ConnectionSpec.host, help="client host name"),
    "addr": Param("str", default=ConnectionSpec.addr, help="client address"),
    "laddr": Param("str", help="local address the client connects to"),
    "lport": Param("int", help="local port the client connects to"),
}


#: The client every check's ``sshd -T`` is asked about when the answer is the same for all.
SHARED_CLIENT = ConnectionSpec()

#: The office networks said in a message when the policy sets none.
OFFICE_EXAMPLE = "198.51.100.0/24,2001:db8:1::/48"

# --- shared facts ----------------------------------------------------------------------------


def parsed_config(ctx: CheckContext, path: str) -> SshdConfig:
    """sshd_config and its includes, parsed once per audit."""
    return ctx.memo(("sshd_config", path), lambda: parse_sshd_config(ctx.host, path))


def connection_spec(ctx: CheckContext, params: dict[str, Any]) -> ConnectionSpec:
    """The spec from a check's params; groups come from the host for ``Match Group``."""
    user = params["user"]
    groups = ctx.memo(("user_groups", user), lambda: user_groups(ctx.host, user))
    return replace(_spec_without_groups(params), groups=groups)


def _spec_without_groups(params: dict[str, Any]) -> ConnectionSpec:
    """The spec as ``sshd -T -C`` takes it (sshd looks the groups up itself)."""
    return ConnectionSpec(**{k: params[k] for k in ("user", "host", "addr", "laddr", "lport")})


def sshd_t_for(ctx: CheckContext, path: str, spec: ConnectionSpec) -> ConnectionSpec:
    """The client ``sshd -T`` is asked about for ``spec``: SHARED_CLIENT when the
    configuration is the same for every client, so one run (~15 ms of the host's CPU)
    answers every check; else ``spec`` itself, as when the files cannot be read."""
    try:
        same = parsed_config(ctx, path).same_for_every_client
    except HostError:
        return spec
    return SHARED_CLIENT if same else spec


def sshd_t_commands(
    ctx: CheckContext, path: str, specs: Sequence[ConnectionSpec]
) -> list[PlannedCommand]:
    """The ``sshd -T`` runs that answer ``specs`` (``CheckType.commands``), once each."""
    return list(dict.fromkeys(sshd_t_command(path, sshd_t_for(ctx, path, s)) for s in specs))


class AsksDefaultClient:
    """Mixed into the checks that judge ``sshd -T`` for the default outside client."""

    params: dict[str, Any]

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return sshd_t_commands(ctx, self.params["config"], [ConnectionSpec()])


def effective_config(ctx: CheckContext, path: str, spec: ConnectionSpec) -> EffectiveSshd:
    """``sshd -T`` when it can run, else the parsed files (for ``spec``) with a note saying
    why. When sshd -T was asked about another client (``sshd_t_for``), a note says so.

    Raises HostError when neither works (the config file cannot be read).
    """
    asked = sshd_t_for(ctx, path, spec)
    try:
        view = ctx.memo(("sshd -T", path, asked), lambda: run_sshd_t(ctx.host, path, asked))
    except SshdUnavailable as exc:
        view = parsed_config(ctx, path).effective(spec)
        return replace(
            view, notes=(f"sshd -T not used ({exc}): values from the files", *view.notes)
        )
    if asked.test_argument() == spec.test_argument():
        return view
    shared = (
        f"sshd -T was asked about the client {asked}: {path} and its includes have no Match "
        "block, so its answer holds for every client"
    )
    return replace(view, notes=(shared, *view.notes))


def _located(
    ctx: CheckContext, path: str, view: EffectiveSshd, keyword: str, spec: ConnectionSpec | None
) -> str:
    """The setting as evidence, with the file:line that sets it when sshd -T agrees."""
    setting = view.get(keyword)
    if setting is None:
        return f"{keyword} not set (no compiled-in default known without sshd -T)"
    if setting.source != "sshd -T":
        return str(setting)
    try:
        from_files = parsed_config(ctx, path).resolve(keyword, spec)
    except HostError:
        return str(setting)
    if from_files is None or not _same(from_files.values, setting.values):
        return str(setting)
    where = f"set at {from_files.where}" if from_files.origins else from_files.where
    return f"{setting.keyword} {setting.text} (sshd -T; {where})"


def match_block_settings(ctx: CheckContext, path: str) -> list[tuple[Directive, str]]:
    """Every directive inside a Match block, with its value as sshd -T would spell it."""
    try:
        config = parsed_config(ctx, path)
    except HostError:
        return []  # the check itself reports an unreadable file
    return [
        (d, " ".join(normalize_values(d.keyword, d.args))) for d in config.directives if d.blocks
    ]


def in_block(directive: Directive, value: str) -> str:
    """Evidence naming the Match block (file:line) and the line inside it."""
    block = directive.blocks[-1]
    return f"{block.text} ({block.origin}) sets {directive.keyword} {value} ({directive.origin})"


def change_lines(ctx: CheckContext, changes: list[tuple[Origin, str | None]]) -> str:
    """A fix naming each line to change and the value to give it ('' when there is none)."""
    if not changes:
        return ""
    parts = []
    for origin, wanted in dict.fromkeys(changes):
        written = _written(ctx, origin)
        keyword = written.split(" ", 1)[0]
        to = f'"{keyword} {wanted}"' if wanted and keyword else "a value the check accepts"
        parts.append(f'{origin} ("{written}") to {to}')
    return (
        f"Change {' and '.join(parts)}: sshd keeps the first value it reads (and a Match "
        f"block's for the clients it matches), so a line added to a file read later cannot "
        f"override it; then {RELOAD}."
    )


def _written(ctx: CheckContext, origin: Origin) -> str:
    """A configuration line as the file spells it (the keyword's case included)."""
    try:
        lines = ctx.host.read_text(origin.file).splitlines()
    except HostError:
        return ""
    return " ".join(lines[origin.line - 1].split()) if 0 < origin.line <= len(lines) else ""


def _wanted(expect: Expectation) -> str | None:
    """A value that meets ``expect``, for a fix to write: the first one it names."""
    if expect.equals is not None:
        return expect.equals
    if expect.one_of:
        return expect.one_of[0]
    bound = expect.max if expect.max is not None else expect.min
    return None if bound is None else f"{bound:g}"


def _same(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return [v.casefold() for v in a] == [v.casefold() for v in b]


# --- sshd_config / sshd_effective ------------------------------------------------------------


class _KeywordCheck(CheckType):
    """A keyword's value for a connection spec, tested by ``expect``.

    With ``match_blocks`` (default) a value set inside ANY Match block is judged too, so a
    ``Match Address 10.0.0.0/8`` that turns passwords back on fails, whoever it is for.
    """

    schema = {
        "keyword": Param("str", required=True),
        "expect": Param("expect", required=True),
        "match_blocks": Param("bool", default=True, help="also judge values in Match blocks"),
        **SPEC_SCHEMA,
    }

    @abstractmethod
    def view(self, ctx: CheckContext, spec: ConnectionSpec) -> EffectiveSshd: ...

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        spec = connection_spec(ctx, p)
        try:
            view = self.view(ctx, spec)
        except HostError as exc:
            return errored(f"cannot read {p['config']}: {exc}")
        setting = view.get(p["keyword"])
        violation = p["expect"].violation(setting.text if setting else None)
        evidence = [_located(ctx, p["config"], view, p["keyword"], spec)]
        bad_blocks = self._match_block_violations(ctx) if p["match_blocks"] else []
        notes = [f"note: {n}" for n in view.notes]
        if not violation and not bad_blocks:
            return passed(*evidence, *notes)
        fix = self._fix(ctx, spec if violation else None)
        if violation:
            head = f"{evidence[0]}: {violation} [for {spec}]"
            return failed(head, *bad_blocks, *notes, remediation=fix)
        return failed(*bad_blocks, *evidence, *notes, remediation=fix)

    def _match_block_violations(self, ctx: CheckContext) -> list[str]:
        return [
            f"{in_block(directive, value)}: {self.params['expect'].violation(value)}"
            for directive, value in self._bad_block_lines(ctx)
        ]

    def _bad_block_lines(self, ctx: CheckContext) -> list[tuple[Directive, str]]:
        keyword = canonical_keyword(self.params["keyword"])
        return [
            (directive, value)
            for directive, value in match_block_settings(ctx, self.params["config"])
            if directive.keyword == keyword and self.params["expect"].violation(value)
        ]

    def _fix(self, ctx: CheckContext, spec: ConnectionSpec | None) -> str:
        """A fix naming the lines to change when the files show them (the line that gives
        the failing value to ``spec``, bad lines in Match blocks); '' when the value is sshd's
        built-in default, where the policy's fix (add a line) is the right one."""
        p = self.params
        lines = [d.origin for d, _ in self._bad_block_lines(ctx)] if p["match_blocks"] else []
        if spec is not None:
            try:
                setting = parsed_config(ctx, p["config"]).resolve(p["keyword"], spec)
            except HostError:
                setting = None
            if setting is not None and setting.origins and p["expect"].violation(setting.text):
                lines.insert(0, setting.origins[0])
        wanted = _wanted(p["expect"])
        return change_lines(ctx, [(line, wanted) for line in lines])


class SshdConfigCheck(_KeywordCheck):
    """The value sshd_config (with includes, Match and defaults) gives ``keyword``."""

    name = "sshd_config"

    def view(self, ctx: CheckContext, spec: ConnectionSpec) -> EffectiveSshd:
        return parsed_config(ctx, self.params["config"]).effective(spec)


class SshdEffectiveCheck(_KeywordCheck):
    """The value the running sshd would use (``sshd -T -C``), falling back to the files."""

    name = "sshd_effective"

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return sshd_t_commands(ctx, self.params["config"], [_spec_without_groups(self.params)])

    def view(self, ctx: CheckContext, spec: ConnectionSpec) -> EffectiveSshd:
        return effective_config(ctx, self.params["config"], spec)


# --- authentication mode ---------------------------------------------------------------------


def auth_paths(view: EffectiveSshd) -> list[tuple[str, ...]]:
    """Every way to log in: method lists whose methods are all enabled."""
    enabled = {m for m, switch in _METHOD_SWITCHES.items() if view.first(switch) == "yes"}
    methods = view.values("authenticationmethods")
    if not methods or [m.lower() for m in methods] == ["any"]:
        return [(m,) for m in sorted(enabled)]
    paths = []
    for alternative in methods:
        needed = tuple(m.split(":", 1)[0].lower() for m in alternative.split(","))
        if all(m in enabled for m in needed):
            paths.append(needed)
    return paths


class SshdAuthModeCheck(CheckType):
    """Logins need a key (``ssh_auth: keys``) or a CA-signed certificate (``certificates``).

    keys: every usable authentication path includes publickey. certificates: the same, and
    keys come only from the CA (TrustedUserCAKeys set, AuthorizedKeysFile and
    AuthorizedKeysCommand none). The mode is the policy variable ``ssh_auth``. Judged for
    the connection spec, and a Match block that opens another way in (for anyone) fails too.
    """

    name = "sshd_auth_mode"
    schema = SPEC_SCHEMA

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        return sshd_t_commands(ctx, self.params["config"], [_spec_without_groups(self.params)])

    def run(self, ctx: CheckContext) -> Verdict:
        mode = ctx.variables.get("ssh_auth")
        if mode not in ("keys", "certificates"):
            return errored(
                f"the policy variable ssh_auth is {mode!r}, not keys or certificates: set it "
                f"with {how_to_set('ssh_auth', 'keys')}"
            )
        p = self.params
        spec = connection_spec(ctx, p)
        try:
            view = effective_config(ctx, p["config"], spec)
        except HostError as exc:
            return errored(f"cannot read {p['config']}: {exc}")

        def where(keyword: str) -> str:
            return _located(ctx, p["config"], view, keyword, spec)

        problems = []
        for path in auth_paths(view):
            if "publickey" not in path:
                switches = [_METHOD_SWITCHES[m] for m in path]
                problems.append(
                    f"login possible with {'+'.join(path)} only: "
                    + "; ".join(where(s) for s in switches)
                )
        if problems and view.first("authenticationmethods") not in (None, "any"):
            problems.append(where("authenticationmethods"))
        evidence = [where(k) for k in ("pubkeyauthentication", "passwordauthentication")]
        evidence.append(where("kbdinteractiveauthentication"))
        if mode == "certificates":
            ca = view.first("trustedusercakeys")
            if ca in (None, "none"):
                problems.append(f"{where('trustedusercakeys')}: no user CA is trusted")
            for keyword in ("authorizedkeysfile", "authorizedkeyscommand"):
                if view.first(keyword) not in ("none",) or len(view.values(keyword)) != 1:
                    problems.append(f"{where(keyword)}: keys outside the CA are accepted")
                else:
                    evidence.append(where(keyword))
            evidence.append(where("trustedusercakeys"))
        problems.extend(_auth_in_blocks(ctx, p["config"], mode))
        notes = [f"note: {n}" for n in view.notes]
        if problems:
            # certificates: the CA settings need the policy's fix too
            fix = _keyless_fix(ctx, p["config"], spec, view) if mode == "keys" else ""
            return failed(*problems, *notes, remediation=fix)
        return passed(f"ssh_auth={mode} holds for {spec}", *evidence, *notes)


def _keyless_fix(ctx: CheckContext, path: str, spec: ConnectionSpec, view: EffectiveSshd) -> str:
    """When a file line turns on each method other than publickey that is on, a fix naming
    those lines (each changed to ``no``); '' when one is on by sshd's default, where the
    policy's fix (add the lines) is the one that works."""
    try:
        config = parsed_config(ctx, path)
    except HostError:
        return ""
    lines = []
    for method, switch in _METHOD_SWITCHES.items():
        if method == "publickey" or view.first(switch) != "yes":
            continue
        setting = config.resolve(switch, spec)
        if setting is None or not setting.origins or setting.text.lower() != "yes":
            return ""
        lines.append(setting.origins[0])
    non_key = {s for m, s in _METHOD_SWITCHES.items() if m != "publickey"}
    lines += [d.origin for d, value in match_block_settings(ctx, path)
              if d.keyword in non_key and value.lower() == "yes"]  # fmt: skip
    return change_lines(ctx, [(line, "no") for line in lines])


def _auth_in_blocks(ctx: CheckContext, path: str, mode: str) -> list[str]:
    """Match-block settings that let someone in without a key (or, for certificates, with a
    key the CA did not sign)."""
    found = []
    non_key = {s for m, s in _METHOD_SWITCHES.items() if m != "publickey"}
    key_sources = ("authorizedkeysfile", "authorizedkeyscommand")
    for directive, value in match_block_settings(ctx, path):
        keyword, lowered = directive.keyword, value.lower()
        if keyword in non_key and lowered == "yes":
            why = "not a key"
        elif keyword == "authenticationmethods" and lowered != "any":
            keyless = any("publickey" not in alternative for alternative in lowered.split())
            why = "a way in without publickey" if keyless else ""
        elif mode == "certificates" and keyword in key_sources and lowered != "none":
            why = "keys outside the CA are accepted"
        else:
            why = ""
        if why:
            found.append(f"{in_block(directive, value)}: {why}")
    return found


# --- network restriction ---------------------------------------------------------------------


def office_networks(raw: Any) -> list[Network]:
    """The ``office_networks`` variable (CIDR strings or networks). Raises ValueError."""
    if raw in (None, ""):
        return []
    items = raw if isinstance(raw, list | tuple) else [raw]
    return [ipaddress.ip_network(str(item), strict=False) for item in items]


def variable_networks(ctx: CheckContext, name: str, example: str) -> tuple[list[Network], str]:
    """The networks a ``cidr_list`` policy variable names, and ''; or no networks and why the
    value is not such a list (the check errors with it)."""
    try:
        return office_networks(ctx.variables.get(name)), ""
    except ValueError as exc:
        return (
            [],
            f"{name} is not a list of networks: {exc} (set it with {how_to_set(name, example)})",
        )


def _inside(network: Network, allowed: list[Network]) -> bool:
    return any(
        network.version == a.version and network.subnet_of(a)  # type: ignore[arg-type]
        for a in [*allowed, *LOOPBACK]
    )


def _pattern_network(pattern: str) -> Network | None:
    """An address, CIDR or octet wildcard (``10.1.*``) as a network; None otherwise."""
    try:
        network = parse_cidr(pattern)
    except ValueError:
        return None
    if network is not None:
        return network
    parts = pattern.split(".")
    if parts and parts[-1] == "*" and 1 < len(parts) <= 4:
        fixed = parts[:-1]
        if all(p.isdigit() and int(p) < 256 for p in fixed):
            octets = fixed + ["0"] * (4 - len(fixed))
            return ipaddress.ip_network(f"{'.'.join(octets)}/{8 * len(fixed)}")
    return None


def _host_part_within(patterns: str, allowed: list[Network]) -> bool:
    """Every positive pattern of a ``user@HOST`` entry names addresses inside ``allowed``."""
    for pattern in patterns.split(","):
        if pattern.startswith("!"):
            continue
        network = _pattern_network(pattern)
        if network is None or not _inside(network, allowed):
            return False
    return True


def outside_probes(office: list[Network]) -> list[str]:
    """Client addresses outside the office: documentation addresses plus, for each office
    network, the addresses just below and above it (catches a Match wider than the office)."""
    candidates = list(OUTSIDE_PROBES)
    for network in office:
        top = 2**network.max_prefixlen - 1
        low, high = int(network.network_address), int(network.broadcast_address)
        cls = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address
        candidates += [str(cls(n)) for n in (low - 1, high + 1) if 0 < n < top]
    probes = []
    for text in candidates:
        address = ipaddress.ip_address(text)
        if text not in probes and not any(address in net for net in [*office, *LOOPBACK]):
            probes.append(text)
    return probes


def ssh_ports(view: EffectiveSshd) -> set[int]:
    """Ports sshd listens on: a ListenAddress's own port, else every Port."""
    default = {int(p) for p in view.values("port") if p.isdigit()}
    ports: set[int] = set()
    for value in view.values("listenaddress") or ("",):
        port = listen_port(value)
        ports.update({port} if port else default)
    return ports


def refusal(view: EffectiveSshd, addr: str) -> str | None:
    """Why sshd refuses every login from ``addr`` in this view, or None."""
    for entry in view.values("denyusers"):
        user, at, hosts = entry.partition("@")
        if user.strip("*") == "" and (not at or match_host_and_ip(addr, addr, hosts) == 1):
            return f"DenyUsers {entry}"
    if "*" in view.values("denygroups"):
        return "DenyGroups *"
    if not auth_paths(view):
        return "no authentication method is usable"
    return None


class SshdNetworkRestrictionCheck(CheckType):
    """SSH can be used only from ``office_networks``.

    Any of: every AllowUsers entry is ``user@HOST`` with HOST inside the office networks;
    clients probed from outside addresses are refused (DenyUsers/DenyGroups, or no usable
    auth method, e.g. from a ``Match Address *,!office`` block); every ListenAddress is
    inside the office networks; the firewall accepts the SSH port(s) only from them.
    """

    name = "sshd_network_restriction"
    schema = {"config": SPEC_SCHEMA["config"], "user": SPEC_SCHEMA["user"]}

    def commands(self, ctx: CheckContext) -> Sequence[PlannedCommand]:
        """The spec's view, and the first client from outside: the next ones are asked
        about only while those before them are refused."""
        office, _ = variable_networks(ctx, "office_networks", OFFICE_EXAMPLE)
        user = self.params["user"]
        specs = [ConnectionSpec(user=user)]
        specs += [ConnectionSpec(user=user, host=a, addr=a) for a in outside_probes(office)[:1]]
        return sshd_t_commands(ctx, self.params["config"], specs)

    def run(self, ctx: CheckContext) -> Verdict:
        office, bad = variable_networks(ctx, "office_networks", OFFICE_EXAMPLE)
        if bad:
            return errored(bad)
        path = self.params["config"]
        spec = ConnectionSpec(user=self.params["user"])
        try:
            view = effective_config(ctx, path, spec)
        except HostError as exc:
            return errored(f"cannot read {path}: {exc}")
        held: list[str] = []  # mechanisms that restrict to the office networks
        restricts: list[str] = []  # restrictions found (used when office_networks is empty)
        missed: list[str] = []
        for mechanism in (self._allow_users, self._refused, self._listen, self._firewall):
            ok, restricted, text = mechanism(ctx, view, office)
            (held if ok else restricts if restricted else missed).append(text)
        notes = [f"note: {n}" for n in view.notes]
        if not office:
            found = held + restricts
            if found:
                return errored(
                    "SSH access is restricted, but the policy variable office_networks is "
                    "empty: set it to the networks allowed to reach SSH, with "
                    + how_to_set("office_networks", OFFICE_EXAMPLE),
                    *found,
                    *notes,
                )
            return failed("SSH is not restricted to any network", *missed, *notes)
        if held:
            return passed(*held, *notes)
        return failed(
            f"SSH is reachable from outside {', '.join(map(str, office))}",
            *restricts,
            *missed,
            *notes,
        )

    def _allow_users(
        self, ctx: CheckContext, view: EffectiveSshd, office: list[Network]
    ) -> tuple[bool, bool, str]:
        entries = view.values("allowusers")
        where = _located(ctx, self.params["config"], view, "allowusers", None)
        if not entries:
            return False, False, "AllowUsers: not set"
        hosts = [e.partition("@")[2] for e in entries]
        if not all(hosts):
            return False, False, f"AllowUsers has entries for any host: {where}"
        if office and all(_host_part_within(h, office) for h in hosts):
            return True, True, f"AllowUsers admits only office hosts: {where}"
        return False, True, f"AllowUsers entries reach beyond office_networks: {where}"

    def _refused(
        self, ctx: CheckContext, view: EffectiveSshd, office: list[Network]
    ) -> tuple[bool, bool, str]:
        reasons: list[str] = []
        notes: list[str] = []  # the probes' own, such as sshd -T asked about another client
        for addr in outside_probes(office):
            spec = ConnectionSpec(user=self.params["user"], host=addr, addr=addr)
            probe = effective_config(ctx, self.params["config"], spec)
            notes += [n for n in probe.notes if n not in view.notes and n not in notes]
            reason = refusal(probe, addr)
            if reason is None:
                ok, restricted = False, bool(reasons)
                text = f"a client from {addr} is not refused by sshd"
                break
            reasons.append(f"{addr}: {reason}")
        else:
            ok, restricted = bool(office), True
            text = "sshd refuses clients outside the office: " + "; ".join(reasons)
        return ok, restricted, text + "".join(f" (note: {n})" for n in notes)

    def _listen(
        self, ctx: CheckContext, view: EffectiveSshd, office: list[Network]
    ) -> tuple[bool, bool, str]:
        values = view.values("listenaddress")
        where = _located(ctx, self.params["config"], view, "listenaddress", None)
        networks = []
        for value in values:
            try:
                networks.append(ipaddress.ip_network(listen_host(value)))
            except ValueError:
                return False, False, f"ListenAddress {value} is not an address: {where}"
        wildcard = any(n.num_addresses > 1 or n.network_address.is_unspecified for n in networks)
        if not networks or wildcard:
            return False, False, f"sshd listens on every address: {where}"
        if office and all(_inside(n, office) for n in networks):
            return True, True, f"sshd listens only on office/loopback addresses: {where}"
        internal = all(n.network_address.is_private for n in networks)
        return False, internal, f"sshd listens on addresses outside office_networks: {where}"

    def _firewall(
        self, ctx: CheckContext, view: EffectiveSshd, office: list[Network]
    ) -> tuple[bool, bool, str]:
        ports = sorted(ssh_ports(view))
        try:
            state = firewall_state(ctx)
        except HostError as exc:
            return False, False, f"firewall: {exc}"
        if not state.loaded:
            return (
                False,
                False,
                "firewall: no ruleset loaded" + "".join(f"; {n}" for n in state.notes),
            )
        allowed = AddressSet.of(*office, *LOOPBACK)
        open_to, limited = [], []
        for port in ports:
            for family in ("ipv4", "ipv6"):
                accepted = state.accepted(family, port)
                label = f"port {port}/{family} accepted from {accepted}"
                everyone = accepted.covers(AddressSet.everything(family))
                (limited if allowed.covers(accepted) else open_to).append((label, everyone))
        if not open_to:
            text = "firewall accepts SSH only from office/loopback: "
            return bool(office), True, text + "; ".join(t for t, _ in limited)
        restricted = not any(everyone for _, everyone in open_to)
        text = "firewall: " + "; ".join(t for t, _ in open_to)
        return False, restricted, text
