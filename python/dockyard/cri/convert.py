"""CRI container and pod configurations turned into Docker's Config and
HostConfig, the shapes the container service takes (as cri-dockerd maps them,
but in-process). Messages come in as dicts (`MessageToDict` with the proto's
field names), so this module needs no generated code."""

from __future__ import annotations

import os
from typing import Any

from ..errors import InvalidParameter

#: CRI MountPropagation -> Docker's bind propagation
PROPAGATION = {"PROPAGATION_PRIVATE": "rprivate", "PROPAGATION_HOST_TO_CONTAINER": "rslave",
               "PROPAGATION_BIDIRECTIONAL": "rshared"}
#: CRI NamespaceMode (proto3 leaves the default, POD, out of the dict)
POD, CONTAINER, NODE, TARGET = "POD", "CONTAINER", "NODE", "TARGET"


def ns_modes(security: dict[str, Any] | None) -> dict[str, str]:
    """The namespace modes asked for. proto3 can't tell POD (0) from unset:
    with no NamespaceOption at all, the PID namespace is the container's own,
    as kubelet asks by default."""
    if "namespace_options" not in (security or {}):
        return {"network": POD, "pid": CONTAINER, "ipc": POD, "target_id": ""}
    opts = (security or {})["namespace_options"]
    return {k: opts.get(k, POD) for k in ("network", "pid", "ipc")} | \
        {"target_id": opts.get("target_id", "")}


def _user(sc: dict[str, Any]) -> str:
    if sc.get("run_as_username"):
        return sc["run_as_username"]
    uid = (sc.get("run_as_user") or {}).get("value")
    gid = (sc.get("run_as_group") or {}).get("value")
    if uid is None:
        if gid is not None:
            raise InvalidParameter("run_as_group is set without run_as_user")
        return ""
    return f"{uid}:{gid}" if gid is not None else str(uid)


def _seccomp(sc: dict[str, Any]) -> list[str]:
    # No profile at all is Unconfined in the CRI, as containerd and CRI-O read
    # it (kubelet asks for RuntimeDefault explicitly); a profile message with
    # the default type (an empty dict here) is RuntimeDefault.
    prof = sc.get("seccomp")
    if prof is not None:
        kind = prof.get("profile_type", "RuntimeDefault")
    else:
        path = sc.get("seccomp_profile_path") or "unconfined"
        kind, prof = ("Unconfined", {}) if path == "unconfined" else \
            ("RuntimeDefault", {}) if path in ("runtime/default", "docker/default") else \
            ("Localhost", {"localhost_ref": path.removeprefix("localhost/")})
    if kind == "Unconfined":
        return ["seccomp=unconfined"]
    if kind == "Localhost":
        ref = prof.get("localhost_ref", "")
        try:
            with open(ref) as f:
                return [f"seccomp={f.read()}"]
        except OSError as e:
            raise InvalidParameter(f"cannot load seccomp profile {ref!r}: {e.strerror}") from None
    return []


def _apparmor(sc: dict[str, Any]) -> None:
    prof = sc.get("apparmor") or {}
    name = sc.get("apparmor_profile", "")
    if prof.get("profile_type") == "Localhost" or name.startswith("localhost/"):
        raise InvalidParameter("AppArmor is not supported by Dockyard on this host: only the "
                               "runtime default and unconfined profiles can be asked for")


