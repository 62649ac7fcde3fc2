"""The rootless daemon's network namespace (podman's "rootless netns"): one
namespace of the daemon's user namespace, pinned at `<exec-root>/rootless-netns`,
where the bridges, the containers' host-side veths and the nftables table
live exactly as they do in the host's namespace for root. The daemon itself
stays in the host's namespace (its API, `--network host`, published ports).

Its way out, when slirp4netns is there and /dev/net/tun usable, is slirp4netns on a tap device (`tap0`, 10.0.2.100/24, gateway
10.0.2.2, DNS proxy 10.0.2.3); the bridges masquerade through it. slirp4netns
gets the read end of a pipe whose write end only the daemon holds
(`--exit-fd`): it exits with the daemon however the daemon dies. A restarted
daemon that joined its predecessor's namespaces (containers outlived it) finds
the namespace, its bridges and veths as they were and starts a new
slirp4netns on it; otherwise the namespace dies with the user namespace.

Kernel work "on the host side" (netlink, nftables, sysctls) runs on one
worker thread that entered the namespace: setns affects only the calling
thread, and no thread could enter the host's namespace again (it belongs to
the initial user namespace), so the caller's threads never move.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

from .. import _core
from ..errors import DockyardError
from ..rootless import NETNS_FILE, usernet_problem
from .nft import enter_netns

log = logging.getLogger("dockyard.network")

#: slirp4netns's fixed addresses (its defaults, as Docker rootless has them).
SLIRP_DNS = "10.0.2.3"
#: Generous: slirp4netns is ready within ~20 ms here.
READY_TIMEOUT = 20.0
T = TypeVar("T")


class UserNetError(DockyardError):
    pass


class RootlessNetns:
    def __init__(self, exec_root: Path) -> None:
        self.path = Path(exec_root) / NETNS_FILE
        self.log_path = Path(exec_root) / "slirp4netns.log"
        self._worker: ThreadPoolExecutor | None = None
        self._slirp: subprocess.Popen[bytes] | None = None
        self._exit_w: int | None = None
        self._lock = threading.Lock()

    # --- the namespace and the thread in it -------------------------------------
    def start(self) -> None:
        """Pin (or find again) the namespace, start the worker in it and
        slirp4netns on it."""
        try:
            _core.netns_create(str(self.path))
            fresh = True
        except FileExistsError:  # pinned by our predecessor, or an older daemon
            fresh = False
        self._worker = ThreadPoolExecutor(1, "dockyard-rootless-netns", self._enter)
        if not fresh:
            try:
                self.call(_core.link_names, "")
            except Exception as e:  # noqa: BLE001 - a namespace of an older user namespace
                log.info("rootless: %s is not ours to enter (%s): a new one", self.path, e)
                self._worker.shutdown()
                _core.netns_remove(str(self.path))
                _core.netns_create(str(self.path))
                self._worker = ThreadPoolExecutor(1, "dockyard-rootless-netns", self._enter)
        else:
            log.info("rootless: network namespace %s", self.path)
        problem = usernet_problem()
        if problem is None:
            self._start_slirp()
        else:  # bridges, names and published ports still work
            log.warning("rootless: no way out for containers: it needs %s", problem)

    def _enter(self) -> None:
        enter_netns(str(self.path))

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` inside the namespace (threads and processes it starts
        are born there too)."""
        if self._worker is None:
            raise UserNetError("rootless: the network namespace is not set up")
        return self._worker.submit(fn, *args).result()

    # --- slirp4netns ---------------------------------------------------------------
    def _start_slirp(self) -> None:
        exe = shutil.which("slirp4netns")
        if exe is None:
            raise UserNetError("rootless: slirp4netns not found")
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        try:
            with open(self.log_path, "ab") as out:
                self._slirp = subprocess.Popen(
                    [exe, "--configure", "--mtu=65520", "--disable-host-loopback",
                     "--enable-sandbox", "--enable-seccomp", "--netns-type=path",
                     f"--ready-fd={ready_w}", f"--exit-fd={exit_r}", str(self.path), "tap0"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, pass_fds=(ready_w, exit_r),
                    start_new_session=True)
        except BaseException:
            for fd in (ready_r, ready_w, exit_r, exit_w):
                os.close(fd)
            raise
        os.close(ready_w)
        os.close(exit_r)
        self._exit_w = exit_w  # close-on-exec: only this process holds it
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            got = b""
            while not got and time.monotonic() < deadline:
                r, _, _ = select.select([ready_r], [], [], 0.2)
                if r:
                    got = os.read(ready_r, 1) or b"EOF"
                elif self._slirp.poll() is not None:
                    break
            if got != b"1":
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                self.close()
                raise UserNetError("rootless: slirp4netns did not start: "
                                   + (" / ".join(tail) or "no output"))
        finally:
            os.close(ready_r)
        log.info("rootless: slirp4netns (pid %d) gives %s its way out", self._slirp.pid,
                 self.path.name)

    def close(self, keep_netns: bool = False) -> None:
        """slirp4netns stopped, the worker ended; the namespace unpinned
        unless containers still use it (they keep it alive in any case)."""
        with self._lock:
            if self._exit_w is not None:
                os.close(self._exit_w)
                self._exit_w = None
            if self._slirp is not None:
                try:
                    self._slirp.wait(5)
                except subprocess.TimeoutExpired:
                    self._slirp.kill()
                    self._slirp.wait()
                self._slirp = None
            if self._worker is not None:
                self._worker.shutdown()
                self._worker = None
            if not keep_netns:
                _core.netns_remove(str(self.path))
