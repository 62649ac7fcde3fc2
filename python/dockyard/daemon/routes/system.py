"""System routes: /_ping, /version, /info, /system/df."""

from __future__ import annotations

import os
import sys
import threading
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from ... import __version__
from ... import rootless, sysinfo
from ...errors import InvalidParameter
from ...containers.logdrivers import DRIVERS
from ..config import insecure_registry_config
from ..api import API_VERSION, MIN_API_VERSION
from ..views import image_summary
from . import blocking, engine, json_response

GIT_COMMIT = "dockyard"


async def ping(request: web.Request) -> web.Response:
    resp = web.Response(text="OK" if request.method == "GET" else None,
                        content_type="text/plain", charset="utf-8")
    resp.headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
    resp.headers["Pragma"] = "no-cache"
    # The classic builder only: clients must not switch to BuildKit's session protocol.
    resp.headers["Builder-Version"] = "1"
    return resp


def version_data() -> dict:
    name, _ = sysinfo.os_release()
    details = {
        "ApiVersion": API_VERSION, "Arch": "amd64", "BuildTime": "", "Experimental": "false",
        "GitCommit": GIT_COMMIT,
        "GoVersion": "python" + ".".join(map(str, sys.version_info[:3])),
        "KernelVersion": sysinfo.kernel(), "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
    }
    return {
        "Platform": {"Name": "Dockyard Engine"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": GIT_COMMIT, "GoVersion": details["GoVersion"], "Os": "linux",
        "Arch": "amd64", "KernelVersion": sysinfo.kernel(), "BuildTime": "",
    }


async def version(request: web.Request) -> web.Response:
    return json_response(version_data())


def registry_config(insecure: list[str]) -> dict:
    """RegistryConfig as dockerd reports it for its --insecure-registry list."""
    cidrs, index = insecure_registry_config(insecure)
    return {"AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": index, "Mirrors": []}


def runtimes() -> dict:
    """`Runtimes`: the native driver (the shim) and runc where it is installed."""
    from ... import _core
    from ...containers.oci import runc_path

    out = {"native": {"path": _core.shim_path()}}
    runc = runc_path()
    if runc:
        out["runc"] = {"path": runc}
    return out


def _info(request: web.Request) -> dict:
    eng = engine(request)
    cfg = request.app["config"]
    name, osver = sysinfo.os_release()
    images = eng.images.all()
    cs = eng.containers.all()
    # dockerd counts by status: a restarting container is neither running nor paused
    running = sum(1 for c in cs if c.state.get("Status") == "running")
    paused = sum(1 for c in cs if c.state.get("Paused"))
    warnings = []
    rootless_mode = rootless.rootless_uid() is not None
    if not rootless_mode and not sysinfo.swap_limit_supported():
        warnings.append("WARNING: No swap limit support")
    if any(h.startswith("tcp://") for h in cfg.hosts) and not (cfg.tls or cfg.tlsverify):
        warnings.append("WARNING: API is accessible on http:// without encryption.")
    have = dict.fromkeys(("memory", "cpu", "cpuset", "pids"), True)
    version = sysinfo.cgroup_version()
    if rootless_mode:
        # Docker rootless's words; the limits that work: the delegated controllers'
        _, have, cg_warnings = rootless.info_cgroups(version)
        warnings.extend(cg_warnings + rootless.info_warnings())
    limits = have["memory"]
    return {
        "ID": eng.daemon_id(),
        "Containers": len(cs), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(cs) - running - paused,
        "Images": len(images),
        "Driver": eng.driver.name,
        "DriverStatus": [list(x) for x in eng.storage_status()],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Authorization": None,
                    "Log": [d for d in DRIVERS if d != "none"]},
        "MemoryLimit": limits, "SwapLimit": limits and sysinfo.swap_limit_supported(),
        "KernelMemory": False, "KernelMemoryTCP": False,
        "CpuCfsPeriod": have["cpu"], "CpuCfsQuota": have["cpu"], "CPUShares": have["cpu"],
        "CPUSet": have["cpuset"], "PidsLimit": have["pids"], "IPv4Forwarding": True,
        "BridgeNfIptables": True, "BridgeNfIp6tables": True, "Debug": cfg.debug,
        "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": False,
        "NGoroutines": threading.active_count(),  # our threads stand in for goroutines
        "SystemTime": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "LoggingDriver": cfg.log_driver, "CgroupDriver": cfg.cgroup_driver,
        "CgroupVersion": version,
        "NEventsListener": len(getattr(eng.events, "_subs", ())),
        "KernelVersion": sysinfo.kernel(), "OperatingSystem": name, "OSVersion": osver,
        "OSType": "linux", "Architecture": sysinfo.arch(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config(cfg.insecure_registries),
        "NCPU": os.cpu_count() or 1, "MemTotal": sysinfo.mem_total(),
        "GenericResources": None, "DockerRootDir": str(eng.root),
        "HttpProxy": os.environ.get("HTTP_PROXY", ""),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
        "NoProxy": os.environ.get("NO_PROXY", ""),
        "Name": sysinfo.hostname(), "Labels": list(cfg.labels), "ExperimentalBuild": False,
        "ServerVersion": __version__,
        "Runtimes": runtimes(), "DefaultRuntime": eng.containers.exec_driver,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=default"]
        + (["name=userns"] if eng.idmap else [])
        + (["name=rootless"] if rootless_mode else []),
        "ExecutionDriver": eng.containers.exec_driver,
        "Warnings": warnings or None,
    }


async def info(request: web.Request) -> web.Response:
    return json_response(await blocking(_info, request))


async def system_df(request: web.Request) -> web.Response:
    eng = engine(request)

    def work() -> dict:
        shared = eng.images.layer_users()
        sizes = {layer_id: n for layer_id, n in shared.items()}
        imgs = []
        for img in eng.list_images(all=True):
            s = image_summary(eng, img)
            chain = eng.layers.chain(img.top_layer)
            s["SharedSize"] = sum(lay.size for lay in chain if sizes.get(lay.chain_id, 0) > 1)
            s["Containers"] = 0
            imgs.append(s)
        sizes_v = eng.volumes.sizes()
        vols = [dict(v, UsageData={"Size": sizes_v.get(v["Name"], 0),
                                   "RefCount": len(eng.volumes.users(v["Name"]))})
                for v in eng.volumes.list({})["Volumes"]]
        return {"LayersSize": eng.layers.total_size(), "Images": imgs, "Containers": [],
                "Volumes": vols, "BuildCache": [], "BuilderSize": 0}

    return json_response(await blocking(work))


async def system_check(request: web.Request) -> web.Response:
    """Dockyard's own (dockerd has none): the engine's consistency check.
    GET only looks; POST with `repair=1` also repairs what it safely can.
    `verify=0` skips rebuilding every layer's tar from its files; `grace`:
    seconds an unrecorded directory is taken to be an operation's in
    progress (an hour by default; 0 right after a restart)."""
    q = request.query
    verify = q.get("verify", "1") not in ("0", "false", "False")
    repair = request.method == "POST" and q.get("repair", "0") in ("1", "true", "True")
    try:
        grace = float(q["grace"]) if "grace" in q else None
    except ValueError:
        raise InvalidParameter(f"invalid grace: {q['grace']}") from None
    problems = await blocking(engine(request).check, verify, repair, grace)
    return json_response({"Problems": problems})


def register(r: Any) -> None:
    r.add("GET", "/_ping", ping)
    r.add("HEAD", "/_ping", ping)
    r.add("GET", "/version", version)
    r.add("GET", "/info", info)
    r.add("GET", "/system/df", system_df)
    r.add("GET", "/system/check", system_check)
    r.add("POST", "/system/check", system_check)
