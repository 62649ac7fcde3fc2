"""`docker update`: new resource limits or restart policy for a container.
The request is checked as dockerd checks it (its messages and statuses),
merged into the stored HostConfig, and, if the container runs, written
into its cgroup at once; a stopped container gets them at its next start.
A limit the kernel refuses leaves the stored HostConfig as it was."""

from __future__ import annotations

import os
from typing import Any

from ..errors import Conflict, DockyardError, InvalidParameter
from ..rootless import discard_limits, limits_refusal, rootless_uid
from ..sysinfo import swap_limit_supported
from .cgroups import CgroupWriteError, cgroup_dirs, host_cgroup_file, update_resources
from .records import ContainerRecords

MIN_MEMORY = 6 * 1024 * 1024
#: The resources `POST /containers/{id}/update` takes (UpdateConfig).
RESOURCE_INTS = ("Memory", "MemorySwap", "MemoryReservation", "KernelMemory", "CpuShares",
                 "CpuQuota", "CpuPeriod", "NanoCpus", "BlkioWeight", "CpuRealtimePeriod",
                 "CpuRealtimeRuntime")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure", "")
_JSON_TYPES = {str: "string", int: "number", float: "number", bool: "bool", dict: "object",
               list: "array"}


def _type_error(v: Any, field: str, go_type: str) -> InvalidParameter:
    """Go's decoding error for a value of the wrong JSON type (a 400)."""
    return InvalidParameter(f"json: cannot unmarshal {_JSON_TYPES.get(type(v), 'value')} into "
                            f"Go struct field {field} of type {go_type}")


def update(svc: ContainerRecords, ref: str, body: dict[str, Any]) -> list[str]:
    """Apply an UpdateConfig to container `ref`; returns dockerd's warnings."""
    c = svc.get(ref)
    req, policy, warnings = verify(body)
    with svc.lock(c.id):
        c = svc.get(c.id)
        before = dict(c.hostconfig)
        try:
            c.hostconfig = merged(c.hostconfig, req, policy)
        except Conflict as e:
            raise Conflict(f"Cannot update container {c.id}: {e}") from None
        svc.save(c)
        if c.state.get("Running") and not c.state.get("Restarting"):
            try:
                update_resources(cgroup_dirs(svc, c.id), live_resources(req))
            except CgroupWriteError as e:
                c.hostconfig = before
                svc.save(c)
                raise DockyardError(f"Cannot update container {c.id}: {e}") from None
        svc.emit(c, "update")
    return warnings


def _int(body: dict[str, Any], key: str) -> int:
    v = body.get(key)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int):
        raise _type_error(v, f"UpdateConfig.{key}", "int64")
    return v


def _cpu_list(spec: str) -> set[int] | None:
    """Linux's list format ("0-3,5"); None when it doesn't parse."""
    out: set[int] = set()
    for part in spec.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            return None
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            return None
        out.update(range(a, b + 1))
    return out


def _check_cpuset(value: str, what: str, avail_file: str) -> None:
    if not value:
        return
    want = _cpu_list(value)
    if want is None:
        raise InvalidParameter(f"Invalid value {value} for cpuset {what}: invalid format: {value}")
    avail_txt = ""
    path = host_cgroup_file(avail_file + ".effective") or host_cgroup_file(avail_file)
    if path is not None:
        with open(path) as f:
            avail_txt = f.read().strip()
    avail = _cpu_list(avail_txt) if avail_txt else None
    if avail is not None and not want <= avail:
        label = "CPUs" if what == "cpus" else "memory nodes"
        raise InvalidParameter(f"Requested {label} are not available - requested {value}, "
                               f"available: {avail_txt}")


def blkio_weight_supported() -> bool:
    """v1: the blkio hierarchy has weights (CFQ/BFQ); v2: the io controller."""
    if host_cgroup_file("blkio.weight") is not None:
        return True
    ctrls = host_cgroup_file("cgroup.controllers")
    if ctrls is None or host_cgroup_file("memory.limit_in_bytes") is not None:
        return False
    with open(ctrls) as f:
        return "io" in f.read().split()


def _supported(v1_file: str, v2_file: str | None = None) -> bool:
    """A cgroup feature: its v1 file, or on v2 its file (None: not on v2)."""
    if host_cgroup_file(v1_file) is not None:
        return True
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return False
    return v2_file is not None and host_cgroup_file(v2_file) is not None


#: The block I/O throttles, dockerd's words for each one this kernel lacks.
_THROTTLES = (("BlkioDeviceReadBps", "blkio.throttle.read_bps_device",
               "BPS Block I/O read limit", "Block I/O BPS read limit"),
              ("BlkioDeviceWriteBps", "blkio.throttle.write_bps_device",
               "BPS Block I/O write limit", "Block I/O BPS write limit"),
              ("BlkioDeviceReadIOps", "blkio.throttle.read_iops_device",
               "IOPS Block read limit", "Block I/O IOPS read limit"),
              ("BlkioDeviceWriteIOps", "blkio.throttle.write_iops_device",
               "IOPS Block write limit", "Block I/O IOPS write limit"))


