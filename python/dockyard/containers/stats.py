"""`docker stats`: one sample of a running container's CPU, memory and pids
counters from its cgroup (v1 or v2), in dockerd's JSON shape; the client
computes rates from two samples (`precpu_stats`, `preread`)."""

from __future__ import annotations

import os
from typing import Any

from ..imageconfig import now_rfc3339
from .cgroups import cgroup_dirs, cgroup_file, read_text
from .model import ZERO_TIME, Container
from .records import ContainerRecords


def _cgroup_value(dirs: list[str], name: str) -> str | None:
    return read_text(cgroup_file(dirs, name))


def _kv(txt: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (txt or "").splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v.strip())
        except ValueError:
            pass
    return out


def _int(txt: str | None) -> int | None:
    if txt is None:
        return None
    try:
        return int(txt.strip())
    except ValueError:
        return None


def system_cpu_usage() -> int:
    """Host CPU time in ns from /proc/stat's first line (dockerd's formula)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                parts = line.split()
                ticks = sum(int(x) for x in parts[1:8])
                return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return 0


def machine_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def empty_stats(c: Container) -> dict[str, Any]:
    return {
        "read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {}, "blkio_stats": {
            "io_service_bytes_recursive": None, "io_serviced_recursive": None,
            "io_queue_recursive": None, "io_service_time_recursive": None,
            "io_wait_time_recursive": None, "io_merged_recursive": None,
            "io_time_recursive": None, "sectors_recursive": None},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                    "usage_in_usermode": 0}, "throttling_data": {
            "periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                       "usage_in_usermode": 0}, "throttling_data": {
            "periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "memory_stats": {}, "name": c.name, "id": c.id,
    }


def sample(svc: ContainerRecords, c: Container) -> dict[str, Any]:
    """One stats sample of the running container (without precpu/preread)."""
    dirs = cgroup_dirs(svc, c.id)
    out = empty_stats(c)
    out["read"] = now_rfc3339()
    ncpu = len(os.sched_getaffinity(0))
    hz = os.sysconf("SC_CLK_TCK")
    cpu: dict[str, Any] = {}
    if cgroup_file(dirs, "cpuacct.usage") is not None:
        total = _int(_cgroup_value(dirs, "cpuacct.usage")) or 0
        percpu = [int(x) for x in (_cgroup_value(dirs, "cpuacct.usage_percpu") or "").split()]
        s = _kv(_cgroup_value(dirs, "cpuacct.stat"))
        cpu["cpu_usage"] = {"total_usage": total, "percpu_usage": percpu or None,
                            "usage_in_kernelmode": s.get("system", 0) * 1_000_000_000 // hz,
                            "usage_in_usermode": s.get("user", 0) * 1_000_000_000 // hz}
        if not percpu:
            del cpu["cpu_usage"]["percpu_usage"]
        t = _kv(_cgroup_value([d for d in dirs if "cpu.cfs_period_us" in os.listdir(d)]
                              if dirs else [], "cpu.stat"))
        cpu["throttling_data"] = {"periods": t.get("nr_periods", 0),
                                  "throttled_periods": t.get("nr_throttled", 0),
                                  "throttled_time": t.get("throttled_time", 0)}
    else:
        s = _kv(_cgroup_value(dirs, "cpu.stat"))
        cpu["cpu_usage"] = {"total_usage": s.get("usage_usec", 0) * 1000,
                            "usage_in_kernelmode": s.get("system_usec", 0) * 1000,
                            "usage_in_usermode": s.get("user_usec", 0) * 1000}
        cpu["throttling_data"] = {"periods": s.get("nr_periods", 0),
                                  "throttled_periods": s.get("nr_throttled", 0),
                                  "throttled_time": s.get("throttled_usec", 0) * 1000}
    cpu["system_cpu_usage"] = system_cpu_usage()
    cpu["online_cpus"] = ncpu
    out["cpu_stats"] = cpu
    mem: dict[str, Any] = {}
    machine = machine_memory()
    if cgroup_file(dirs, "memory.usage_in_bytes") is not None:
        mem["usage"] = _int(_cgroup_value(dirs, "memory.usage_in_bytes")) or 0
        mem["max_usage"] = _int(_cgroup_value(dirs, "memory.max_usage_in_bytes")) or 0
        mem["stats"] = _kv(_cgroup_value(dirs, "memory.stat"))
        mem["failcnt"] = _int(_cgroup_value(dirs, "memory.failcnt")) or 0
        limit = _int(_cgroup_value(dirs, "memory.limit_in_bytes")) or 0
    elif cgroup_file(dirs, "memory.current") is not None:
        mem["usage"] = _int(_cgroup_value(dirs, "memory.current")) or 0
        mem["stats"] = _kv(_cgroup_value(dirs, "memory.stat"))
        raw = (_cgroup_value(dirs, "memory.max") or "max").strip()
        limit = machine if raw == "max" else int(raw)
    else:
        limit = 0
    if mem:
        if machine and (limit == 0 or limit > machine):
            limit = machine
        mem["limit"] = limit
    out["memory_stats"] = mem
    pids: dict[str, Any] = {}
    cur = _int(_cgroup_value(dirs, "pids.current"))
    if cur is not None:
        pids["current"] = cur
        lim = _int(_cgroup_value(dirs, "pids.max"))
        if lim:
            pids["limit"] = lim
    out["pids_stats"] = pids
    out["networks"] = {}
    return out


def with_previous(cur: dict[str, Any], prev: dict[str, Any] | None) -> dict[str, Any]:
    if prev is not None:
        cur["preread"] = prev["read"]
        cur["precpu_stats"] = prev["cpu_stats"]
    return cur