def container(cfg: dict[str, Any], pod_log_dir: str, image_id: str
              ) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], str]:
    """(Config, HostConfig, the CRI mounts as given, the log file path)."""
    linux = cfg.get("linux") or {}
    sc = linux.get("security_context") or {}
    res = linux.get("resources") or {}
    _apparmor(sc)
    config: dict[str, Any] = {
        "Image": image_id,
        "Env": [f"{e.get('key', '')}={e.get('value', '')}" for e in cfg.get("envs") or []],
        "WorkingDir": cfg.get("working_dir", ""),
        "Tty": bool(cfg.get("tty")), "OpenStdin": bool(cfg.get("stdin")),
        "StdinOnce": bool(cfg.get("stdin_once")), "AttachStdin": bool(cfg.get("stdin")),
        "User": _user(sc),
        "Labels": dict(cfg.get("labels") or {}),
    }
    if cfg.get("command"):
        config["Entrypoint"] = list(cfg["command"])
        config["Cmd"] = list(cfg.get("args") or [])
    elif cfg.get("args"):
        config["Cmd"] = list(cfg["args"])
    caps = sc.get("capabilities") or {}
    secopt = _seccomp(sc)
    if sc.get("no_new_privs"):
        secopt.append("no-new-privileges")
    mounts = list(cfg.get("mounts") or [])
    binds = []
    for m in mounts:
        if m.get("image"):
            raise InvalidParameter("image volumes (Mount.image) are not supported")
        host, dest = m.get("host_path", ""), m.get("container_path", "")
        if not dest.startswith("/"):
            raise InvalidParameter(f"mount destination {dest!r} is not an absolute path")
        opts = ["ro" if m.get("readonly") else "rw",
                PROPAGATION[m.get("propagation", "PROPAGATION_PRIVATE")]]
        binds.append(f"{os.path.realpath(host) if os.path.exists(host) else host}:{dest}:"
                     + ",".join(opts))
    hc: dict[str, Any] = {
        "Binds": binds or None,
        "Devices": [{"PathOnHost": d.get("host_path", ""),
                     "PathInContainer": d.get("container_path", ""),
                     "CgroupPermissions": d.get("permissions") or "rwm"}
                    for d in cfg.get("devices") or []] or None,
        "Privileged": bool(sc.get("privileged")),
        "CapAdd": list(caps.get("add_capabilities") or []) or None,
        "CapDrop": list(caps.get("drop_capabilities") or []) or None,
        "GroupAdd": [str(g) for g in sc.get("supplemental_groups") or []] or None,
        "ReadonlyRootfs": bool(sc.get("readonly_rootfs")),
        "SecurityOpt": secopt or None,
        "RestartPolicy": {"Name": "no"},
        "CpuPeriod": int(res.get("cpu_period") or 0), "CpuQuota": int(res.get("cpu_quota") or 0),
        "CpuShares": int(res.get("cpu_shares") or 0),
        "Memory": int(res.get("memory_limit_in_bytes") or 0),
        # no swap unless asked, as containerd (kubelet's default)
        "MemorySwap": int(res.get("memory_swap_limit_in_bytes")
                          or res.get("memory_limit_in_bytes") or 0),
        "OomScoreAdj": int(res.get("oom_score_adj") or 0),
        "CpusetCpus": res.get("cpuset_cpus", ""), "CpusetMems": res.get("cpuset_mems", ""),
    }
    if "masked_paths" in sc:
        hc["MaskedPaths"] = list(sc["masked_paths"])
    if "readonly_paths" in sc:
        hc["ReadonlyPaths"] = list(sc["readonly_paths"])
    modes = ns_modes(sc)
    if modes["pid"] == NODE:
        hc["PidMode"] = "host"
    elif modes["pid"] == TARGET:
        if not modes["target_id"]:
            raise InvalidParameter("target PID namespace mode without a target_id")
        hc["PidMode"] = f"container:{modes['target_id']}"
    elif modes["pid"] == POD:
        hc["PidMode"] = "pod"  # the pod service puts the pod's namespace here
    log_path = os.path.join(pod_log_dir, cfg["log_path"]) \
        if pod_log_dir and cfg.get("log_path") else ""
    hc["LogConfig"] = {"Type": "cri", "Config": {"path": log_path}} if log_path else \
        {"Type": "none", "Config": {}}
    return config, {k: v for k, v in hc.items() if v is not None}, mounts, log_path


def resources(res: dict[str, Any]) -> dict[str, Any]:
    """UpdateContainerResources' LinuxContainerResources as `docker update` fields."""
    out = {"CpuPeriod": res.get("cpu_period"), "CpuQuota": res.get("cpu_quota"),
           "CpuShares": res.get("cpu_shares"), "Memory": res.get("memory_limit_in_bytes"),
           "MemorySwap": res.get("memory_swap_limit_in_bytes"),
           "CpusetCpus": res.get("cpuset_cpus"), "CpusetMems": res.get("cpuset_mems")}
    body = {k: (int(v) if k not in ("CpusetCpus", "CpusetMems") else v)
            for k, v in out.items() if v not in (None, "", 0, "0")}
    if body.get("Memory") and not body.get("MemorySwap"):
        body["MemorySwap"] = body["Memory"]  # no swap unless asked, as containerd
    return body


def labels_match(have: dict[str, str], selector: dict[str, str]) -> bool:
    return all(have.get(k) == v for k, v in selector.items())
