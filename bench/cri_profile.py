"""Where Dockyard's CRI pod start goes: the RuntimeService's RunPodSandbox,
CreateContainer and StartContainer called in-process (no gRPC: the handlers,
called directly) on a `dockyard.Engine` with CNI (the conflist of
bench/cri.py), in a network namespace of its own. Timers around the CNI
plugin runs, namespace pinning, the pod's /dev/shm, container create and
start, and the DB writes; then cProfile's top entries.

    BENCH_RUNS=20 BENCH_TOP=30 [BENCH_CALLEES=regex,...] [BENCH_TIMERS=mod:Class.fn,...] \
        python3 bench/cri_profile.py

BENCH_CPROFILE=0 leaves cProfile off (it slows Python code several-fold, so
the timers alone are closer to what the daemon pays).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import os
import pstats
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import cri  # noqa: F401  (sys.path, the proto)
from common import in_own_netns
from containers import busybox_tar
from cri import conflist, kill_pids, make_cgroup, pb, remove_cgroups, with_descendants, procs

from dockyard import _core

TIMES: dict[str, list[float]] = defaultdict(list)


def timed(owner: Any, attr: str, key: str | Callable[..., str]) -> None:
    """Replace owner.attr by a wrapper adding its wall time to TIMES[key]."""
    fn = getattr(owner, attr)

    def wrapper(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            k = key if isinstance(key, str) else key(*a, **kw)
            TIMES[k].append(time.perf_counter() - t)

    setattr(owner, attr, wrapper)


class NoContext:
    """Stands for grpc's ServicerContext: the call ends when the handler returns."""

    def add_callback(self, fn: Callable[[], None]) -> bool:
        return False


