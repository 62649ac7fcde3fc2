"""How engine objects look in the Engine API: the JSON shapes of image and
container summaries (the lists) and inspects, as dockerd 20.10 answers them."""

from __future__ import annotations

from typing import Any

from ..containers import mountpoints
from ..containers.model import Container
from ..containers.service import ContainerService
from ..engine import Engine
from ..imageconfig import parse_time
from ..store.images import Image


# --- images ---------------------------------------------------------------------------

def image_summary(eng: Engine, img: Image) -> dict:
    size = eng.image_size(img)
    return {
        "Containers": -1,
        "Created": img.created_unix,
        "Id": img.id,
        "Labels": (img.config.get("config") or {}).get("Labels"),
        "ParentId": img.parent,
        "RepoDigests": img.repo_digests or None,
        "RepoTags": img.repo_tags or None,
        "SharedSize": -1,
        "Size": size,
        "VirtualSize": size,
    }


def image_inspect(eng: Engine, img: Image) -> dict:
    c = img.config
    size = eng.image_size(img)
    out = {
        "Id": img.id,
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Parent": img.parent,
        "Comment": c.get("comment", ""),
        "Created": c.get("created", ""),
        "Container": c.get("container", ""),
        "ContainerConfig": c.get("container_config") or {},
        "DockerVersion": c.get("docker_version", ""),
        "Author": c.get("author", ""),
        "Config": c.get("config"),
        "Architecture": c.get("architecture", ""),
    }
    if c.get("variant"):
        out["Variant"] = c["variant"]
    out["Os"] = c.get("os", "")
    if c.get("os.version"):
        out["OsVersion"] = c["os.version"]
    layers = eng.layers.chain(img.top_layer)
    out.update({
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Data": eng.driver.metadata(layers[-1].cache_id) if layers else None,
                        "Name": eng.driver.name},
        "RootFS": {"Type": "layers", "Layers": [lay.diff_id for lay in layers]},
        "Metadata": {"LastTagTime": img.last_tag_time or "0001-01-01T00:00:00Z"},
    })
    return out


# --- containers -----------------------------------------------------------------------

def _command(c: Container) -> tuple[str, list[str]]:
    args = list(c.config.get("Entrypoint") or []) + list(c.config.get("Cmd") or [])
    return (args[0] if args else ""), args[1:]


def _image_name(c: Container) -> str:
    return c.config.get("Image") or c.image_id


def container_summary(s: ContainerService, c: Container) -> dict[str, Any]:
    path, args = _command(c)
    # dockerd quotes the arguments that hold a space (daemon/list.go)
    shown = [f"'{a}'" if " " in a else a for a in args]
    return {
        "Id": c.id, "Names": s.names(c), "Image": _image_name(c), "ImageID": c.image_id,
        "Command": " ".join([path] + shown), "Created": int(parse_time(c.created)),
        "Ports": s.network.port_list(c.id) if s.network and c.state.get("Running") else [],
        "Labels": c.config.get("Labels") or {}, "State": c.state["Status"],
        "Status": s.status_text(c),
        "HostConfig": {"NetworkMode": c.hostconfig.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": _networks(s, c)}, "Mounts": _mounts(s, c),
    }


def _mounts(s: ContainerService, c: Container) -> list[dict[str, Any]]:
    if s.volumes is None:
        return []
    return mountpoints.api_view(c.state.get("MountPoints") or [], s.volumes)


def container_inspect(s: ContainerService, c: Container) -> dict[str, Any]:
    path, args = _command(c)
    cdir = s.container_dir(c.id)
    state = {k: v for k, v in c.state.items() if k not in ("ShimPid", "Prepared",
                                                             "StoppedByUser", "MountPoints",
                                                             "Health")}
    if "Health" in c.state:  # last, as in Go's State; absent without a health check
        state["Health"] = c.state["Health"]
    hc = dict(HOSTCONFIG_DEFAULTS)
    hc.update(c.hostconfig)
    hc["Links"] = s.link_specs(c)  # the links as they stand, as dockerd shows them
    drv = s.driver
    return {
        "Id": c.id, "Created": c.created, "Path": path, "Args": args, "State": state,
        "Image": c.image_id, "ResolvConfPath": str(cdir / "resolv.conf"),
        "HostnamePath": str(cdir / "hostname"), "HostsPath": str(cdir / "hosts"),
        # dockerd shows the json-file log's path only
        "LogPath": str(s.log_path(c.id)) if hc["LogConfig"].get("Type") in ("json-file", "")
        else "",
        "Name": c.name, "RestartCount": c.restart_count,
        "Driver": drv.name, "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
        "AppArmorProfile": "", "ExecIDs": None, "HostConfig": hc,
        "GraphDriver": {"Data": drv.metadata(c.id) if drv.exists(c.id) else None,
                        "Name": drv.name},
        "Mounts": _mounts(s, c), "Config": c.config,
        "NetworkSettings": _network_settings(s, c),
    }


def _network_settings(s: ContainerService, c: Container) -> dict[str, Any]:
    if s.network:
        return s.network.settings(c.id, c.hostconfig, bool(c.state.get("Running")))
    return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "",
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "",
            "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "", "Networks": {}}


def _networks(s: ContainerService, c: Container) -> dict[str, Any]:
    """`NetworkSettings.Networks` of the container list (dockerd shows them there)."""
    return _network_settings(s, c)["Networks"]


HOSTCONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no",
                                                                    "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None,
    "CapDrop": None, "CgroupnsMode": "private", "Dns": [], "DnsOptions": [], "DnsSearch": [],
    "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None,
    "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
    "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
    "ShmSize": 67108864, "Runtime": "native", "ConsoleSize": [0, 0], "Isolation": "",
    "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
    "BlkioWeightDevice": [], "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
    "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0,
    "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
    "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None, "KernelMemory": 0,
    "KernelMemoryTCP": 0, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
    "OomKillDisable": False, "PidsLimit": None, "Ulimits": None, "CpuCount": 0,
    "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None,
    "ReadonlyPaths": None, "Init": None,
}
