"""`run` and `create`: one flag table, one parser, one request builder and
the run flow, shared by the fast path (fast.py, no Typer) and the Typer
commands in container.py (whose options are generated from the same table).

Follows docker/cli 20.10 (cli/command/container/{opts,run,create}.go):
flags stop at the image (pflag with interspersed args off), combined short
flags (`-it`, `-dit`, `-eK=V`), `--flag=value` and `--bool=false`.
"""

from __future__ import annotations

import os
import sys

from . import fastjson as json
TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any

# (spellings, key, kind, help); kind: "b" bool, "s" string, "l" repeatable
FLAGS: list[tuple[tuple[str, ...], str, str, str]] = [
    (("--add-host",), "add_host", "l", "Add a custom host-to-IP mapping (host:ip)"),
    (("-a", "--attach"), "attach", "l", "Attach to STDIN, STDOUT or STDERR"),
    (("--blkio-weight",), "blkio_weight", "s", "Block IO (relative weight), 10 to 1000"),
    (("--cap-add",), "cap_add", "l", "Add Linux capabilities"),
    (("--cap-drop",), "cap_drop", "l", "Drop Linux capabilities"),
    (("--cgroup-parent",), "cgroup_parent", "s", "Optional parent cgroup for the container"),
    (("--cgroupns",), "cgroupns", "s", "Cgroup namespace to use (host|private)"),
    (("--cidfile",), "cidfile", "s", "Write the container ID to the file"),
    (("--cpu-period",), "cpu_period", "s", "Limit CPU CFS period"),
    (("--cpu-quota",), "cpu_quota", "s", "Limit CPU CFS quota"),
    (("--cpu-rt-period",), "cpu_rt_period", "s", "Limit CPU real-time period in microseconds"),
    (("--cpu-rt-runtime",), "cpu_rt_runtime", "s", "Limit CPU real-time runtime in microseconds"),
    (("-c", "--cpu-shares"), "cpu_shares", "s", "CPU shares (relative weight)"),
    (("--cpus",), "cpus", "s", "Number of CPUs"),
    (("--cpuset-cpus",), "cpuset_cpus", "s", "CPUs in which to allow execution (0-3, 0,1)"),
    (("--cpuset-mems",), "cpuset_mems", "s", "MEMs in which to allow execution (0-3, 0,1)"),
    (("-d", "--detach"), "detach", "b", "Run container in background and print container ID"),
    (("--detach-keys",), "detach_keys", "s", "Override the key sequence for detaching a container"),
    (("--device",), "device", "l", "Add a host device to the container"),
    (("--dns",), "dns", "l", "Set custom DNS servers"),
    (("--dns-option",), "dns_option", "l", "Set DNS options"),
    (("--dns-search",), "dns_search", "l", "Set custom DNS search domains"),
    (("--domainname",), "domainname", "s", "Container NIS domain name"),
    (("--entrypoint",), "entrypoint", "s", "Overwrite the default ENTRYPOINT of the image"),
    (("-e", "--env"), "env", "l", "Set environment variables"),
    (("--env-file",), "env_file", "l", "Read in a file of environment variables"),
    (("--expose",), "expose", "l", "Expose a port or a range of ports"),
    (("--group-add",), "group_add", "l", "Add additional groups to join"),
    (("--health-cmd",), "health_cmd", "s", "Command to run to check health"),
    (("--health-interval",), "health_interval", "s", "Time between running the check"),
    (("--health-retries",), "health_retries", "s", "Consecutive failures needed to report unhealthy"),
    (("--health-start-period",), "health_start_period", "s", "Start period for the container"),
    (("--health-timeout",), "health_timeout", "s", "Maximum time to allow one check to run"),
    (("-h", "--hostname"), "hostname", "s", "Container host name"),
    (("--init",), "init", "b", "Run an init inside the container"),
    (("-i", "--interactive"), "interactive", "b", "Keep STDIN open even if not attached"),
    (("--ip",), "ip", "s", "IPv4 address (e.g., 172.30.100.104)"),
    (("--ip6",), "ip6", "s", "IPv6 address (e.g., 2001:db8::33)"),
    (("--ipc",), "ipc", "s", "IPC mode to use"),
    (("--isolation",), "isolation", "s", "Container isolation technology"),
    (("--kernel-memory",), "kernel_memory", "s", "Kernel memory limit"),
    (("-l", "--label"), "label", "l", "Set meta data on a container"),
    (("--label-file",), "label_file", "l", "Read in a line delimited file of labels"),
    (("--link",), "link", "l", "Add link to another container"),
    (("--log-driver",), "log_driver", "s", "Logging driver for the container"),
    (("--log-opt",), "log_opt", "l", "Log driver options"),
    (("--mac-address",), "mac_address", "s", "Container MAC address"),
    (("-m", "--memory"), "memory", "s", "Memory limit"),
    (("--memory-reservation",), "memory_reservation", "s", "Memory soft limit"),
    (("--memory-swap",), "memory_swap", "s",
     "Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
    (("--memory-swappiness",), "memory_swappiness", "s", "Tune container memory swappiness"),
    (("--mount",), "mount", "l", "Attach a filesystem mount to the container"),
    (("--name",), "name", "s", "Assign a name to the container"),
    (("--network", "--net"), "network", "s", "Connect a container to a network"),
    (("--network-alias", "--net-alias"), "network_alias", "l", "Add network-scoped alias"),
    (("--no-healthcheck",), "no_healthcheck", "b", "Disable any container-specified HEALTHCHECK"),
    (("--oom-kill-disable",), "oom_kill_disable", "b", "Disable OOM Killer"),
    (("--oom-score-adj",), "oom_score_adj", "s", "Tune host's OOM preferences (-1000 to 1000)"),
    (("--pid",), "pid", "s", "PID namespace to use"),
    (("--pids-limit",), "pids_limit", "s", "Tune container pids limit (set -1 for unlimited)"),
    (("--platform",), "platform", "s", "Set platform if server is multi-platform capable"),
    (("--privileged",), "privileged", "b", "Give extended privileges to this container"),
    (("-p", "--publish"), "publish", "l", "Publish a container's port(s) to the host"),
    (("-P", "--publish-all"), "publish_all", "b", "Publish all exposed ports to random ports"),
    (("--pull",), "pull", "s", 'Pull image before running ("always"|"missing"|"never")'),
    (("-q", "--quiet"), "quiet", "b", "Suppress the pull output"),
    (("--read-only",), "read_only", "b", "Mount the container's root filesystem as read only"),
    (("--restart",), "restart", "s", "Restart policy to apply when a container exits"),
    (("--rm",), "rm", "b", "Automatically remove the container when it exits"),
    (("--runtime",), "runtime", "s", "Runtime to use for this container"),
    (("--security-opt",), "security_opt", "l", "Security Options"),
    (("--shm-size",), "shm_size", "s", "Size of /dev/shm"),
    (("--sig-proxy",), "sig_proxy", "b", "Proxy received signals to the process (default true)"),
    (("--stop-signal",), "stop_signal", "s", "Signal to stop a container"),
    (("--stop-timeout",), "stop_timeout", "s", "Timeout (in seconds) to stop a container"),
    (("--storage-opt",), "storage_opt", "l", "Storage driver options for the container"),
    (("--sysctl",), "sysctl", "l", "Sysctl options"),
    (("--tmpfs",), "tmpfs", "l", "Mount a tmpfs directory"),
    (("-t", "--tty"), "tty", "b", "Allocate a pseudo-TTY"),
    (("--ulimit",), "ulimit", "l", "Ulimit options"),
    (("-u", "--user"), "user", "s", "Username or UID (format: <name|uid>[:<group|gid>])"),
    (("--userns",), "userns", "s", "User namespace to use"),
    (("--uts",), "uts", "s", "UTS namespace to use"),
    (("-v", "--volume"), "volume", "l", "Bind mount a volume"),
    (("--volume-driver",), "volume_driver", "s", "Optional volume driver for the container"),
    (("--volumes-from",), "volumes_from", "l", "Mount volumes from the specified container(s)"),
    (("-w", "--workdir"), "workdir", "s", "Working directory inside the container"),
]
RUN_ONLY = {"detach", "detach_keys", "rm", "sig_proxy"}
SPEC: dict[str, tuple[str, str]] = {s: (key, kind) for sp, key, kind, _ in FLAGS for s in sp}


class UsageError(Exception):
    pass


def defaults(cmd: str = "run") -> dict[str, Any]:
    d: dict[str, Any] = {}
    for _, key, kind, _ in FLAGS:
        if cmd != "run" and key in RUN_ONLY:
            continue
        d[key] = False if kind == "b" else ([] if kind == "l" else None)
    if cmd == "run":
        d["sig_proxy"] = True
    return d


def _bool(v: str, flag: str) -> bool:
    lv = v.lower()
    if lv in ("1", "t", "true"):
        return True
    if lv in ("0", "f", "false"):
        return False
    raise UsageError(f'invalid argument "{v}" for "{flag}" flag: strconv.ParseBool: parsing '
                     f'"{v}": invalid syntax')


def parse_args(argv: list[str], cmd: str = "run") -> tuple[dict[str, Any], set[str], str,
                                                             list[str]]:
    """pflag-style: returns (options, flags changed, image, command)."""
    opts = defaults(cmd)
    changed: set[str] = set()

    def put(flag: str, key: str, kind: str, v: Any) -> None:
        if cmd != "run" and key in RUN_ONLY:
            raise UsageError(f"unknown flag: {flag}")
        changed.add(key)
        if kind == "l":
            opts[key].append(v)
        else:
            opts[key] = v

    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            spec = SPEC.get(name)
            if spec is None:
                raise UsageError(f"unknown flag: {name}")
            key, kind = spec
            if kind == "b":
                put(name, key, kind, _bool(val, name) if eq else True)
            else:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: {name}")
                    val = argv[i]
                put(name, key, kind, val)
            i += 1
            continue
        j = 1
        while j < len(a):
            c = a[j]
            spec = SPEC.get("-" + c)
            if spec is None:
                raise UsageError(f"unknown shorthand flag: '{c}' in {a}")
            key, kind = spec
            rest = a[j + 1:]
            if kind == "b":
                if rest.startswith("="):
                    put("-" + c, key, kind, _bool(rest[1:], "-" + c))
                    break
                put("-" + c, key, kind, True)
                j += 1
                continue
            if rest:
                val = rest[1:] if rest.startswith("=") else rest
            else:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: '{c}' in -{c}")
                val = argv[i]
            put("-" + c, key, kind, val)
            break
        i += 1
    if i >= len(argv):
        raise UsageError(f'"docker {cmd}" requires at least 1 argument.')
    return opts, changed, argv[i], argv[i + 1:]


# --- value parsers (docker's opts package, go-units) --------------------------

def ram_in_bytes(s: str) -> int:
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?", s.strip())
    if not m:
        raise UsageError(f"invalid size: '{s}'")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    return int(float(m.group(1)) * mult[(m.group(2) or "").lower()])


def go_duration(s: str) -> int:
    """time.ParseDuration, in nanoseconds."""
    import re

    if s in ("0", ""):
        return 0
    units = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise UsageError(f'time: invalid duration "{s}"')
    return int(sum(float(a) * units[b] for a, b in parts))


def _int(v: str, flag: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise UsageError(f'invalid argument "{v}" for "{flag}" flag: strconv.ParseInt: '
                         f'parsing "{v}": invalid syntax') from None


def _env_list(files: list[str], envs: list[str]) -> list[str]:
    out: list[str] = []
    for f in files:
        try:
            lines = open(f).read().splitlines()
        except OSError as e:
            raise UsageError(f"open {f}: {(e.strerror or str(e)).lower()}") from None
        for line in lines:
            line = line.lstrip()
            if not line or line.startswith("#"):
                continue
            out.append(_env_value(line))
    out += [_env_value(e) for e in envs]
    return out


def _env_value(e: str) -> str:
    k, eq, _ = e.partition("=")
    if eq:
        return e
    v = os.environ.get(k)
    return f"{k}={v}" if v is not None else e


def _kv_map(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        out[k] = v
    return out


def _ports(specs: list[str]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}

    def rng(s: str) -> list[str]:
        if not s:
            return [""]
        a, dash, b = s.partition("-")
        if not dash:
            return [s]
        return [str(p) for p in range(int(a), int(b) + 1)]

    for spec in specs:
        spec, _, proto = spec.partition("/")
        proto = proto or "tcp"
        parts = spec.rsplit(":", 2) if not spec.startswith("[") else None
        if parts is None:  # [ipv6]:host:ctr
            ip, _, rest = spec[1:].partition("]:")
            hp, _, cp = rest.rpartition(":")
            parts = [ip, hp, cp]
        ip, hp, cp = ([""] * (3 - len(parts)) + parts)
        if not cp:
            raise UsageError(f"No port specified: {spec}<empty>")
        cports, hports = rng(cp), rng(hp)
        for n, c in enumerate(cports):
            key = f"{c}/{proto}"
            exposed[key] = {}
            h = hports[n] if len(hports) == len(cports) else (hports[0] if hp else "")
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": h})
    return exposed, bindings


def _mount(spec: str) -> dict[str, Any]:
    m: dict[str, Any] = {"Type": "volume"}
    for field in spec.split(","):
        k, eq, v = field.partition("=")
        k = k.strip().lower()
        if k == "type":
            m["Type"] = v
        elif k in ("source", "src"):
            m["Source"] = v
        elif k in ("target", "destination", "dst"):
            m["Target"] = v
        elif k in ("readonly", "ro"):
            m["ReadOnly"] = not eq or v.lower() in ("1", "true")
        elif k == "bind-propagation":
            m.setdefault("BindOptions", {})["Propagation"] = v
        elif k == "tmpfs-size":
            m.setdefault("TmpfsOptions", {})["SizeBytes"] = ram_in_bytes(v)
        elif k == "tmpfs-mode":
            m.setdefault("TmpfsOptions", {})["Mode"] = int(v, 8)
        elif k == "consistency":
            m["Consistency"] = v
        else:
            raise UsageError(f'invalid argument "{spec}" for "--mount" flag: unexpected key '
                             f"'{k}' in '{field}'")
    if "Target" not in m:
        raise UsageError(f'invalid argument "{spec}" for "--mount" flag: target is required')
    return m


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
    exposed, bindings = _ports(o["publish"])
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
    labels = {}
    for f in o["label_file"]:
        for line in open(f).read().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                labels.update(_kv_map([line]))
    labels.update(_kv_map(o["label"]))
    entrypoint = None
    if o["entrypoint"]:
        entrypoint = [o["entrypoint"]]
    elif "entrypoint" in changed:
        entrypoint = [""]
    health = None
    if o["no_healthcheck"]:
        health = {"Test": ["NONE"]}
    elif any(o[k] for k in ("health_cmd", "health_interval", "health_retries",
                            "health_start_period", "health_timeout")):
        health = {"Test": ["CMD-SHELL", o["health_cmd"]] if o["health_cmd"] else None,
                  "Interval": go_duration(o["health_interval"] or "0"),
                  "Timeout": go_duration(o["health_timeout"] or "0"),
                  "StartPeriod": go_duration(o["health_start_period"] or "0"),
                  "Retries": _int(o["health_retries"] or "0", "--health-retries")}
    config: dict[str, Any] = {
        "Hostname": o["hostname"] or "", "Domainname": o["domainname"] or "",
        "User": o["user"] or "", "AttachStdin": a_in, "AttachStdout": a_out,
        "AttachStderr": a_err, "ExposedPorts": exposed or None, "Tty": bool(o["tty"]),
        "OpenStdin": bool(o["interactive"]), "StdinOnce": bool(o["interactive"]) and a_in,
        "Env": _env_list(o["env_file"], o["env"]), "Cmd": cmd or None, "Image": image,
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
        config["StopTimeout"] = _int(o["stop_timeout"], "--stop-timeout")
    restart = {"Name": "", "MaximumRetryCount": 0}
    if o["restart"]:
        name, _, count = o["restart"].partition(":")
        if name not in ("no", "always", "unless-stopped", "on-failure"):
            raise UsageError(f"invalid restart policy {name}")
        if count and name != "on-failure":
            raise UsageError(f"maximum retry count cannot be used with restart policy '{name}'")
        restart = {"Name": name, "MaximumRetryCount": int(count or 0)}
    security = []
    for s in o["security_opt"]:
        k, eq, v = s.partition("=") if "=" in s else s.partition(":")
        if k == "seccomp" and v not in ("unconfined", "builtin"):
            # Like the docker CLI: the daemon gets the profile's (compacted) JSON, not its path.
            try:
                with open(v) as f:
                    text = f.read()
            except OSError as e:
                raise UsageError(f"opening seccomp profile ({v}) failed: open {v}: "
                                 f"{(e.strerror or '').lower()}") from None
            import json as stdjson  # separators, and the stdlib's own error text

            try:
                text = stdjson.dumps(stdjson.loads(text), separators=(",", ":"))
            except ValueError as e:
                raise UsageError(f"compacting json for seccomp profile ({v}) failed: {e}") from None
            s = f"seccomp={text}"
        security.append(s)
    devices = []
    for d in o["device"]:
        parts = d.split(":")
        src = parts[0]
        dst = parts[1] if len(parts) > 1 and not set(parts[1]) <= set("rwm") else src
        perm = parts[-1] if len(parts) > 1 and set(parts[-1]) <= set("rwm") else "rwm"
        devices.append({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perm})
    ulimits = []
    for u in o["ulimit"]:
        name, _, lim = u.partition("=")
        soft, _, hard = lim.partition(":")
        ulimits.append({"Name": name, "Soft": _int(soft, "--ulimit"),
                        "Hard": _int(hard or soft, "--ulimit")})
    tmpfs = {}
    for t in o["tmpfs"]:
        p, _, topts = t.partition(":")
        tmpfs[p] = topts
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
        "LogConfig": {"Type": o["log_driver"] or "", "Config": _kv_map(o["log_opt"])},
        "NetworkMode": o["network"] or "default", "PortBindings": bindings,
        "RestartPolicy": restart, "AutoRemove": bool(run and o["rm"]),
        "VolumeDriver": o["volume_driver"] or "", "VolumesFrom": o["volumes_from"] or None,
        "CapAdd": o["cap_add"] or None, "CapDrop": o["cap_drop"] or None,
        "CgroupnsMode": o["cgroupns"] or "", "Dns": o["dns"], "DnsOptions": o["dns_option"],
        "DnsSearch": o["dns_search"], "ExtraHosts": o["add_host"] or None,
        "GroupAdd": o["group_add"] or None, "IpcMode": o["ipc"] or "", "Cgroup": "",
        "Links": o["link"] or None,
        "OomScoreAdj": _int(o["oom_score_adj"] or "0", "--oom-score-adj"),
        "PidMode": o["pid"] or "", "Privileged": bool(o["privileged"]),
        "PublishAllPorts": bool(o["publish_all"]), "ReadonlyRootfs": bool(o["read_only"]),
        "SecurityOpt": security or None, "StorageOpt": _kv_map(o["storage_opt"]) or None,
        "Tmpfs": tmpfs or None, "UTSMode": o["uts"] or "", "UsernsMode": o["userns"] or "",
        "ShmSize": ram_in_bytes(o["shm_size"]) if o["shm_size"] else 0,
        "Sysctls": _kv_map(o["sysctl"]) or None, "Runtime": o["runtime"] or "",
        "ConsoleSize": [0, 0], "Isolation": o["isolation"] or "",
        "CpuShares": _int(o["cpu_shares"] or "0", "--cpu-shares"),
        "Memory": ram_in_bytes(o["memory"]) if o["memory"] else 0, "NanoCpus": nano_cpus,
        "CgroupParent": o["cgroup_parent"] or "",
        "BlkioWeight": _int(o["blkio_weight"] or "0", "--blkio-weight"),
        "CpuPeriod": _int(o["cpu_period"] or "0", "--cpu-period"),
        "CpuQuota": _int(o["cpu_quota"] or "0", "--cpu-quota"),
        "CpuRealtimePeriod": _int(o["cpu_rt_period"] or "0", "--cpu-rt-period"),
        "CpuRealtimeRuntime": _int(o["cpu_rt_runtime"] or "0", "--cpu-rt-runtime"),
        "CpusetCpus": o["cpuset_cpus"] or "", "CpusetMems": o["cpuset_mems"] or "",
        "Devices": devices, "KernelMemory": ram_in_bytes(o["kernel_memory"])
        if o["kernel_memory"] else 0,
        "MemoryReservation": ram_in_bytes(o["memory_reservation"])
        if o["memory_reservation"] else 0,
        "MemorySwap": mem_swap,
        "MemorySwappiness": _int(o["memory_swappiness"], "--memory-swappiness")
        if o["memory_swappiness"] not in (None, "-1") else None,
        "OomKillDisable": bool(o["oom_kill_disable"]),
        "PidsLimit": _int(o["pids_limit"], "--pids-limit") if o["pids_limit"] else None,
        "Ulimits": ulimits or None, "Mounts": [_mount(m) for m in o["mount"]] or None,
    }
    if "init" in changed:
        host["Init"] = bool(o["init"])
    endpoints: dict[str, Any] = {}
    if o["network"] and (o["network_alias"] or o["ip"] or o["ip6"]):
        ep: dict[str, Any] = {"Aliases": o["network_alias"] or None}
        if o["ip"] or o["ip6"]:
            ep["IPAMConfig"] = {"IPv4Address": o["ip"] or "", "IPv6Address": o["ip6"] or ""}
        endpoints[o["network"]] = ep
    body = dict(config, HostConfig=host, NetworkingConfig={"EndpointsConfig": endpoints})
    query = {"name": o["name"] or None, "platform": o["platform"] or None}
    return body, query


# --- the flows ---------------------------------------------------------------

def report_error(cmd: str, msg: str, with_help: bool) -> None:
    """docker's reportError: `docker: <msg>.` [+ `See 'docker <cmd> --help'.`]"""
    s = msg.rstrip(".") + "."
    if with_help:
        s += f"\nSee 'docker {cmd} --help'."
    print("docker: " + s, file=sys.stderr)


def start_error_code(msg: str) -> int:
    """docker's runStartContainerErr."""
    if ("executable file not found" in msg or "no such file or directory" in msg
            or "system cannot find the file specified" in msg):
        return 127
    if "permission denied" in msg:  # docker 20.10 checks EACCES only (not EISDIR)
        return 126
    return 125


def display_json_messages(resp: Any, out: Any) -> None:
    """jsonmessage.DisplayJSONMessagesStream for a non-terminal: progress
    bars are left out; raises APIError on an error message."""
    from .client import APIError, message_error

    for line in resp.iter_lines():
        try:
            jm = json.loads(line)
        except ValueError:
            continue
        err = message_error(jm)
        if err is not None:
            raise APIError(500, err)
        if "aux" in jm:
            continue
        pd = jm.get("progressDetail") or {}
        if pd.get("current", 0) > 0 or pd.get("total", 0) > 0:
            continue
        s = (f"{jm['id']}: " if jm.get("id") else "") + (jm.get("status") or "")
        if jm.get("progress") and not pd:
            s += " " + jm["progress"]
        if jm.get("stream"):
            out.write(jm["stream"])
        else:
            out.write(s + "\n")
        out.flush()


def pull_image(c: Any, image: str, platform: str | None, quiet: bool, out: Any) -> None:
    from .. import reference

    ref = reference.parse_normalized(image)
    tag = ref.digest or ref.tag or "latest"
    params = {"fromImage": ref.familiar_name, "tag": tag, "platform": platform or None}
    resp = c.request("POST", "/images/create", params, headers={"X-Registry-Auth": "e30="})
    try:
        display_json_messages(resp, open(os.devnull, "w") if quiet else out)
    finally:
        resp.close()


def _tagged(image: str) -> str:
    from .. import reference

    try:
        ref = reference.parse_normalized(image)
    except Exception:
        return image
    if not ref.digest and not ref.tag:
        ref = ref.with_default_tag()
    return reference.familiar_string(ref)


def create_container(c: Any, opts: dict[str, Any], body: dict[str, Any],
                     query: dict[str, Any]) -> str:
    """docker's createContainer: create, and on a missing image pull it
    (unless --pull=never) and create again. Raises APIError."""
    from .client import APIError

    image = body["Image"]
    pull = opts.get("pull") or "missing"
    if pull not in ("always", "missing", "never"):
        raise UsageError(f'invalid pull option: \'{pull}\': must be one of "always", '
                         '"missing" or "never"')
    if opts.get("cidfile") and os.path.exists(opts["cidfile"]):
        raise APIError(0, f"Container ID file found, make sure the other container isn't "
                       f"running or delete {opts['cidfile']}")
    if pull == "always":
        pull_image(c, image, opts.get("platform"), opts.get("quiet"), sys.stderr)
    data = json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"}
    try:
        r = c.request("POST", "/containers/create", query, data, hdrs)
    except APIError as e:
        if e.status != 404 or "image" not in e.message.lower() or pull == "never":
            raise
        print(f"Unable to find image '{_tagged(image)}' locally", file=sys.stderr)
        pull_image(c, image, opts.get("platform"), opts.get("quiet"), sys.stderr)
        r = c.request("POST", "/containers/create", query, data, hdrs)
    try:
        resp = r.json()
    finally:
        r.close()
    for w in resp.get("Warnings") or []:
        print(f"WARNING: {w}", file=sys.stderr)
    if opts.get("cidfile"):
        with open(opts["cidfile"], "w") as f:
            f.write(resp["Id"])
    return resp["Id"]


def run_create(argv: list[str]) -> int:
    """`docker create`: prints the new container's ID."""
    from .client import APIError, ConnectError
    from .common import client

    try:
        opts, changed, image, cmd = parse_args(argv, "create")
    except UsageError as e:
        print(f"{e}\nSee 'docker create --help'.", file=sys.stderr)
        return 125
    return create_parsed(opts, changed, image, cmd)


def create_parsed(opts: dict[str, Any], changed: set[str], image: str, cmd: list[str]) -> int:
    from .client import APIError, ConnectError
    from .common import client

    try:
        body, query = build_create(opts, changed, image, cmd, run=False)
        cid = create_container(client(), opts, body, query)
    except UsageError as e:
        print(f"{e}\nSee 'docker create --help'.", file=sys.stderr)
        return 125
    except APIError as e:
        print(f"Error response from daemon: {e.message}" if e.status else e.message,
              file=sys.stderr)
        return 1
    except ConnectError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(cid)
    return 0


def run_run(argv: list[str]) -> int:
    """`docker run`: create, attach, start, wait; returns the exit code."""
    from .client import APIError, ConnectError
    from .common import client

    try:
        opts, changed, image, cmd = parse_args(argv, "run")
    except UsageError as e:
        print(f"{e}\nSee 'docker run --help'.", file=sys.stderr)
        return 125
    return run_parsed(opts, changed, image, cmd)


def run_parsed(opts: dict[str, Any], changed: set[str], image: str, cmd: list[str]) -> int:
    from .client import APIError, ConnectError
    from .common import client

    try:
        body, query = build_create(opts, changed, image, cmd, run=True)
    except UsageError as e:
        print(f"{e}\nSee 'docker run --help'.", file=sys.stderr)
        return 125
    try:
        c = client()
        cid = create_container(c, opts, body, query)
    except UsageError as e:
        report_error("run", str(e), True)
        return 125
    except APIError as e:
        report_error("run", f"Error response from daemon: {e.message}" if e.status else
                     e.message, True)
        return 125
    except ConnectError as e:
        report_error("run", str(e), True)
        return 125
    try:
        return attach_start_wait(c, cid, body, opts)
    except ConnectError as e:
        print(str(e), file=sys.stderr)
        return 125


def attach_start_wait(c: Any, cid: str, body: dict[str, Any], opts: dict[str, Any]) -> int:
    from . import streams
    from .client import APIError

    tty = body["Tty"]
    a_in, a_out, a_err = body["AttachStdin"], body["AttachStdout"], body["AttachStderr"]
    if opts.get("sig_proxy", True) and not tty and (a_out or a_err):
        streams.forward_signals(
            lambda sig: c.request("POST", f"/containers/{cid}/kill", {"signal": sig}).close())
    if not a_out and not a_err:
        print(cid)
        sys.stdout.flush()
    h = None
    if a_in or a_out or a_err:
        try:
            h = c.hijack("POST", f"/containers/{cid}/attach",
                         {"stream": 1, "stdin": int(a_in), "stdout": int(a_out),
                          "stderr": int(a_err)})
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            return 1
    wait = None
    if a_out or a_err:
        cond = "removed" if body["HostConfig"]["AutoRemove"] else "next-exit"
        wait = c.request("POST", f"/containers/{cid}/wait", {"condition": cond})
    try:
        c.request("POST", f"/containers/{cid}/start").close()
    except APIError as e:
        if h:
            h.close()
        report_error("run", f"Error response from daemon: {e.message}", False)
        if wait is not None and body["HostConfig"]["AutoRemove"]:
            try:
                wait.read()
            except Exception:
                pass
        return start_error_code(e.message)
    if h is None:
        return 0
    if tty and os.isatty(1):
        streams.monitor_tty_size(lambda hh, ww: c.request(
            "POST", f"/containers/{cid}/resize", {"h": hh, "w": ww}).close())
    try:
        streams.stream(h, tty, a_in, opts.get("detach_keys"))
    except streams.DetachError:
        return 0
    finally:
        h.close()
    if wait is None:
        return 0
    try:
        res = json.loads(wait.read() or b"{}")
    finally:
        wait.close()
    if (res.get("Error") or {}).get("Message"):
        print(f"Error response from daemon: {res['Error']['Message']}", file=sys.stderr)
        return 125
    return int(res.get("StatusCode", 0))