def inside() -> None:
    a = argparse.Namespace(runs=int(os.environ.get("BENCH_RUNS", "20")),
                           top=int(os.environ.get("BENCH_TOP", "30")),
                           cprofile=os.environ.get("BENCH_CPROFILE", "1") != "0")
    from dockyard import Engine
    from dockyard.containers.execs import ExecStore
    from dockyard.containers.service import ContainerService
    from dockyard.cri import convert
    from dockyard.cri import runtime as crirt
    from dockyard.network.cni import CNI
    from dockyard.network.service import NetworkOptions
    from dockyard.pods import service as podsvc
    from dockyard.pods.records import PodRecords

    timed(CNI, "_exec", lambda self, path, command, *a, **k:
          f"cni {os.path.basename(path)} {command}")
    timed(_core, "ns_pin", "ns_pin (one namespace)")
    timed(_core, "ns_unpin", "ns_unpin (one namespace)")
    timed(_core, "mount_tmpfs", "pod /dev/shm tmpfs")
    timed(PodRecords, "save", "pod record writes")
    timed(PodRecords, "insert_container", "pod container record (in the container's commit)")
    timed(podsvc.PodService, "_setup", "PodService._setup (all of the pod's making)")
    timed(ContainerService, "create", "ContainerService.create")
    timed(ContainerService, "start", "ContainerService.start")
    timed(ContainerService, "stop", "ContainerService.stop")
    timed(ContainerService, "remove", "ContainerService.remove")
    timed(convert, "container", "convert.container")
    from dockyard.containers import service as ctrsvc
    timed(ctrsvc, "sync_filesystems", "syncfs in ContainerService.create")
    timed(_core, "make_cgroup", "_core.make_cgroup (in start: a thread started)")
    begin_shim = _core.begin_shim

    class TimedStart:
        """A ShimStart whose run (the shim's part of a start) is timed."""

        def __init__(self, s: Any) -> None:
            self.s = s

        def run(self, spec_json: str) -> Any:
            t = time.perf_counter()
            try:
                return self.s.run(spec_json)
            finally:
                TIMES["ShimStart.run (in start: the shim from the spec on)"].append(
                    time.perf_counter() - t)

        def abort(self) -> None:
            self.s.abort()

    setattr(_core, "begin_shim", lambda *a, **k: TimedStart(begin_shim(*a, **k)))
    timed(CNI, "add", "CNI.add (all of the plugin chain)")
    timed(CNI, "network", "CNI.network (the conf dir read)")
    timed(CNI, "_write_cache", "CNI._write_cache")
    timed(podsvc.PodService, "run", "PodService.run")
    timed(podsvc.PodService, "create_container", "PodService.create_container")
    timed(crirt.RuntimeService, "_create", "RuntimeService._create")
    timed(PodRecords, "by_name", "pod record lookups")
    timed(PodRecords, "get", "pod record lookups")
    timed(PodRecords, "container", "pod container record lookups")
    timed(ContainerService, "get", "ContainerService.get")
    # more: BENCH_TIMERS=module:Class.attr,module:function,...
    for spec in filter(None, os.environ.get("BENCH_TIMERS", "").split(",")):
        mod, _, qual = spec.partition(":")
        owner: Any = importlib.import_module(mod)
        *path, attr = qual.split(".")
        for part in path:
            owner = getattr(owner, part)
        timed(owner, attr, spec)

    base = Path(tempfile.mkdtemp(prefix="benchcri-prof-", dir="/var/tmp"))
    cg = f"benchcri-prof-{os.getpid()}"
    shim = os.path.realpath(_core.shim_path())
    eng = Engine(base / "root", "overlay", exec_root=base / "exec",
                 network_options=NetworkOptions(bridge="none", iptables=False))
    try:
        eng.import_image(str(busybox_tar(base)), repo="busybox")
        cni = CNI(str(conflist(base, "10.88.0.0/24")), ("/usr/lib/cni",),
                  str(base / "cni-cache"))
        pods = eng.pods
        pods.network = cni
        rt = crirt.RuntimeService(pb, eng, pods, ExecStore(eng.containers),
                                  lambda cid: None, cni.ready)
        rt.loop = asyncio.new_event_loop()  # where the exit monitor would be told (never run)
        calls: dict[str, list[float]] = defaultdict(list)

        def call(name: str, req: Any) -> Any:
            t = time.perf_counter()
            r = getattr(rt, name)(req, NoContext())
            calls[name].append(time.perf_counter() - t)
            return r

        prof = cProfile.Profile()
        (base / "logs").mkdir()
        # kubelet's defaults: a PID namespace per container, IPC per pod
        ns = pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
        for i in range(a.runs + 2):
            if i == 2:
                TIMES.clear()
                calls.clear()
                if a.cprofile:
                    prof.enable()
            cfg = pb.PodSandboxConfig(
                metadata=pb.PodSandboxMetadata(name=f"p{i}", namespace="default",
                                               uid=f"u{i}"),
                hostname=f"p{i}", log_directory=str(base / "logs"),
                linux=pb.LinuxPodSandboxConfig(
                    cgroup_parent=f"/{cg}/p{i}", security_context=pb.LinuxSandboxSecurityContext(
                        namespace_options=ns)))
            make_cgroup(cfg.linux.cgroup_parent)  # as kubelet, before the pod
            pid = call("RunPodSandbox", pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
            cid = call("CreateContainer", pb.CreateContainerRequest(
                pod_sandbox_id=pid, sandbox_config=cfg, config=pb.ContainerConfig(
                    metadata=pb.ContainerMetadata(name="main"),
                    image=pb.ImageSpec(image="busybox"), command=["sleep", "3600"],
                    log_path=f"main{i}.log", linux=pb.LinuxContainerConfig(
                        security_context=pb.LinuxContainerSecurityContext(
                            namespace_options=ns))))).container_id
            call("StartContainer", pb.StartContainerRequest(container_id=cid))
            if i == 2:
                t = procs()
                fam = with_descendants({p for p, (_, exe, _) in t.items() if exe == shim}, t)
                print("processes after one pod:", *(f"\n  {p} {t[p][1]} "
                      f"{t[p][2].replace(bytes(1), b' ').decode(errors='replace')[:100]}"
                      for p in sorted(fam)))
            call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pid))
            call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pid))
        prof.disable()
        n = a.runs
        print(f"\nRPCs in-process, median of {n} (ms)")
        for k, v in calls.items():
            print(f"  {k:60} {statistics.median(v) * 1000:8.2f}")
        print("\nparts, total per pod / median per call (ms), calls per pod")
        for k, v in sorted(TIMES.items(), key=lambda kv: -sum(kv[1])):
            print(f"  {k:60} {sum(v) / n * 1000:8.2f} {statistics.median(v) * 1000:8.2f}"
                  f" {len(v) / n:5.1f}")
        if not a.cprofile:
            return
        print()
        st = pstats.Stats(prof)
        st.sort_stats("cumulative").print_stats(a.top)
        st.sort_stats("tottime").print_stats(a.top)
        for fn in filter(None, os.environ.get("BENCH_CALLEES", "").split(",")):
            st.print_callees(fn)  # e.g. BENCH_CALLEES=service.py:.*\(start\)
    finally:
        try:
            for p in pods.all():
                pods.stop(p.id)
                pods.remove(p.id)
        finally:
            eng.close()
            t = procs()
            kill_pids(with_descendants({p for p, (_, exe, _) in t.items() if exe == shim}, t))
            time.sleep(0.5)
            remove_cgroups(cg)
            cri.drop_fs(base)


if __name__ == "__main__":
    in_own_netns(os.path.abspath(__file__), inside, "DY_BENCH_CRI_PROFILE", "benchcri-prof")
