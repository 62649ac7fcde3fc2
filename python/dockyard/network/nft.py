"""Running nftables scripts: in-process through libnftables (the library `nft`
itself is built on, from Debian's nftables package), else by exec'ing `nft`.

In-process a whole table is replaced in ~0.3 ms here; an exec of `nft -f`
costs ~12 ms, which would dominate a container's start. A script can also run
inside another network namespace (a container's), from a short-lived thread
that enters it, so the caller's namespace never changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import threading

from ..errors import DockyardError

CLONE_NEWNET = 0x40000000


class FirewallError(DockyardError):
    pass


_lib: ctypes.CDLL | None | bool = None
_lock = threading.Lock()



def enter_netns(path: str) -> None:
    """Move the calling thread (only it: setns is per thread) into the
    network namespace pinned at `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"enter {path}: {os.strerror(e)}")
    finally:
        os.close(fd)

def _libnftables() -> ctypes.CDLL | None:
    global _lib
    if _lib is None:
        _lib = False
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name, use_errno=True)
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            _lib = lib
        except (OSError, AttributeError):
            pass
    return _lib or None


def available() -> bool:
    return _libnftables() is not None or shutil.which("nft") is not None


def _run_here(script: str) -> str:
    lib = _libnftables()
    if lib is None:
        exe = shutil.which("nft")
        if exe is None:
            raise FirewallError("nftables not found: install the nftables package, or run "
                                "the daemon with --iptables=false")
        r = subprocess.run([exe, "-f", "-"], input=script.encode(), capture_output=True)
        if r.returncode != 0:
            raise FirewallError(f"nft: {r.stderr.decode(errors='replace').strip()}")
        return r.stdout.decode(errors="replace")
    # a context per call: its netlink socket belongs to the caller's namespace
    ctx = lib.nft_ctx_new(0)
    try:
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        if lib.nft_run_cmd_from_buffer(ctx, script.encode()) != 0:
            err = lib.nft_ctx_get_error_buffer(ctx) or b""
            raise FirewallError(f"nft: {err.decode(errors='replace').strip()}")
        return (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
    finally:
        lib.nft_ctx_free(ctx)


def output(command: str) -> str | None:
    """What a listing command prints (None if it fails, e.g. no such chain)."""
    try:
        with _lock:
            return _run_here(command)
    except FirewallError:
        return None


def run(script: str, netns: str | None = None) -> None:
    """Run an nft script (one transaction), here or in the namespace at `netns`."""
    if netns is None:
        with _lock:
            _run_here(script)
        return
    out: list[BaseException] = []

    def inside() -> None:
        try:
            enter_netns(netns)
            _run_here(script)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out.append(e)

    # The thread ends in that namespace and dies with it.
    t = threading.Thread(target=inside, name="dockyard-nft")
    t.start()
    t.join()
    if out:
        raise out[0]
