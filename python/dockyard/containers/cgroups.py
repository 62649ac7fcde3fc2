"""Reading a container's cgroup files, wherever they are: in cgroup v1's
hierarchies (one directory per controller) or v2's single directory. Used by
pause (the freezer), top (the processes) and stats; and writing the limits
`docker update` changes on a running container."""

from __future__ import annotations

import errno
import os

from .. import _core
from ..rootless import rootless_uid
from .records import ContainerRecords


def cgroup_dirs(svc: ContainerRecords, cid: str) -> list[str]:
    try:
        return [d for d in _core.cgroup_dirs(svc.cgroup_path(svc.get(cid)))
                if os.path.isdir(d)]
    except Exception:  # noqa: BLE001 - no cgroup: nothing to read
        return []


def host_cgroup_file(name: str) -> str | None:
    """`name` at the top of the host's hierarchies (what the host offers)."""
    try:
        # The hierarchies' mount points: the parents of any cgroup's directories.
        roots = [os.path.dirname(d) for d in _core.cgroup_dirs("probe")]
    except Exception:  # noqa: BLE001 - no cgroups mounted
        return None
    return cgroup_file(roots, name)


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
    if not pids and rootless_uid() is not None:
        # Rootless containers have no cgroup: their process tree instead.
        pid = svc.get(cid).state.get("Pid") or 0
        if pid > 0:
            pids.update(process_tree(pid))
    return sorted(pids)


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (/proc/PID/task/TID/children)."""
    out, i = [pid], 0
    while i < len(out):
        p = out[i]
        i += 1
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            out.extend(int(x) for x in (read_text(f"/proc/{p}/task/{t}/children") or "").split())
    return out


def is_v2(dirs: list[str]) -> bool:
    """A pure cgroup v2 host: one hierarchy, the unified one. (A hybrid host's
    unified directory comes with v1 directories whose controllers win, as the
    runtime's `Layout` picks them.)"""
    return len(dirs) == 1 and os.path.exists(os.path.join(dirs[0], "cgroup.controllers"))


class CgroupWriteError(Exception):
    """A limit the kernel refused, with runc's words for it."""


def _write(dirs: list[str], name: str, value: str) -> None:
    path = cgroup_file(dirs, name)
    if path is None:
        return  # the controller is not mounted here: nothing to limit
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        if name in ("memory.limit_in_bytes", "memory.max") and e.errno == errno.EBUSY:
            usage = read_text(cgroup_file(dirs, "memory.usage_in_bytes")
                              or cgroup_file(dirs, "memory.current")) or "0"
            peak = read_text(cgroup_file(dirs, "memory.max_usage_in_bytes")
                             or cgroup_file(dirs, "memory.peak")) or "0"
            raise CgroupWriteError(f"unable to set memory limit to {value} (current usage: "
                                   f"{usage.strip()}, peak usage: {peak.strip()})") from None
        raise CgroupWriteError(f'failed to write "{value}": write {path}: '
                               f"{os.strerror(e.errno or 5).lower()}") from None


def _read_int(dirs: list[str], name: str) -> int | None:
    txt = read_text(cgroup_file(dirs, name))
    try:
        return int(txt.strip()) if txt is not None else None
    except ValueError:
        return None


def update_resources(dirs: list[str], res: dict[str, int | str]) -> None:
    """Write the resources of a `docker update` into a live cgroup (the keys of
    the runtime spec's `resources`: memory, memory_swap, memory_reservation,
    cpu_shares, cpu_period, cpu_quota, cpuset_cpus, cpuset_mems, pids_limit,
    blkio_weight). Only the keys given change, in the order runc writes them."""
    if is_v2(dirs):
        _update_v2(dirs, res)
    else:
        _update_v1(dirs, res)


def _update_v1(dirs: list[str], res: dict[str, int | str]) -> None:
    if "cpuset_cpus" in res:
        _write(dirs, "cpuset.cpus", str(res["cpuset_cpus"]))
    if "cpuset_mems" in res:
        _write(dirs, "cpuset.mems", str(res["cpuset_mems"]))
    mem = int(res.get("memory", 0))
    swap = int(res.get("memory_swap", 0))
    has_memsw = cgroup_file(dirs, "memory.memsw.limit_in_bytes") is not None
    if not has_memsw:
        swap = 0

    def set_swap() -> None:
        if swap:
            _write(dirs, "memory.memsw.limit_in_bytes", str(swap))

    def set_mem() -> None:
        if mem:
            _write(dirs, "memory.limit_in_bytes", str(mem))

    # memsw may never drop below memory: raise it first when it grows.
    cur = _read_int(dirs, "memory.limit_in_bytes")
    if mem and swap and (swap == -1 or (cur is not None and cur < swap)):
        set_swap()
        set_mem()
    else:
        set_mem()
        set_swap()
    if "memory_reservation" in res:
        _write(dirs, "memory.soft_limit_in_bytes", str(res["memory_reservation"]))
    if "cpu_shares" in res:
        shares = int(res["cpu_shares"])
        _write(dirs, "cpu.shares", str(shares))
        got = _read_int(dirs, "cpu.shares")
        if got is not None and got != shares:  # the kernel clamps: say so, as runc
            bound = "maximum" if shares > got else "minimum"
            raise CgroupWriteError(f"the {bound} allowed cpu-shares is {got}")
    if "cpu_period" in res:
        _write(dirs, "cpu.cfs_period_us", str(res["cpu_period"]))
    if "cpu_quota" in res:
        q = int(res["cpu_quota"])
        _write(dirs, "cpu.cfs_quota_us", str(q if q > 0 else -1))
    if "pids_limit" in res:
        p = int(res["pids_limit"])
        _write(dirs, "pids.max", str(p) if p > 0 else "max")
    if "blkio_weight" in res:
        _write(dirs, "blkio.weight", str(res["blkio_weight"]))


def cpu_weight(shares: int) -> int:
    """cgroup v2's cpu.weight for v1 cpu.shares (runc's conversion)."""
    return 1 + ((min(max(shares, 2), 262144) - 2) * 9999) // 262142


def _update_v2(dirs: list[str], res: dict[str, int | str]) -> None:
    if "cpuset_cpus" in res:
        _write(dirs, "cpuset.cpus", str(res["cpuset_cpus"]))
    if "cpuset_mems" in res:
        _write(dirs, "cpuset.mems", str(res["cpuset_mems"]))
    mem = int(res.get("memory", 0))
    swap = int(res.get("memory_swap", 0))
    if mem:
        _write(dirs, "memory.max", str(mem) if mem > 0 else "max")
        if swap:
            # v2 limits swap alone: the memory+swap total less the memory
            _write(dirs, "memory.swap.max", "max" if swap < 0 else str(max(swap - mem, 0)))
    elif swap:
        cur = read_text(cgroup_file(dirs, "memory.max")) or "max"
        if swap < 0 or cur.strip() == "max":
            _write(dirs, "memory.swap.max", "max")
        else:
            _write(dirs, "memory.swap.max", str(max(swap - int(cur), 0)))
    if "memory_reservation" in res:
        r = int(res["memory_reservation"])
        _write(dirs, "memory.low", str(r) if r > 0 else "0")
    if "cpu_shares" in res:
        _write(dirs, "cpu.weight", str(cpu_weight(int(res["cpu_shares"]))))
    if "cpu_quota" in res or "cpu_period" in res:
        cur = (read_text(cgroup_file(dirs, "cpu.max")) or "max 100000").split()
        quota = cur[0]
        if "cpu_quota" in res:
            q = int(res["cpu_quota"])
            quota = str(q) if q > 0 else "max"
        period = str(res.get("cpu_period") or (cur[1] if len(cur) > 1 else "100000"))
        _write(dirs, "cpu.max", f"{quota} {period}")
    if "pids_limit" in res:
        p = int(res["pids_limit"])
        _write(dirs, "pids.max", str(p) if p > 0 else "max")
    if "blkio_weight" in res:
        w = int(res["blkio_weight"])
        if cgroup_file(dirs, "io.bfq.weight") is not None:
            _write(dirs, "io.bfq.weight", str(w))
        else:  # io.weight takes 1-10000; blkio's 10-1000 scales as runc maps it
            _write(dirs, "io.weight", f"default {1 + (w - 10) * 9999 // 990}")
