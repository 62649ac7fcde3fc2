"""The request of `run` and `create`: POST /containers/create's body (Config,
HostConfig, NetworkingConfig) and query from the parsed flags, as docker's
cli/command/container/opts.go (parse) makes them."""

from __future__ import annotations

from .runflags import UsageError
from .runopts import (device_mappings, env_list, go_duration, kv_map, label_map, parse_int,
                      parse_mount, parse_port_specs, ram_in_bytes, restart_policy,
                      security_opts, tmpfs_map, ulimits)

TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any


#: The sysctls docker's CLI lets through (opts.ValidateSysctl): namespaced ones.
CLI_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def sysctl_allowed(key: str) -> bool:
    return key in CLI_SYSCTLS or key.startswith(("fs.mqueue.", "net."))


def build_create(opts: dict[str, Any], changed: set[str], image: str, cmd: list[str],
                 run: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """The body and query of POST /containers/create, as docker's parse.go makes them."""
    o = opts
    attach = [a.lower() for a in o["attach"]]
    for a in attach:
        if a not in ("stdin", "stdout", "stderr"):
            raise UsageError(f'invalid argument "{a}" for "-a, --attach" flag: valid streams '
                             "are STDIN, STDOUT and STDERR")
    detach = run and o.get("detach")
    if detach and attach:
        raise UsageError("Conflicting options: -a and -d")
    a_in = "stdin" in attach or bool(o["interactive"])
    a_out, a_err = ("stdout" in attach, "stderr" in attach) if attach else (True, True)
    if detach:
        a_in = a_out = a_err = False
    if not run and not attach:
        a_in, a_out, a_err = bool(o["interactive"]), True, True
    if o["rm"] if run else False:
        if o["restart"] and o["restart"] != "no":
            raise UsageError("Conflicting options: --restart and --rm")
    exposed, bindings = parse_port_specs(o["publish"])
    for e in o["expose"]:
        p, _, proto = e.partition("/")
        a, dash, b = p.partition("-")
        for n in range(int(a), int(b or a) + 1):
            exposed[f"{n}/{proto or 'tcp'}"] = {}
    binds, volumes = [], {}
    for v in o["volume"]:
        if ":" in v:
            binds.append(v)
        else:
            volumes[v] = {}
    labels = label_map(o["label_file"], o["label"])
    entrypoint = None
    if o["entrypoint"]:
        entrypoint = [o["entrypoint"]]
    elif "entrypoint" in changed:
        entrypoint = [""]
    health = healthcheck(o)
    config: dict[str, Any] = {
        "Hostname": o["hostname"] or "", "Domainname": o["domainname"] or "",
        "User": o["user"] or "", "AttachStdin": a_in, "AttachStdout": a_out,
        "AttachStderr": a_err, "ExposedPorts": exposed or None, "Tty": bool(o["tty"]),
        "OpenStdin": bool(o["interactive"]), "StdinOnce": bool(o["interactive"]) and a_in,
        "Env": env_list(o["env_file"], o["env"]), "Cmd": cmd or None, "Image": image,
        "Volumes": volumes or None, "WorkingDir": o["workdir"] or "",
        "Entrypoint": entrypoint, "OnBuild": None, "Labels": labels,
    }
    if health:
        config["Healthcheck"] = health
    if o["mac_address"]:
        config["MacAddress"] = o["mac_address"]
    if o["stop_signal"]:
        config["StopSignal"] = o["stop_signal"]
    if o["stop_timeout"] is not None:
        config["StopTimeout"] = parse_int(o["stop_timeout"], "--stop-timeout")
    if o["log_driver"] == "none" and o["log_opt"]:
        raise UsageError("invalid logging opts for driver none")  # docker's own check
    if o["userns"] and o["userns"] != "host":
        raise UsageError("--userns: invalid USER mode")
    # docker's own checks ("ns:<path>", a pinned namespace, is Dockyard's extension)
    pid = o["pid"] or ""
    if pid not in ("", "host") and not pid.startswith("ns:/") and \
            not (pid.startswith("container:") and pid != "container:"):
        raise UsageError("--pid: invalid PID mode")
    if (o["uts"] or "") not in ("", "host") and not (o["uts"] or "").startswith("ns:/"):
        raise UsageError("--uts: invalid UTS mode")
    for kv in o["sysctl"] or []:
        if not sysctl_allowed(kv.partition("=")[0]) or "=" not in kv:
            raise UsageError(f'invalid argument "{kv}" for "--sysctl" flag: sysctl \'{kv}\' '
                             "is not allowed")
    restart = restart_policy(o["restart"])
    security = security_opts(o["security_opt"])
    devices = device_mappings(o["device"])
    for rule in o["device_cgroup_rule"] or []:
        import re  # only here: the CLI's start stays off the re module

        if not re.fullmatch(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})", rule):
            raise UsageError(f'invalid argument "{rule}" for "--device-cgroup-rule" flag: '
                             f"invalid device cgroup format '{rule}'")
    ulimit_list = ulimits(o["ulimit"])
    tmpfs = tmpfs_map(o["tmpfs"])
    nano_cpus = 0
    if o["cpus"]:
        try:
            nano_cpus = int(round(float(o["cpus"]) * 1e9))
        except ValueError:
            raise UsageError(f'invalid argument "{o["cpus"]}" for "--cpus" flag: failed to '
                             "parse " + o["cpus"] + " as a rational number") from None
    mem_swap = 0
    if o["memory_swap"]:
        mem_swap = -1 if o["memory_swap"] == "-1" else ram_in_bytes(o["memory_swap"])
    host: dict[str, Any] = {
        "Binds": binds or None, "ContainerIDFile": o["cidfile"] or "",
        "LogConfig": {"Type": o["log_driver"] or "", "Config": kv_map(o["log_opt"])},
        "NetworkMode": o["network"] or "default", "PortBindings": bindings,
        "RestartPolicy": restart, "AutoRemove": bool(run and o["rm"]),
        "VolumeDriver": o["volume_driver"] or "", "VolumesFrom": o["volumes_from"] or None,
        "CapAdd": o["cap_add"] or None, "CapDrop": o["cap_drop"] or None,
        "CgroupnsMode": o["cgroupns"] or "", "Dns": o["dns"], "DnsOptions": o["dns_option"],
        "DnsSearch": o["dns_search"], "ExtraHosts": o["add_host"] or None,
        "GroupAdd": o["group_add"] or None, "IpcMode": o["ipc"] or "", "Cgroup": "",
        "Links": o["link"] or None,
        "OomScoreAdj": parse_int(o["oom_score_adj"] or "0", "--oom-score-adj"),
        "PidMode": o["pid"] or "", "Privileged": bool(o["privileged"]),
        "PublishAllPorts": bool(o["publish_all"]), "ReadonlyRootfs": bool(o["read_only"]),
        "SecurityOpt": security or None, "StorageOpt": kv_map(o["storage_opt"]) or None,
        "Tmpfs": tmpfs or None, "UTSMode": o["uts"] or "", "UsernsMode": o["userns"] or "",
        "ShmSize": ram_in_bytes(o["shm_size"]) if o["shm_size"] else 0,
        "Sysctls": kv_map(o["sysctl"]) or None, "Runtime": o["runtime"] or "",
        "ConsoleSize": [0, 0], "Isolation": o["isolation"] or "",
        "CpuShares": parse_int(o["cpu_shares"] or "0", "--cpu-shares"),
        "Memory": ram_in_bytes(o["memory"]) if o["memory"] else 0, "NanoCpus": nano_cpus,
        "CgroupParent": o["cgroup_parent"] or "",
        "BlkioWeight": parse_int(o["blkio_weight"] or "0", "--blkio-weight"),
        "CpuPeriod": parse_int(o["cpu_period"] or "0", "--cpu-period"),
        "CpuQuota": parse_int(o["cpu_quota"] or "0", "--cpu-quota"),
        "CpuRealtimePeriod": parse_int(o["cpu_rt_period"] or "0", "--cpu-rt-period"),
        "CpuRealtimeRuntime": parse_int(o["cpu_rt_runtime"] or "0", "--cpu-rt-runtime"),
        "CpusetCpus": o["cpuset_cpus"] or "", "CpusetMems": o["cpuset_mems"] or "",
        "Devices": devices, "DeviceCgroupRules": o["device_cgroup_rule"] or None,
        "KernelMemory": ram_in_bytes(o["kernel_memory"])
        if o["kernel_memory"] else 0,
        "MemoryReservation": ram_in_bytes(o["memory_reservation"])
        if o["memory_reservation"] else 0,
        "MemorySwap": mem_swap,
        "MemorySwappiness": parse_int(o["memory_swappiness"], "--memory-swappiness")
        if o["memory_swappiness"] not in (None, "-1") else None,
        "OomKillDisable": bool(o["oom_kill_disable"]),
        "PidsLimit": parse_int(o["pids_limit"], "--pids-limit") if o["pids_limit"] else None,
        "Ulimits": ulimit_list or None, "Mounts": [parse_mount(m) for m in o["mount"]] or None,
    }
    if "init" in changed:
        host["Init"] = bool(o["init"])
    endpoints: dict[str, Any] = {}
    if o["network"] and (o["network_alias"] or o["ip"] or o["ip6"]):
        ep: dict[str, Any] = {"Aliases": o["network_alias"] or None}
        if o["ip"] or o["ip6"]:
            ep["IPAMConfig"] = {"IPv4Address": o["ip"] or "", "IPv6Address": o["ip6"] or ""}
        endpoints[o["network"]] = ep
    net = o["network"] or ""
    if o["link"] and net and net not in ("default", "bridge", "host", "none") and \
            not net.startswith("container:"):
        # on a user-defined network links are the endpoint's (DNS aliases), as docker's CLI
        endpoints.setdefault(net, {})["Links"] = list(o["link"])
    body = dict(config, HostConfig=host, NetworkingConfig={"EndpointsConfig": endpoints})
    query = {"name": o["name"] or None, "platform": o["platform"] or None}
    return body, query


def healthcheck(o: dict[str, Any]) -> dict[str, Any] | None:
    """Config.Healthcheck from --health-* and --no-healthcheck (docker's parse.go):
    a value of zero counts as not given; Test stays unset without --health-cmd,
    so the image's command is kept."""
    interval = go_duration(o["health_interval"] or "", "--health-interval")
    timeout = go_duration(o["health_timeout"] or "", "--health-timeout")
    start_period = go_duration(o["health_start_period"] or "", "--health-start-period")
    retries = parse_int(o["health_retries"] or "0", "--health-retries")
    given = bool(o["health_cmd"]) or any((interval, timeout, start_period, retries))
    if o["no_healthcheck"]:
        if given:
            raise UsageError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    for flag, v in (("--health-interval", interval), ("--health-timeout", timeout),
                    ("--health-retries", retries), ("--health-start-period", start_period)):
        if v < 0:
            raise UsageError(f"{flag} cannot be negative")
    return {"Test": ["CMD-SHELL", o["health_cmd"]] if o["health_cmd"] else None,
            "Interval": interval, "Timeout": timeout, "StartPeriod": start_period,
            "Retries": retries}
