"""Running nft scripts through libnftables (the library behind the `nft` tool), without forking.

One script is one kernel transaction: it applies whole or not at all. This module decides nothing
about what the rules say; engine/net/rules.py renders them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading

from engine.errors import RuntimeFailure, Unavailable

LIBRARY = "libnftables.so.1"
# libnftables contexts are not thread-safe; one process-wide lock keeps calls apart.
_LOCK = threading.Lock()


@functools.cache
def _library() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError as exc:
        raise Unavailable(
            f"{LIBRARY} is missing: published ports and NAT need it", hint="install the nftables package"
        ) from exc
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


def available() -> bool:
    try:
        _library()
    except Unavailable:
        return False
    return True


def run(script: str) -> str:
    """Run an nft script as one transaction; return what it printed. RuntimeFailure on any error."""
    lib = _library()
    with _LOCK:
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise RuntimeFailure("nft: could not create a libnftables context")
        try:
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            code = lib.nft_run_cmd_from_buffer(ctx, script.encode())
            output = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
            error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        finally:
            lib.nft_ctx_free(ctx)
    if code != 0:
        raise RuntimeFailure(f"nft refused the ruleset: {error.strip()[-2000:]}", argv=["nft", "-f", "-"])
    return output


def ruleset() -> str:
    """The whole ruleset of the host, every table (for diagnosis and coexistence checks)."""
    return run("list ruleset")


def table(name: str) -> str:
    """Berth's own table as nft prints it, or "" when it does not exist."""
    try:
        return run(f"list table ip {name}")
    except RuntimeFailure:
        return ""