def verify_create(hc: dict[str, Any], driver: str) -> list[str]:
    """dockerd's checks of a new container's resources: errors for what no
    Linux daemon offers, and for what this kernel lacks a warning with the
    value dropped from `hc` (dockerd 20.10's words)."""
    iso = hc.get("Isolation") or ""
    if iso not in ("", "default"):
        raise InvalidParameter(f'Invalid isolation: "{iso}" - linux only supports \'default\'')
    for req in hc.get("DeviceRequests") or []:
        caps = " ".join("[" + " ".join(map(str, c)) + "]" for c in req.get("Capabilities") or [])
        raise InvalidParameter(f'could not select device driver "{req.get("Driver") or ""}" '
                               f"with capabilities: [{caps}]")
    if hc.get("StorageOpt"):
        raise InvalidParameter("--storage-opt is supported only for overlay over xfs with "
                               "'pquota' mount option" if driver in ("overlay", "overlay2") else
                               f"--storage-opt is not supported by the {driver} storage driver")
    warnings: list[str] = []
    km = int(hc.get("KernelMemory") or 0)
    if km:
        if km < MIN_MEMORY:
            raise InvalidParameter("Minimum kernel memory limit allowed is 6MB")
        warnings.append("Specifying a kernel memory limit is deprecated and will be removed "
                        "in a future release.")
    sw = hc.get("MemorySwappiness")
    if sw is not None and int(sw) != -1:
        if not _supported("memory.swappiness"):
            warnings.append("Your kernel does not support memory swappiness capabilities or the "
                            "cgroup is not mounted. Memory swappiness discarded.")
            hc["MemorySwappiness"] = None
        elif not 0 <= int(sw) <= 100:
            raise InvalidParameter(f"Invalid value: {sw}, valid memory swappiness range is 0-100")
    if hc.get("OomKillDisable"):
        if not _supported("memory.oom_control"):
            warnings.append("Your kernel does not support OomKillDisable. OomKillDisable "
                            "discarded.")
            hc["OomKillDisable"] = False
        elif not int(hc.get("Memory") or 0):
            warnings.append("OOM killer is disabled for the container, but no memory limit is "
                            "set, this can result in the system running out of resources.")
    weight = int(hc.get("BlkioWeight") or 0)
    if weight and not blkio_weight_supported():
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not "
                        "mounted. Weight discarded.")
        hc["BlkioWeight"] = 0
    elif weight and not 10 <= weight <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    if hc.get("BlkioWeightDevice") and not _supported("blkio.weight_device", "io.weight"):
        warnings.append("Your kernel does not support Block I/O weight_device or the cgroup is "
                        "not mounted. Weight-device discarded.")
        hc["BlkioWeightDevice"] = []
    for key, v1_file, what, dropped in _THROTTLES:
        if hc.get(key) and not _supported(v1_file, "io.max"):
            warnings.append(f"Your kernel does not support {what} or the cgroup is not mounted. "
                            f"{dropped} discarded.")
            hc[key] = []
    period, runtime = int(hc.get("CpuRealtimePeriod") or 0), int(hc.get("CpuRealtimeRuntime") or 0)
    if period and not _supported("cpu.rt_period_us"):
        raise InvalidParameter("Your kernel does not support cgroup cpu real-time period")
    if runtime and not _supported("cpu.rt_runtime_us"):
        raise InvalidParameter("Your kernel does not support cgroup cpu real-time runtime")
    if period and runtime > period:
        raise InvalidParameter("cpu real-time runtime cannot be higher than cpu real-time period")
    return warnings


