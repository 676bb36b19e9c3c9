"""The daemon's metrics endpoint: ``/metrics`` from our own registry, over HTTP or HTTPS,
with basic auth when the web config names users.

Why not prometheus_client's ``start_http_server``: it has no basic auth and no reload, and
it does the TLS handshake in the thread that accepts connections, so one client that
connects and says nothing stalls every scrape. Here each connection has its own thread
(up to ``MAX_CONNECTIONS``; more are hung up on), its TLS handshake happens there, and a
deadline hangs up on a client that has not sent its whole request head in
``HEAD_TIMEOUT`` seconds, however slowly it trickles bytes; the head is capped at
``MAX_HEAD_BYTES``. Bodies are never read: a request with one is answered, then the
connection is closed.

The web config (``agent.webconfig``) is read at start and on ``reload``; the listening
socket stays, so a reload may turn TLS on or off. Certificates are read at (re)load, so a
renewed certificate is served after the next SIGHUP.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from agent.basicauth import BasicAuth
from agent.config import DEFAULT_METRICS_PORT, parse_listen
from agent.webconfig import WebConfig, load_web_config

log = logging.getLogger(__name__)

DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_METRICS_PORT}"
MAX_CONNECTIONS = 64
HEAD_TIMEOUT = 10.0  # TLS handshake, request line and headers, or waiting on a kept-alive one
WRITE_TIMEOUT = 30.0  # sending one response
MAX_HEAD_BYTES = 16 * 1024
FULL_WARNING_EVERY = 60.0  # seconds between "too many connections" warnings

_LANDING_PAGE = (
    b"<!doctype html><html><head><title>lappguard</title></head><body>"
    b'<h1>lappguard</h1><p><a href="/metrics">Metrics</a></p></body></html>\n'
)


@dataclass(frozen=True)
class _Settings:
    """One loaded web config and the basic auth built from it; swapped whole on reload."""

    web: WebConfig
    auth: BasicAuth


class MetricsServer:
    """A running endpoint; ``close()`` stops it (also as a context manager)."""

    def __init__(self, registry: CollectorRegistry, listen: str, web: WebConfig) -> None:
        self.registry = registry
        self.settings = _Settings(web, BasicAuth(web.users))
        family, address = _bind_address(listen)
        self._httpd = _HTTPServer(address, family, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        """The bound port."""
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Where ``/metrics`` is, e.g. ``https://[::1]:19849/metrics``."""
        scheme = "https" if self.settings.web.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/metrics"

    def reload(self, web_config: str | Path | None) -> None:
        """Read the web config again (SIGHUP). An invalid file raises InputError with the
        located problem and the running config stays."""
        self.apply(load_web_config(web_config))

    def apply(self, web: WebConfig) -> None:
        """Serve new connections with ``web`` (one loaded with ``load_web_config``), for a
        caller that validates everything first and swaps only when all of it is valid."""
        self.settings = _Settings(web, BasicAuth(web.users))
        log.info("metrics: web config %s: %s", web.file or "none", _describe(web))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve_metrics(
    registry: CollectorRegistry, listen: str = DEFAULT_LISTEN, web_config: str | None = None
) -> MetricsServer:
    """Serve ``registry`` on ``listen`` (``host:port``, IPv6 in brackets) in a thread.

    ``web_config`` is a file in the exporter toolkit's format (TLS, basic auth, headers);
    None serves plain HTTP to anyone who can connect, which is why the default address is
    loopback. Raises InputError for an invalid web config, ValueError for a bad ``listen``
    and OSError when the address cannot be bound.
    """
    web = load_web_config(web_config)
    server = MetricsServer(registry, listen, web)
    log.info("metrics: serving %s (%s)", server.url, _describe(web))
    return server


def _describe(web: WebConfig) -> str:
    tls = "TLS" if web.tls else "plain HTTP"
    return f"{tls}, basic auth ({len(web.users)} users)" if web.users else tls


