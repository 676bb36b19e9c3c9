"""SSH algorithms judged against the policy's ``allowed`` lists: by configuration and live.

``sshd_algorithms`` reads what sshd would offer (``sshd -T``, or the files under
``--root``); ``ssh_algorithms_probe`` reads what the running server does offer, from its
KEXINIT, and measures its RSA host key. Both pass when every algorithm offered is allowed
(and RSA host keys are at least ``min_rsa_bits``); the evidence gives every algorithm's
level from ``checks.ssh_algorithms`` (fail, warn, ok, and why). ``sshd_moduli`` looks at
the groups the server may pick for diffie-hellman-group-exchange.
"""

from __future__ import annotations

from typing import ClassVar

from checks.hosts import HostError
from checks.params import Param
from checks.parsers.ssh_keys import HostKeyInfo, read_host_key
from checks.parsers.sshd import DEFAULT_CONFIG, ConnectionSpec, EffectiveSshd
from checks.probes.ssh_kex import ServerKexInit, read_kexinit, rsa_host_key_bits
from checks.probes.wire import ProbeError, Target
from checks.result import Status, Verdict, errored, failed, passed
from checks.ssh_algorithms import KIND_NAMES, MARKERS, STRICT_KEX, judge, key_family
from checks.types.base import CheckContext, CheckType
from checks.types.probes import TARGETS_HELP, VANTAGE, Finding, ProbeCheck, combine
from checks.types.sshd import AsksDefaultClient, effective_config

KEYWORDS = {"kex": "kexalgorithms", "enc": "ciphers", "mac": "macs", "key": "hostkeyalgorithms"}
#: The signature algorithms current OpenSSH (8.8 and later) offers for each key type when
#: HostKeyAlgorithms is left at its default.
DEFAULT_SIGNATURES = {
    "rsa": ("rsa-sha2-512", "rsa-sha2-256"),
    "ed25519": ("ssh-ed25519",),
    "ecdsa": ("ecdsa-sha2-{curve}",),
    "dsa": (),
}

ALGORITHM_SCHEMA = {
    "kind": Param("choice", required=True, choices=tuple(KEYWORDS), help="kex, key, enc or mac"),
    "allowed": Param("str_list", required=True, help="algorithms the server may offer"),
    "min_rsa_bits": Param("int", default=3072, help="smallest RSA host key allowed"),
}


def judge_offer(
    kind: str,
    offered: tuple[str, ...],
    allowed: tuple[str, ...],
    strict_kex: bool = True,
    bits: dict[str, int] | None = None,
    context: tuple[str, ...] = (),
) -> tuple[list[str], list[str]]:
    """(problems, evidence) for ``offered`` algorithms of one kind; ``context`` is every
    cipher and MAC offered (CBC ciphers and -etm MACs are weak together without strict kex)."""
    problems, fine = [], []
    for name in offered:
        if kind == "kex" and name in MARKERS:
            continue
        family = key_family(name) if kind == "key" else ""
        verdict = judge(kind, name, context or offered, strict_kex, (bits or {}).get(family))
        if name not in allowed:
            problems.append(f"{verdict}: not allowed by the policy")
        else:
            fine.append(str(verdict))
    if not offered:
        problems.append(f"no {KIND_NAMES[kind]} algorithm is offered")
    return problems, fine


def small_rsa(keys: list[str], bits: int | None, minimum: int) -> list[str]:
    """A problem when an RSA host key is offered and smaller than ``minimum``."""
    if bits is None or not any(key_family(k) == "rsa" for k in keys) or bits >= minimum:
        return []
    return [f"RSA host key of {bits} bits (at least {minimum} wanted)"]


# --- by configuration -------------------------------------------------------------------------


