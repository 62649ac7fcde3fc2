"""Reading a container's cgroup files, wherever they are: in cgroup v1's
hierarchies (one directory per controller) or v2's single directory. Used by
pause (the freezer), top (the processes) and stats."""

from __future__ import annotations

import os

from .. import _core
from .records import ContainerRecords


def cgroup_dirs(svc: ContainerRecords, cid: str) -> list[str]:
    try:
        return [d for d in _core.cgroup_dirs(svc.cgroup_path(svc.get(cid)))
                if os.path.isdir(d)]
    except Exception:  # noqa: BLE001 - no cgroup: nothing to read
        return []


def cgroup_file(dirs: list[str], name: str) -> str | None:
    for d in dirs:
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return None


def read_text(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cgroup_pids(svc: ContainerRecords, cid: str) -> list[int]:
    pids: set[int] = set()
    for d in cgroup_dirs(svc, cid):
        txt = read_text(os.path.join(d, "cgroup.procs"))
        if txt:
            pids.update(int(x) for x in txt.split())
            break
    return sorted(pids)
