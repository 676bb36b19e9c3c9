"""Whether a PostgreSQL server answers on a port: its reply to an SSLRequest.

A client opens with an SSLRequest (length 8, code 80877103) before anything else; a
PostgreSQL server answers one byte, ``S`` (TLS offered) or ``N`` (not), and waits. No
startup packet, user name or password is ever sent.
"""

from __future__ import annotations

import struct

from checks.probes.wire import DEFAULT_TIMEOUT, BoundedReader, Target, connect

SSL_REQUEST = struct.pack("!II", 8, 80877103)


def postgres_answer(target: Target, timeout: float = DEFAULT_TIMEOUT) -> str:
    """What answered on an open port: "PostgreSQL (TLS offered)", "PostgreSQL (no TLS)" or
    a description of something else. Raises ProbeError when the port cannot be reached."""
    with connect(target, timeout) as sock:
        try:
            sock.sendall(SSL_REQUEST)
            reply = BoundedReader(sock, timeout).read(1)
        except TimeoutError:
            return f"no PostgreSQL answer within {timeout:g}s"
        except OSError as exc:
            return f"not PostgreSQL (connection closed: {exc.strerror or exc})"
    if reply == b"S":
        return "PostgreSQL (TLS offered)"
    if reply == b"N":
        return "PostgreSQL (no TLS)"
    return "not PostgreSQL (closed without an answer)" if not reply else "not PostgreSQL"
