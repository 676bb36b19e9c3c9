"""Log in to a host over SSH the way OpenSSH would, and refuse what OpenSSH would refuse.

``~/.ssh/config`` (then ``/etc/ssh/ssh_config``) decides the address, port, user, identity
files and jump hosts of a name, as ``ssh -G`` shows them; the agent and the identity files
authenticate. Host keys are checked against the user's and the system's known_hosts: an
unknown key is refused unless new keys may be accepted (``StrictHostKeyChecking
accept-new``, which then records it), and a changed key is always refused. testinfra's
habit of trusting any key on first sight is exactly what this module does not do.

paramiko is imported only here and in ``checks.ssh_host``, on first use: a local audit
never pays for it.
"""

from __future__ import annotations

import getpass
import glob
import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from checks.hosts import HostError

if TYPE_CHECKING:
    import paramiko

DEFAULT_CONFIG_FILES = ("~/.ssh/config", "/etc/ssh/ssh_config")
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Jump hosts that are themselves reached through jump hosts, at most this deep.
MAX_JUMP_DEPTH = 8

# paramiko logs a traceback for every host that hangs up; the error reaches the report as a
# ConnectError, so its logs go to a channel of ours that stays quiet.
LOG_CHANNEL = f"{__name__}.paramiko"
logging.getLogger(LOG_CHANNEL).addHandler(logging.NullHandler())
logging.getLogger(LOG_CHANNEL).propagate = False

_KNOWN_HOSTS_LOCK = threading.Lock()  # hosts of a fleet may record new keys at once
#: known_hosts files as last parsed: (path, inode, size, mtime) of each -> their keys.
_PARSED_KNOWN_HOSTS: dict[tuple, paramiko.HostKeys] = {}


class ConnectError(HostError):
    """The host could not be reached or logged into; the message says why and what to do."""


class UnknownHostKey(ConnectError):
    pass


class ChangedHostKey(ConnectError):
    pass


@dataclass(frozen=True)
class SSHOptions:
    """How to connect, for every host of an audit. Defaults are OpenSSH's."""

    config_files: tuple[str, ...] = DEFAULT_CONFIG_FILES
    #: Record unknown host keys in known_hosts (``StrictHostKeyChecking accept-new``).
    accept_new_host_keys: bool = False
    #: Tried before those the config names, as ``ssh -i``.
    identity_files: tuple[str, ...] = ()
    use_agent: bool = True
    #: For the TCP connect, the SSH banner, the key exchange, login and opening channels.
    timeout: float = DEFAULT_CONNECT_TIMEOUT


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to log in once the SSH config has been applied to a name."""

    alias: str  # the name as given (an inventory name, a config Host alias, an address)
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    #: Hosts to pass through, outermost first (``ProxyJump a,b``), as ``[user@]host[:port]``.
    proxy_jump: tuple[str, ...] = ()
    user_known_hosts: tuple[str, ...] = DEFAULT_USER_KNOWN_HOSTS
    global_known_hosts: tuple[str, ...] = DEFAULT_GLOBAL_KNOWN_HOSTS
    host_key_alias: str | None = None
    hash_known_hosts: bool = False
    accept_new_host_keys: bool = False

    def __str__(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.user}@{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The name its key is filed under in known_hosts, as OpenSSH writes it."""
        name = self.host_key_alias or self.hostname
        return name if self.port == 22 else f"[{name}]:{self.port}"


