"""libnftables in-process through ctypes: the JSON documents ``nft -j -f -`` reads, without a
process per change.

``nft`` itself is a thin front end to this library, so both paths parse, check and send the
same batch; in-process saves starting a program and loading its libraries on every change,
and the output comes back as a string instead of through a pipe. A context opens its netlink
socket when it is created and keeps it, so it talks to the network namespace of the thread
that made it: :class:`Libnftables` creates it on its first run, in the caller's namespace.
"""

from __future__ import annotations

import ctypes
import threading

from agent.firewall.base import FirewallError, error_line

#: ``enum nft_output_flags`` in <nftables/libnftables.h>.
OUTPUT_JSON = 1 << 4
OUTPUT_TERSE = 1 << 11

#: The library's soname: the ABI the functions below are declared for.
DEFAULT_LIBRARY = "libnftables.so.1"


class Libnftables:
    """One libnftables context; runs JSON documents (batches or listings) one at a time.

    A context is not safe to share between threads, so runs take a lock; ctypes releases
    the GIL during the call, so other threads go on while the kernel works.
    """

    def __init__(self, path: str = DEFAULT_LIBRARY) -> None:
        self.path = path
        self._lib: ctypes.CDLL | None = None
        self._ctx: int | None = None
        self._lock = threading.Lock()

    @staticmethod
    def available(path: str = DEFAULT_LIBRARY) -> bool:
        """Whether the library loads here (``mode: auto`` falls back to the nft program)."""
        try:
            ctypes.CDLL(path)
        except OSError:
            return False
        return True

    def run(self, document: str, terse: bool = False) -> str:
        """Run one JSON document; nft's JSON output (empty for a change).

        ``terse`` leaves set elements out of listings, and libnftables then does not fetch
        them from the kernel at all.
        """
        with self._lock:
            lib, ctx = self._context()
            lib.nft_ctx_output_set_flags(ctx, OUTPUT_JSON | (OUTPUT_TERSE if terse else 0))
            failed = lib.nft_run_cmd_from_buffer(ctx, document.encode())
            output = lib.nft_ctx_get_output_buffer(ctx) or b""
            errors = lib.nft_ctx_get_error_buffer(ctx) or b""
        if failed:
            raise FirewallError(f"libnftables: {error_line(errors.decode(errors='replace'))}")
        return output.decode()

    def close(self) -> None:
        """Free the context and its netlink socket."""
        with self._lock:
            if self._lib is not None and self._ctx is not None:
                self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def _context(self) -> tuple[ctypes.CDLL, int]:
        if self._lib is None:
            self._lib = _load(self.path)
        if self._ctx is None:
            ctx = self._lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT: with a netlink socket
            if not ctx:
                raise FirewallError("libnftables: nft_ctx_new failed")
            if self._lib.nft_ctx_buffer_output(ctx) or self._lib.nft_ctx_buffer_error(ctx):
                self._lib.nft_ctx_free(ctx)
                raise FirewallError("libnftables: cannot buffer the context's output")
            self._ctx = ctx
        return self._lib, self._ctx


def _load(path: str) -> ctypes.CDLL:
    """The library with the prototypes we call declared (ctypes would guess int otherwise)."""
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise FirewallError(f"libnftables: cannot load {path}: {exc}") from exc
    ctx = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_new.restype = ctx
    lib.nft_ctx_free.argtypes = [ctx]
    lib.nft_ctx_free.restype = None
    lib.nft_ctx_output_set_flags.argtypes = [ctx, ctypes.c_uint]
    lib.nft_ctx_output_set_flags.restype = None
    for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
        getattr(lib, name).argtypes = [ctx]
        getattr(lib, name).restype = ctypes.c_int
    for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, name).argtypes = [ctx]
        getattr(lib, name).restype = ctypes.c_char_p
    lib.nft_run_cmd_from_buffer.argtypes = [ctx, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    return lib
