"""`docker pause` / `unpause`: freezing a container's cgroup (v1's freezer
controller or v2's cgroup.freeze), and the thaw that must come before a
signal (a frozen process cannot act on one) or the freeze around a commit."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator

from ..errors import Conflict, DockyardError, NotFound
from ..rootless import delegation, rootless_uid
from .cgroups import cgroup_dirs, cgroup_file, read_text
from .model import Container
from .records import ContainerRecords


def freeze(svc: ContainerRecords, cid: str, frozen: bool) -> None:
    dirs = cgroup_dirs(svc, cid)
    v1 = cgroup_file(dirs, "freezer.state")
    if v1 is not None:
        with open(v1, "w") as f:
            f.write("FROZEN" if frozen else "THAWED")
        want = "FROZEN" if frozen else "THAWED"
        deadline = time.monotonic() + 10
        while True:
            cur = (read_text(v1) or "").strip()
            if cur == want:
                return
            if time.monotonic() > deadline:
                raise DockyardError(f"freezer of container {cid} stays {cur}")
            if frozen:  # FREEZING: writing again retries the tasks that did not stop
                with open(v1, "w") as f:
                    f.write("FROZEN")
            time.sleep(0.01)
    v2 = cgroup_file(dirs, "cgroup.freeze")
    uid = rootless_uid()
    if v2 is None and uid is not None:
        raise DockyardError(f"rootless: pause needs the container's cgroup (the freezer): "
                            f"cgroup v2 delegated to uid {uid} (this host: "
                            f"{delegation().missing or 'no cgroup for this container'}); see "
                            "`dockyard rootless check`")
    if v2 is None:
        raise DockyardError(f"no freezer cgroup for container {cid}")
    with open(v2, "w") as f:
        f.write("1" if frozen else "0")
    events = os.path.join(os.path.dirname(v2), "cgroup.events")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in (read_text(events) or "").splitlines():
            k, _, v = line.partition(" ")
            if k == "frozen" and v.strip() == ("1" if frozen else "0"):
                return
        time.sleep(0.01)
    raise DockyardError(f"freezer of container {cid} did not settle")


def pause(svc: ContainerRecords, ref: str) -> None:
    c = svc.get(ref)
    with svc.lock(c.id):
        c = svc.get(c.id)
        if not c.state.get("Running") or c.state.get("Prepared"):
            raise Conflict(f"Container {c.id} is not running")
        if c.state.get("Paused"):
            raise Conflict(f"Container {c.id} is already paused")
        if c.state.get("Restarting"):
            raise Conflict(f"Container {c.id} is restarting, wait until the container "
                           "is running")
        freeze(svc, c.id, True)
        c.state.update(Paused=True, Status="paused")
        svc.save(c)


def unpause(svc: ContainerRecords, ref: str) -> None:
    c = svc.get(ref)
    with svc.lock(c.id):
        c = svc.get(c.id)
        if not c.state.get("Paused"):
            raise Conflict(f"Container {c.id} is not paused")
        freeze(svc, c.id, False)
        c.state.update(Paused=False, Status="running" if c.state.get("Running") else "exited")
        svc.save(c)


def thaw_if_paused(svc: ContainerRecords, ref: str) -> None:
    """Before stopping or killing: a frozen process cannot act on a signal."""
    try:
        c = svc.get(ref)
    except NotFound:
        return
    if c.state.get("Paused"):
        try:
            unpause(svc, c.id)
        except Conflict:
            pass


@contextmanager
def paused_for(svc: ContainerRecords, c: Container, want: bool) -> Iterator[None]:
    """Freeze a running container for the duration (commit with pause=1)."""
    do = want and bool(c.state.get("Running")) and not c.state.get("Paused")
    if do:
        try:
            freeze(svc, c.id, True)
        except (DockyardError, OSError):  # it exited meanwhile: its cgroup is going
            do = False
    try:
        yield
    finally:
        if do:
            try:
                freeze(svc, c.id, False)
            except (DockyardError, OSError):
                # Its cgroup went away meanwhile: the container was exiting
                # when frozen and is gone now; nothing is left to thaw.
                if cgroup_dirs(svc, c.id):
                    raise