def resolve(
    name: str, options: SSHOptions, *, user: str | None = None, port: int | None = None
) -> Endpoint:
    """Apply the SSH config to ``name``; an explicit ``user`` or ``port`` wins, as on
    ssh's command line."""
    config = _lookup(name, options.config_files)
    jump = config.get("proxyjump", "none")
    strict = config.get("stricthostkeychecking", "ask").lower()
    try:
        config_port = int(config.get("port", 22))
    except ValueError as exc:
        raise ConnectError(f"{name}: Port in the SSH config is not a number") from exc
    return Endpoint(
        alias=name,
        hostname=config.get("hostname", name),
        port=port or config_port,
        user=user or config.get("user") or getpass.getuser(),
        identity_files=tuple(
            os.path.expanduser(path)
            for path in (*options.identity_files, *config.get("identityfile", ()))
        ),
        identities_only=config.get("identitiesonly", "no").lower() == "yes",
        proxy_jump=() if jump.lower() == "none" else tuple(h.strip() for h in jump.split(",")),
        user_known_hosts=_paths(config.get("userknownhostsfile"), DEFAULT_USER_KNOWN_HOSTS),
        global_known_hosts=_paths(config.get("globalknownhostsfile"), DEFAULT_GLOBAL_KNOWN_HOSTS),
        host_key_alias=config.get("hostkeyalias"),
        hash_known_hosts=config.get("hashknownhosts", "no").lower() == "yes",
        accept_new_host_keys=options.accept_new_host_keys or strict in ("accept-new", "no", "off"),
    )