def _bind_address(listen: str) -> tuple[socket.AddressFamily, tuple[str, int]]:
    parse_listen(listen)
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family, _, _, _, address = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
    return family, address[:2]


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection, at most MAX_CONNECTIONS of them."""

    daemon_threads = True
    request_queue_size = MAX_CONNECTIONS

    def __init__(
        self, address: tuple[str, int], family: socket.AddressFamily, owner: MetricsServer
    ) -> None:
        self.address_family = family
        self.owner = owner
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._next_full_warning = 0.0
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, a DNS query we do not need.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            if time.monotonic() >= self._next_full_warning:
                self._next_full_warning = time.monotonic() + FULL_WARNING_EVERY
                log.warning("metrics: %d connections open, hanging up on new ones (%s)",
                            MAX_CONNECTIONS, client_address[0])  # fmt: skip
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up, times out or fails its TLS handshake: its problem, not ours.
        log.debug("metrics: connection from %s failed", client_address[0], exc_info=True)


class _HeadTooLarge(Exception):
    pass


class _BoundedReader:
    """The connection's reader, refusing to read more than MAX_HEAD_BYTES per request head."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.remaining = MAX_HEAD_BYTES

    def readline(self, limit: int = -1) -> bytes:
        if self.remaining <= 0:
            raise _HeadTooLarge
        line = self._inner.readline(self.remaining if limit < 0 else min(limit, self.remaining))
        self.remaining -= len(line)
        return line

    def close(self) -> None:
        self._inner.close()


class _Deadline:
    """Hangs up a connection that has not finished a step in time. A socket timeout bounds
    each read, not a client that sends one byte just before each one runs out."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._timer: threading.Timer | None = None

    def start(self, seconds: float) -> None:
        self.stop()
        self._timer = threading.Timer(seconds, self._hang_up)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _hang_up(self) -> None:
        # socket.shutdown on the file descriptor, bypassing SSLSocket.shutdown, which would
        # reset the TLS state under the thread reading it; the blocked read returns at once.
        with contextlib.suppress(OSError):  # already closed
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a scraper reuses its connection
    server: _HTTPServer

    def setup(self) -> None:
        # The settings of the moment the connection was accepted, for all of its requests.
        self.settings: _Settings = self.server.owner.settings
        self.request.settimeout(HEAD_TIMEOUT)
        tls = self.settings.web.tls
        if tls is not None:
            # The wrapped socket takes over the file descriptor: the server's own close of
            # the accepted socket no longer reaches it, so finish() closes it.
            self.request = tls.wrap_socket(
                self.request, server_side=True, do_handshake_on_connect=False
            )
        self.deadline = _Deadline(self.request)
        if tls is not None:
            self.deadline.start(HEAD_TIMEOUT)
            try:
                self.request.do_handshake()
            except BaseException:
                self.request.close()
                raise
            finally:
                self.deadline.stop()
        super().setup()
        self.rfile = _BoundedReader(self.rfile)

    def finish(self) -> None:
        self.deadline.stop()
        try:
            super().finish()
        finally:
            self.request.close()

    def handle_one_request(self) -> None:
        self.rfile.remaining = MAX_HEAD_BYTES
        self.connection.settimeout(HEAD_TIMEOUT)
        self.deadline.start(HEAD_TIMEOUT)
        try:
            super().handle_one_request()
        except _HeadTooLarge:
            self.close_connection = True
            self.send_error(431, "Request head too large")
        finally:
            self.deadline.stop()

    def parse_request(self) -> bool:
        """The head is read: stop the deadline, give the response its own timeout."""
        ok = super().parse_request()
        self.deadline.stop()
        self.connection.settimeout(WRITE_TIMEOUT)
        if ok and (self.headers.get("Content-Length", "0") != "0" or
                   "Transfer-Encoding" in self.headers):  # fmt: skip
            self.close_connection = True  # a body we will not read would be the next request
        return ok

    def do_GET(self) -> None:
        self._respond(with_body=True)

    def do_HEAD(self) -> None:
        self._respond(with_body=False)

    def _respond(self, with_body: bool) -> None:
        auth = self.settings.auth
        if auth.required and not auth.allows(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8", with_body,
                       {"WWW-Authenticate": "Basic"})  # fmt: skip
            return
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._metrics(with_body)
        elif path == "/":
            self._send(200, _LANDING_PAGE, "text/html; charset=utf-8", with_body)
        else:
            self._send(404, b"Not Found\n", "text/plain; charset=utf-8", with_body)

    def _metrics(self, with_body: bool) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.owner.registry)
        except Exception:
            log.exception("metrics: collecting failed")
            self._send(500, b"collecting metrics failed\n", "text/plain", with_body)
            return
        extra = {}
        if gzip_accepted(self.headers.get("Accept-Encoding", "")):
            body, extra = gzip.compress(body, compresslevel=6), {"Content-Encoding": "gzip"}
        self._send(200, body, content_type, with_body, extra)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        with_body: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def end_headers(self) -> None:
        """Every response, errors included, carries the web config's headers."""
        for name, value in self.settings.web.headers.items():
            self.send_header(name, value)
        super().end_headers()

    def version_string(self) -> str:
        return "lappguard"  # no version: a scraper needs none, an attacker would like one

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: %s %s", self.address_string(), format % args)
