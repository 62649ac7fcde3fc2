"""A container's PID, IPC and UTS namespaces and its sysctls, as HostConfig's
`PidMode`, `IpcMode`, `UTSMode` and `Sysctls` ask, with dockerd's checks and
messages; plus the path form `ns:<namespace file>` (podman's syntax, also taken
for `NetworkMode`) that joins a namespace pinned by `_core.ns_pin`, as a CRI
pod's containers join their sandbox's namespaces.

Create checks the syntax and records `container:<name>` donors by full ID (as
dockerd); start resolves each mode to what the runtime spec needs: "host" (no
namespace of that kind), a namespace file to join, or None (a new one).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _core
from ..errors import DockyardError, InvalidParameter
from ..graphdriver.mounts import is_mount_point
from .model import Container

#: The path form of a mode: join the namespace pinned at an absolute path.
NS_PREFIX = "ns:"
IPC_MODES = ("", "private", "shareable", "none", "host")
#: ioctl(NS_GET_NSTYPE) on a namespace file: its CLONE_NEW* flag.
NS_GET_NSTYPE = 0xB703
CLONE_FLAGS = {"net": 0x40000000, "ipc": 0x08000000, "uts": 0x04000000, "pid": 0x20000000}
#: Where a shareable container's /dev/shm lives on the host (its joiners bind it).
SHM_DIR = "shm"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024

#: runc's sysctls that belong to the IPC namespace (besides fs.mqueue.*).
IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def ns_path(mode: str) -> str | None:
    """The file of an "ns:<path>" mode, else None."""
    return mode[len(NS_PREFIX):] if mode.startswith(NS_PREFIX) else None


def _donor(mode: str) -> str | None:
    return mode.split(":", 1)[1] if mode.startswith("container:") else None


def check_create(hc: dict[str, Any], config: dict[str, Any],
                 get: Callable[[str], Container]) -> None:
    """At create (hc is updated in place): dockerd's refusals, IpcMode's daemon
    default ("private"), and `container:<name>` donors recorded by full ID
    (a missing one is dockerd's 400 "No such container")."""
    if (hc.get("UTSMode") or "") == "host" and config.get("Hostname"):
        raise InvalidParameter("conflicting options: hostname and the UTS mode")
    if not hc.get("IpcMode"):
        hc["IpcMode"] = "private"
    for key in ("PidMode", "IpcMode"):
        ref = _donor(hc.get(key) or "")
        if ref:
            try:
                hc[key] = f"container:{get(ref).id}"
            except DockyardError as e:
                raise InvalidParameter(str(e)) from None
    for key in ("NetworkMode", "IpcMode", "UTSMode", "PidMode"):
        path = ns_path(hc.get(key) or "")
        if path is not None and not os.path.isabs(path):
            raise InvalidParameter(f"invalid {key} {hc[key]!r}: the namespace file must be an "
                                   "absolute path")


def check_namespace_file(path: str, kind: str, what: str) -> None:
    """Check that `path` is a namespace file of `kind` (net, ipc, uts, pid):
    a start error (500, as dockerd's for a container: mode) if not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise DockyardError(f"cannot join {what} namespace {path}: {e.strerror}") from None
    try:
        got = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        raise DockyardError(f"cannot join {what} namespace {path}: not a namespace file") \
            from None
    finally:
        os.close(fd)
    if got != CLONE_FLAGS[kind]:
        article = "an" if kind == "ipc" else "a"
        raise DockyardError(f"cannot join {what} namespace {path}: not {article} {kind} "
                            "namespace")


class RuntimeRefused(DockyardError):
    """A spec runc would refuse to run (its words): a start failure as runc's."""


@dataclass
class Namespaces:
    """What start resolved: per kind ("pid", "ipc", "uts") "host", a namespace
    file to join, or absent (a new one); and how /dev/shm is made."""

    join: dict[str, str] = field(default_factory=dict)
    #: None: the spec's private tmpfs; "": no /dev/shm (IpcMode none); else a
    #: host directory bound there (the host's, or a shareable donor's).
    shm: str | None = None


def resolve(c: Container, get: Callable[[str], Container], container_dir: Callable[[str], Path]
            ) -> Namespaces:
    """At start: the modes turned into namespaces to join, with dockerd's
    errors for a donor that is gone, stopped or (IPC) not shareable."""
    hc = c.hostconfig
    out = Namespaces()
    pid = hc.get("PidMode") or ""
    if pid == "host":
        out.join["pid"] = "host"
    elif (ref := _donor(pid)) is not None:
        try:
            donor = get(ref) if ref else None
        except DockyardError as e:
            donor, why = None, str(e)
        else:
            why = 'invalid name or ID supplied: ""'
        if donor is None:
            raise DockyardError(f"cannot join PID of a non running container: {ref}: {why}")
        if not donor.state.get("Running") or not donor.state.get("Pid"):
            raise DockyardError(f"container {donor.id} is not running")
        out.join["pid"] = f"/proc/{int(donor.state['Pid'])}/ns/pid"
    elif (path := ns_path(pid)) is not None:
        check_namespace_file(path, "pid", "PID")
        out.join["pid"] = path
    ipc = hc.get("IpcMode") or ""
    if ipc == "host":
        out.join["ipc"] = "host"
        out.shm = "/dev/shm"
    elif ipc == "none":
        out.shm = ""
    elif ipc == "shareable":
        out.shm = str(container_dir(c.id) / SHM_DIR)
    elif (ref := _donor(ipc)) is not None:
        out.join["ipc"], out.shm = _ipc_donor(ref, get, container_dir)
    elif (path := ns_path(ipc)) is not None:
        check_namespace_file(path, "ipc", "IPC")
        out.join["ipc"] = path
    elif ipc not in IPC_MODES:
        raise DockyardError(f"Invalid IPC mode: {ipc}")
    uts = hc.get("UTSMode") or ""
    if uts == "host":
        out.join["uts"] = "host"
    elif (path := ns_path(uts)) is not None:
        check_namespace_file(path, "uts", "UTS")
        out.join["uts"] = path
    return out


def _ipc_donor(ref: str, get: Callable[[str], Container],
               container_dir: Callable[[str], Path]) -> tuple[str, str]:
    prefix = f"can't join IPC of container {ref}: "
    if not ref:
        raise DockyardError(prefix + 'invalid name or ID supplied: ""')
    try:
        donor = get(ref)
    except DockyardError as e:
        raise DockyardError(prefix + str(e)) from None
    prefix = f"can't join IPC of container {donor.id}: "
    if not donor.state.get("Running") or not donor.state.get("Pid"):
        raise DockyardError(prefix + f"container {donor.id} is not running")
    mode = donor.hostconfig.get("IpcMode") or ""
    if mode == "host":
        return "host", "/dev/shm"
    shm = container_dir(donor.id) / SHM_DIR
    if mode != "shareable" or not os.path.ismount(shm):
        raise DockyardError(prefix + "non-shareable IPC (hint: use IpcMode:shareable for the "
                            "donor container)")
    return f"/proc/{int(donor.state['Pid'])}/ns/ipc", str(shm)


def mount_shareable_shm(c: Container, cdir: Path) -> None:
    """A shareable container's /dev/shm: a tmpfs on the host (as dockerd's
    containers/<id>/mounts/shm), so that its IPC joiners bind the same one."""
    shm = cdir / SHM_DIR
    if os.path.ismount(shm):
        return
    shm.mkdir(exist_ok=True)
    _core.mount_tmpfs(str(shm), int(c.hostconfig.get("ShmSize") or DEFAULT_SHM_SIZE))
    os.chmod(shm, 0o1777)


def unmount_shm(cdir: Path) -> None:
    """After the container's exit (or a failed start): its shareable /dev/shm goes."""
    shm = cdir / SHM_DIR
    if is_mount_point(shm):
        try:
            _core.unmount(str(shm), detach=True)
        except (OSError, DockyardError):  # gone meanwhile
            pass


def check_sysctls(sysctls: dict[str, str], private: set[str]) -> None:
    """runc's validation of `Sysctls` (only namespaced ones, in a namespace
    the container has: `private` holds "net", "ipc", "uts" for each one it
    does not share with the host), with runc's words."""
    for k in sysctls:
        if k in IPC_SYSCTLS or k.startswith("fs.mqueue."):
            if "ipc" in private:
                continue
            raise RuntimeRefused(f'sysctl "{k}" is not allowed in the hosts ipc namespace')
        if k.startswith("net."):
            if "net" in private:
                continue
            raise RuntimeRefused(f'sysctl "{k}" not allowed in host network namespace')
        if "uts" in private:
            if k == "kernel.domainname":
                continue
            if k == "kernel.hostname":
                raise RuntimeRefused(f'sysctl "{k}" is not allowed as it conflicts with the OCI '
                                     '"hostname" field')
        raise RuntimeRefused(f'sysctl "{k}" is not in a separate kernel namespace')