def split_destination(text: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` (IPv6 in brackets) -> (user, host, port)."""
    user, at, rest = text.rpartition("@")
    host, port = rest, None
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"{text!r} is not [user@]host[:port]")
        port_text = tail[1:]
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        port_text = ""
    if not host or (at and not user) or any(c.isspace() or c in "/,'\"" for c in text):
        raise ValueError(f"{text!r} is not [user@]host[:port]")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{text!r}: the port must be 1-65535")
        port = int(port_text)
    elif rest.endswith(":"):
        raise ValueError(f"{text!r}: a port must follow ':'")
    return user or None, host, port


@dataclass
class Connection:
    """A logged-in client and the jump hosts it goes through; close() closes them all."""

    client: paramiko.SSHClient
    endpoint: Endpoint
    jumps: list[Connection] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        transport = self.client.get_transport()
        return transport is not None and transport.is_active()

    @property
    def transport(self) -> paramiko.Transport:
        if not self.is_open:
            raise ConnectError(f"{self.endpoint}: the SSH connection is closed")
        return self.client.get_transport()

    def close(self) -> None:
        self.client.close()
        for jump in reversed(self.jumps):
            jump.close()


def connect(endpoint: Endpoint, options: SSHOptions, depth: int = 0) -> Connection:
    """Log in (through the jump hosts, if any); raises ConnectError saying why it could not."""
    jumps: list[Connection] = []
    try:
        if endpoint.proxy_jump:
            if depth >= MAX_JUMP_DEPTH:
                raise ConnectError(f"{endpoint}: more than {MAX_JUMP_DEPTH} nested jump hosts")
            jumps.append(_connect_jump(endpoint, options, depth))
            sock = _channel_through(jumps[-1], endpoint, options.timeout)
        else:
            sock = _tcp_connect(endpoint, options.timeout)
        return Connection(_login(endpoint, sock, options), endpoint, jumps)
    except BaseException:
        for jump in jumps:
            jump.close()
        raise


def _connect_jump(endpoint: Endpoint, options: SSHOptions, depth: int) -> Connection:
    """The last jump host, itself reached through the hops before it (or its own config)."""
    *before, last = endpoint.proxy_jump
    try:
        user, host, port = split_destination(last)
    except ValueError as exc:
        raise ConnectError(f"{endpoint.alias}: ProxyJump {exc}") from exc
    jump = resolve(host, options, user=user, port=port)
    if before:
        jump = replace(jump, proxy_jump=tuple(before))
    return connect(jump, options, depth + 1)


def _tcp_connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((endpoint.hostname, endpoint.port), timeout=timeout)
    except TimeoutError as exc:
        raise ConnectError(f"{endpoint}: no answer within {timeout:g}s") from exc
    except socket.gaierror as exc:
        raise ConnectError(f"{endpoint}: cannot resolve {endpoint.hostname}: {exc}") from exc
    except OSError as exc:
        raise ConnectError(f"{endpoint}: {exc.strerror or exc}") from exc
    # Each request is a small packet and the next waits for its answer: with Nagle's
    # algorithm a packet sent while the last is unacknowledged waits for the peer's delayed
    # ACK (40 ms). OpenSSH's client turns it off for the same reason.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _channel_through(jump: Connection, endpoint: Endpoint, timeout: float) -> paramiko.Channel:
    import paramiko

    try:
        return jump.transport.open_channel(
            "direct-tcpip", (endpoint.hostname, endpoint.port), ("127.0.0.1", 0), timeout=timeout
        )
    except paramiko.ChannelException as exc:
        raise ConnectError(
            f"{endpoint}: jump host {jump.endpoint} cannot connect to it: {exc.text}"
        ) from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise ConnectError(f"{endpoint}: through jump host {jump.endpoint}: {exc}") from exc


def _login(endpoint: Endpoint, sock: socket.socket, options: SSHOptions) -> paramiko.SSHClient:
    """Key exchange, host key check and public-key login over an open connection."""
    import paramiko

    client = paramiko.SSHClient()
    client.set_log_channel(LOG_CHANNEL)
    try:
        client._system_host_keys = _known_hosts(  # paramiko has no setter for them
            (*endpoint.global_known_hosts, *endpoint.user_known_hosts)
        )
    except ConnectError as exc:
        sock.close()
        raise ConnectError(f"{endpoint}: {exc}") from exc
    client.set_missing_host_key_policy(_NewKeyPolicy(endpoint))
    try:
        client.connect(
            # the known_hosts name decides which key is expected; the socket is already open
            endpoint.host_key_alias or endpoint.hostname,
            port=endpoint.port,
            username=endpoint.user,
            sock=sock,
            key_filename=list(endpoint.identity_files) or None,
            allow_agent=options.use_agent and not endpoint.identities_only,
            look_for_keys=not endpoint.identity_files,
            # with the socket given, ``timeout`` only bounds the wait for the handshake; equal
            # to banner_timeout it raced it, and a silent server came out as "No existing session"
            timeout=2 * options.timeout,
            banner_timeout=options.timeout,
            auth_timeout=options.timeout,
            channel_timeout=options.timeout,
            transport_factory=_transport,
        )
    except BaseException as exc:
        client.close()
        sock.close()
        if isinstance(exc, ConnectError):
            raise
        if isinstance(exc, paramiko.BadHostKeyException):
            raise ChangedHostKey(_changed_key_message(endpoint, exc)) from exc
        if isinstance(exc, paramiko.AuthenticationException):
            raise ConnectError(f"{endpoint}: login refused ({exc})") from exc
        if isinstance(exc, paramiko.SSHException) and "banner" in str(exc):
            raise ConnectError(
                f"{endpoint}: accepted the connection but sent no SSH banner within "
                f"{options.timeout:g}s"
            ) from exc
        if isinstance(exc, paramiko.SSHException | EOFError):
            raise ConnectError(f"{endpoint}: {exc or 'connection closed'}") from exc
        if isinstance(exc, TimeoutError):
            raise ConnectError(f"{endpoint}: no answer within {options.timeout:g}s") from exc
        if isinstance(exc, OSError):
            raise ConnectError(f"{endpoint}: {exc.strerror or exc}") from exc
        raise
    return client


def _transport(sock: socket.socket, **options: object) -> paramiko.Transport:
    """paramiko's transport, offering AES-GCM first: its MAC is part of the cipher (done in
    OpenSSL), where the HMAC of the CTR modes is computed in Python for every packet, which
    made it a tenth of an audit's CPU. Both are OpenSSH defaults; the server still decides
    among what it allows."""
    import paramiko

    transport = paramiko.Transport(sock, **options)  # type: ignore[arg-type]
    security = transport.get_security_options()
    security.ciphers = sorted(
        security.ciphers, key=lambda name: not name.endswith("-gcm@openssh.com")
    )
    return transport


def _known_hosts(paths: Sequence[str]) -> paramiko.HostKeys:
    """The host keys the files list, merged in order; parsed once for every connection
    until one of them changes (a fleet's hosts all read the same files, and paramiko's
    parser costs a class per known host and line, which for a file of 50 hosts was a
    tenth of a fleet audit's CPU). The object returned is shared: only read it."""
    import paramiko

    found = []
    for path in paths:
        expanded = os.path.expanduser(path)
        try:
            info = os.stat(expanded)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConnectError(f"cannot read {path}: {exc.strerror}") from exc
        found.append((expanded, info.st_ino, info.st_size, info.st_mtime_ns))
    key = tuple(found)
    with _KNOWN_HOSTS_LOCK:
        if key not in _PARSED_KNOWN_HOSTS:
            keys = paramiko.HostKeys()
            for path, *_ in found:
                try:
                    keys.load(path)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise ConnectError(f"cannot read {path}: {exc.strerror}") from exc
            _PARSED_KNOWN_HOSTS.clear()  # the files changed: earlier versions are stale
            _PARSED_KNOWN_HOSTS[key] = keys
        return _PARSED_KNOWN_HOSTS[key]


class _NewKeyPolicy:
    """What to do with a key known_hosts does not list: refuse, or record it (accept-new)."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: object) -> None:
        endpoint = self.endpoint
        described = f"{key.get_name()} {key.fingerprint}"  # type: ignore[attr-defined]
        if not endpoint.accept_new_host_keys:
            known = os.path.expanduser(endpoint.user_known_hosts[0])
            raise UnknownHostKey(
                f"{endpoint}: host key not known ({described}). Check the fingerprint with "
                f"the host's administrator and add the key to {known}, or audit with "
                "accept_new_host_keys to record keys of hosts met for the first time"
            )
        _record(endpoint, key)


def _record(endpoint: Endpoint, key: object) -> None:
    """Append the key to the user's first known_hosts file, hashed if HashKnownHosts."""
    from paramiko.hostkeys import HostKeys

    name = endpoint.known_hosts_name
    if endpoint.hash_known_hosts:
        name = HostKeys.hash_host(name)
    line = f"{name} {key.get_name()} {key.get_base64()}\n"  # type: ignore[attr-defined]
    path = os.path.expanduser(endpoint.user_known_hosts[0])
    try:
        with _KNOWN_HOSTS_LOCK:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            with open(path, "a", encoding="ascii") as handle:
                handle.write(line)
    except OSError as exc:
        raise ConnectError(f"{endpoint}: cannot record its host key in {path}: {exc}") from exc


def _changed_key_message(endpoint: Endpoint, exc: paramiko.BadHostKeyException) -> str:
    got, expected = exc.key, exc.expected_key
    return (
        f"{endpoint}: HOST KEY CHANGED: it offers {got.get_name()} {got.fingerprint} where "
        f"known_hosts has {expected.get_name()} {expected.fingerprint}. Someone may be "
        "intercepting the connection; if the host was reinstalled, confirm the new key with "
        f"its administrator and replace the old one (ssh-keygen -R '{endpoint.known_hosts_name}')"
    )


def _lookup(name: str, files: Sequence[str]) -> dict:
    """The options of ``name`` from the config files, the first file's values winning."""
    import paramiko

    config = paramiko.SSHConfig()
    for path in files:
        text = _config_text(os.path.expanduser(path), depth=0)
        try:
            config.parse(text.splitlines())
        except paramiko.ConfigParseError as exc:
            raise ConnectError(f"{path}: {exc}") from exc
    try:
        return dict(config.lookup(name))
    except paramiko.SSHException as exc:
        raise ConnectError(f"{name}: SSH config: {exc}") from exc


def _config_text(path: str, depth: int) -> str:
    """A config file with its ``Include`` lines replaced by the files they name (paramiko
    does not read them). Relative names are under ~/.ssh or /etc/ssh, as for OpenSSH."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConnectError(f"{path}: cannot read: {exc}") from exc
    base = "/etc/ssh" if path.startswith("/etc/ssh/") else os.path.expanduser("~/.ssh")
    out = []
    for line in lines:
        words = line.split()
        if words and words[0].lower() == "include" and depth < 16:
            for pattern in words[1:]:
                pattern = os.path.join(base, os.path.expanduser(pattern))
                out.extend(_config_text(p, depth + 1) for p in sorted(glob.glob(pattern)))
            continue
        out.append(line)
    return "\n".join(out)


def _paths(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(value.split()) if value else default