def verify(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, list[str]]:
    """dockerd's checks of an update, in its order: (the resources asked, the
    restart policy or None, warnings). Errors are 400s with dockerd's words."""
    policy = body.get("RestartPolicy")
    if policy is not None:
        if not isinstance(policy, dict):
            raise _type_error(policy, "UpdateConfig.RestartPolicy", "container.RestartPolicy")
        name = str(policy.get("Name") or "")
        count = _int(policy, "MaximumRetryCount")
        if name not in RESTART_POLICIES:
            raise InvalidParameter(f"invalid restart policy '{name}'")
        if name in ("always", "unless-stopped", "no") and count != 0:
            raise InvalidParameter(f"maximum retry count cannot be used with restart policy "
                                   f"'{name}'")
        if name == "on-failure" and count < 0:
            raise InvalidParameter("maximum retry count cannot be negative")
        policy = {"Name": name, "MaximumRetryCount": count} if name else None
    req: dict[str, Any] = {k: _int(body, k) for k in RESOURCE_INTS}
    for key in ("CpusetCpus", "CpusetMems"):
        v = body.get(key) or ""
        if not isinstance(v, str):
            raise _type_error(v, f"UpdateConfig.{key}", "string")
        req[key] = v
    req["PidsLimit"] = None if body.get("PidsLimit") is None else _int(body, "PidsLimit")
    uid = rootless_uid()
    if uid is not None:
        why = limits_refusal(req, uid)
        if why:
            raise InvalidParameter(why)
    warnings: list[str] = discard_limits(req)
    mem, swap = req["Memory"], req["MemorySwap"]
    if mem != 0 and mem < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if mem > 0 and swap != -1 and not swap_limit_supported():
        warnings.append("Your kernel does not support swap limit capabilities or the cgroup "
                        "is not mounted. Memory limited without swap.")
        req["MemorySwap"] = swap = -1
    if mem > 0 and swap > 0 and swap < mem:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, "
                               "see usage")
    res = req["MemoryReservation"]
    if res != 0 and res < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if mem > 0 and res > 0 and mem < res:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation "
                               "limit, see usage")
    if req["KernelMemory"] > 0:
        # Stored, never applied: the kernel deprecated kmem limits (dockerd 20.10 on).
        warnings.append("Specifying a kernel memory limit is deprecated and will be removed "
                        "in a future release.")
        if req["KernelMemory"] < MIN_MEMORY:
            raise InvalidParameter("Minimum kernel memory limit allowed is 6MB")
    if req["PidsLimit"] is not None and req["PidsLimit"] <= 0:
        req["PidsLimit"] = 0  # unlimited, stored as 0
    nano, period, quota = req["NanoCpus"], req["CpuPeriod"], req["CpuQuota"]
    if nano > 0 and period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = len(os.sched_getaffinity(0))
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only "
                               f"{ncpu} CPUs available")
    if period != 0 and (period < 1000 or period > 1000000):
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
                               "than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    _check_cpuset(req["CpusetCpus"], "cpus", "cpuset.cpus")
    _check_cpuset(req["CpusetMems"], "mems", "cpuset.mems")
    if req["BlkioWeight"] > 0 and not blkio_weight_supported():
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not "
                        "mounted. Weight discarded.")
        req["BlkioWeight"] = 0
    if req["BlkioWeight"] > 0 and not 10 <= req["BlkioWeight"] <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    return req, policy, warnings


def merged(hc: dict[str, Any], req: dict[str, Any], policy: dict[str, Any] | None
           ) -> dict[str, Any]:
    """The stored HostConfig with the update in it: zero values leave a field
    as it was. Conflicts with what is stored raise Conflict (a 409)."""
    out = dict(hc)
    cur = {k: int(hc.get(k) or 0) for k in ("NanoCpus", "CpuPeriod", "CpuQuota", "MemorySwap")}
    # NanoCpus stands for a period and quota: once one side is set, the other can't be.
    if req["NanoCpus"] > 0 and cur["CpuPeriod"] > 0 or req["CpuPeriod"] > 0 and cur["NanoCpus"] > 0:
        raise Conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has "
                       "already been set")
    if req["NanoCpus"] > 0 and cur["CpuQuota"] > 0 or req["CpuQuota"] > 0 and cur["NanoCpus"] > 0:
        raise Conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has "
                       "already been set")
    if req["Memory"] and req["Memory"] > cur["MemorySwap"] and req["MemorySwap"] == 0:
        raise Conflict("Memory limit should be smaller than already set memoryswap limit, "
                       "update the memoryswap at the same time")
    for k in (*RESOURCE_INTS, "CpusetCpus", "CpusetMems"):
        if req[k]:
            out[k] = req[k]
    if req["PidsLimit"] is not None:
        out["PidsLimit"] = req["PidsLimit"]
    if policy is not None:
        if policy["Name"] != "no" and hc.get("AutoRemove"):
            raise Conflict("Restart policy cannot be updated because AutoRemove is enabled "
                           "for the container")
        out["RestartPolicy"] = policy
    return out


def live_resources(req: dict[str, Any]) -> dict[str, Any]:
    """What a running container's cgroup gets: the fields the update names
    (dockerd hands the runtime the request's resources, not the merged ones)."""
    res: dict[str, Any] = {}
    if req["Memory"]:
        res["memory"] = req["Memory"]
    if req["MemorySwap"]:
        res["memory_swap"] = req["MemorySwap"]
    if req["MemoryReservation"]:
        res["memory_reservation"] = req["MemoryReservation"]
    if req["NanoCpus"] > 0:
        res["cpu_period"] = 100000
        res["cpu_quota"] = req["NanoCpus"] * 100000 // 1_000_000_000
    if req["CpuPeriod"]:
        res["cpu_period"] = req["CpuPeriod"]
    if req["CpuQuota"]:
        res["cpu_quota"] = req["CpuQuota"]
    if req["CpuShares"]:
        res["cpu_shares"] = req["CpuShares"]
    if req["CpusetCpus"]:
        res["cpuset_cpus"] = req["CpusetCpus"]
    if req["CpusetMems"]:
        res["cpuset_mems"] = req["CpusetMems"]
    if req["PidsLimit"] is not None:
        res["pids_limit"] = req["PidsLimit"]
    if req["BlkioWeight"]:
        res["blkio_weight"] = req["BlkioWeight"]
    return res