class SshdAlgorithmsCheck(AsksDefaultClient, CheckType):
    """The algorithms of one kind that sshd would offer are all ``allowed``."""

    name = "sshd_algorithms"
    schema: ClassVar[dict[str, Param]] = {
        **ALGORITHM_SCHEMA,
        "config": Param("str", default=DEFAULT_CONFIG, help="sshd_config path (sshd -f)"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        try:
            view = effective_config(ctx, p["config"], ConnectionSpec())
        except HostError as exc:
            return errored(f"cannot read {p['config']}: {exc}")
        notes = [f"note: {n}" for n in view.notes]
        if p["kind"] == "key":
            return self._host_keys(ctx, view, notes)
        keyword = KEYWORDS[p["kind"]]
        names, why_not = configured_list(view, keyword)
        if why_not:
            return errored(why_not, *notes)
        if p["kind"] == "kex" and view.first("gssapikeyexchange") != "yes":
            names = tuple(n for n in names if not n.startswith("gss-"))  # not offered then
        problems, fine = judge_offer(p["kind"], names, p["allowed"])
        return failed(*problems, *fine, *notes) if problems else passed(*fine, *notes)

    def _host_keys(self, ctx: CheckContext, view: EffectiveSshd, notes: list[str]) -> Verdict:
        keys: list[HostKeyInfo] = []
        problems: list[str] = []
        for path in view.values("hostkey"):
            if not ctx.host.lexists(path):
                notes.append(f"note: HostKey {path} does not exist (sshd skips it)")
                continue
            try:
                keys.append(ctx.memo(("host_key", path), lambda p=path: read_host_key(ctx.host, p)))
            except HostError as exc:
                problems.append(str(exc))
        names, why_not = configured_list(view, "hostkeyalgorithms")
        if why_not:
            offered = _signatures(keys)
            notes.append("note: HostKeyAlgorithms not known: OpenSSH's defaults for these keys")
        else:
            offered = tuple(n for n in names if _signs_with(n, keys))
        rsa_bits = min((k.bits for k in keys if k.family == "rsa"), default=None)
        found, fine = judge_offer("key", offered, self.params["allowed"], bits={"rsa": rsa_bits})
        problems += found + small_rsa(list(offered), rsa_bits, self.params["min_rsa_bits"])
        evidence = [*fine, *(str(k) for k in keys), *notes]
        return failed(*problems, *evidence) if problems else passed(*evidence)


def configured_list(view: EffectiveSshd, keyword: str) -> tuple[tuple[str, ...], str]:
    """An algorithm list as sshd will use it, or why it cannot be told from this view."""
    values = view.values(keyword)
    if not values:
        return (), f"{keyword} is not set: only sshd -T knows the build's compiled-in list"
    text = ",".join(values)
    if view.get(keyword).source != "sshd -T" and text[:1] in "+-^":
        return (), f"{keyword} {text} changes the compiled-in list, which only sshd -T knows"
    return tuple(n for n in text.split(",") if n), ""


def _signatures(keys: list[HostKeyInfo]) -> tuple[str, ...]:
    """The signature algorithms OpenSSH offers by default for the loaded keys."""
    names = [
        name.format(curve=key.curve)
        for key in keys
        for name in DEFAULT_SIGNATURES.get(key.family, ())
    ]
    return tuple(dict.fromkeys(names))


def _signs_with(algorithm: str, keys: list[HostKeyInfo]) -> bool:
    """Whether a loaded key can sign with ``algorithm`` (certificates need HostCertificate,
    which is not judged here)."""
    if "-cert-" in algorithm:
        return False
    family = key_family(algorithm)
    return any(
        k.family == family and (family != "ecdsa" or algorithm.endswith(k.curve)) for k in keys
    )


# --- live ---------------------------------------------------------------------------------


class SshAlgorithmsProbeCheck(ProbeCheck):
    """What each running sshd offers in its KEXINIT is all ``allowed``; the strict key
    exchange marker (the Terrapin fix) must be among its key exchanges."""

    name = "ssh_algorithms_probe"
    default_port = 22
    schema: ClassVar[dict[str, Param]] = {
        **ALGORITHM_SCHEMA,
        "targets": Param("str_list", default=(), help=TARGETS_HELP),
        "owners": Param("str_list", default=("sshd",), help="processes to discover"),
        "vantage": VANTAGE,
    }

    def judge(self, ctx: CheckContext, targets: list[Target], discovered: bool) -> Verdict:
        findings: list[Finding] = []
        for target in targets:
            try:
                offer = ctx.memo(("kexinit", target), lambda t=target: read_kexinit(t))
                findings.append(self._judge(ctx, offer))
            except ProbeError as exc:
                findings.append((Status.ERROR, str(exc)))
        return combine(findings)

    def _judge(self, ctx: CheckContext, offer: ServerKexInit) -> Finding:
        kind, target = self.params["kind"], offer.target
        offered = offer.offered(kind)
        strict = STRICT_KEX in offer.kex
        bits = None
        if kind == "key":
            rsa = tuple(n for n in offered if key_family(n) == "rsa")
            if rsa:
                bits = ctx.memo(("rsa_bits", target), lambda: rsa_host_key_bits(target, rsa))
        sizes = {"rsa": bits} if bits else None
        context = (*offer.enc, *offer.mac)
        problems, fine = judge_offer(kind, offered, self.params["allowed"], strict, sizes, context)
        if kind == "key":
            problems += small_rsa(list(offered), bits, self.params["min_rsa_bits"])
        if kind == "kex" and not strict:
            problems.append(f"no {STRICT_KEX}: vulnerable to Terrapin (CVE-2023-48795)")
        head = f"{target} ({offer.banner}) offers {', '.join(offered) or 'nothing'}"
        if problems:
            return Status.FAIL, "; ".join([head, *problems])
        return Status.PASS, "; ".join([head, *fine])


# --- moduli ---------------------------------------------------------------------------------


class SshdModuliCheck(AsksDefaultClient, CheckType):
    """The moduli file (sshd's ModuliFile) holds no group smaller than ``min_bits``.

    diffie-hellman-group-exchange picks its group from this file; the size column is the
    modulus size minus one, as ssh-keygen writes it (2047 for a 2048-bit group).
    """

    name = "sshd_moduli"
    schema: ClassVar[dict[str, Param]] = {
        "min_bits": Param("int", default=3071, help="smallest size column allowed"),
        "config": Param("str", default=DEFAULT_CONFIG, help="sshd_config path (sshd -f)"),
    }

    def run(self, ctx: CheckContext) -> Verdict:
        p = self.params
        try:
            view = effective_config(ctx, p["config"], ConnectionSpec())
        except HostError as exc:
            return errored(f"cannot read {p['config']}: {exc}")
        path = view.first("modulifile") and view.values("modulifile")[0]
        path = path or "/etc/ssh/moduli"
        try:
            text = ctx.host.read_text(path)
        except HostError as exc:
            if not ctx.host.lexists(path):
                return passed(f"{path} is absent: group exchange uses the built-in groups")
            return errored(f"cannot read {path}", str(exc))
        sizes: dict[int, int] = {}
        for line in text.split("\n"):
            fields = line.split()
            if len(fields) == 7 and not fields[0].startswith("#") and fields[4].isdigit():
                sizes[int(fields[4])] = sizes.get(int(fields[4]), 0) + 1
        small = {size: n for size, n in sorted(sizes.items()) if size < p["min_bits"]}
        shown = ", ".join(f"{n} of size {size}" for size, n in sorted(sizes.items()))
        if small:
            listed = ", ".join(f"{n} of size {size}" for size, n in small.items())
            return failed(f"{path}: groups smaller than {p['min_bits']}: {listed}")
        if not sizes:
            return passed(f"{path} holds no group: group exchange uses the built-in groups")
        return passed(f"{path}: {shown}")
