"""The runtime spec for a container: Docker's Config and HostConfig turned
into what the execution driver runs (see `rust/runtime/src/spec.rs`), on top
of Docker's defaults from `_core.default_spec`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .. import _core
from ..errors import InvalidParameter
from .model import Container

ALL_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]

RLIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
           "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as"}


def _cap(name: str) -> str:
    n = name.strip().upper()
    return n if n.startswith("CAP_") else f"CAP_{n}"


def capabilities(default: list[str], privileged: bool, add: list[str] | None,
                 drop: list[str] | None) -> list[str]:
    if privileged:
        return list(ALL_CAPS)
    add = [_cap(c) for c in add or []]
    drop = [_cap(c) for c in drop or []]
    for c in add + drop:
        if c != "CAP_ALL" and c not in ALL_CAPS:
            kind = "CapAdd" if c in add else "CapDrop"
            raise InvalidParameter(f'invalid {kind}: unknown capability: "{c}"')
    caps = list(ALL_CAPS) if "CAP_ALL" in add else list(default)
    if "CAP_ALL" in drop:
        caps = []
    caps = [c for c in caps if c not in drop]
    for c in add:
        if c != "CAP_ALL" and c not in caps:
            caps.append(c)
    return caps


def _read_db(rootfs: str, name: str) -> list[list[str]]:
    """Lines of the image's /etc/passwd or /etc/group, split on ':'."""
    path = os.path.join(rootfs, "etc", name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return []
    with os.fdopen(fd) as f:
        return [line.rstrip("\n").split(":") for line in f if line.strip() and
                not line.startswith("#")]


def resolve_user(rootfs: str, user: str) -> tuple[int, int, list[int], str]:
    """`-u user[:group]` through the image's passwd/group files, as Docker does:
    returns (uid, gid, additional gids, home)."""
    if not user:
        user = "0"
    uname, _, gname = user.partition(":")
    passwd = _read_db(rootfs, "passwd")
    groups = _read_db(rootfs, "group")
    uid = gid = None
    home = "/"
    for p in passwd:
        if len(p) >= 7 and (p[0] == uname or p[2] == uname):
            uid, gid, home = int(p[2]), int(p[3]), p[5] or "/"
            break
    if uid is None:
        if uname.isdigit():
            uid, gid = int(uname), 0
        else:
            raise InvalidParameter(f"unable to find user {uname}: no matching entries in "
                                   "passwd file")
    if gname:
        found = None
        for g in groups:
            if len(g) >= 3 and (g[0] == gname or g[2] == gname):
                found = int(g[2])
                break
        if found is None:
            if gname.isdigit():
                found = int(gname)
            else:
                raise InvalidParameter(f"unable to find group {gname}: no matching entries in "
                                       "group file")
        gid = found
    extra = []
    if not gname:
        names = {p[0] for p in passwd if len(p) > 2 and p[2] == str(uid)} | {uname}
        for g in groups:
            if len(g) >= 4 and set(g[3].split(",")) & names and int(g[2]) != gid:
                extra.append(int(g[2]))
    return uid, gid or 0, extra, home


def parse_ulimit(u: dict[str, Any]) -> dict[str, Any]:
    name = str(u.get("Name", "")).lower()
    if name not in RLIMITS:
        raise InvalidParameter(f"invalid ulimit type: {name}")
    soft, hard = int(u.get("Soft", 0)), int(u.get("Hard", 0))
    if soft > hard:
        raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: "
                               f"{soft} > {hard}")
    return {"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard}


def build(c: Container, rootfs: str, container_dir: Path, cgroup_parent: str,
          default_ulimits: list[dict[str, Any]] | None = None) -> str:
    """The runtime spec JSON for starting container `c` on `rootfs`."""
    cfg, hc = c.config, c.hostconfig
    args = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    if not args:
        raise InvalidParameter("No command specified")
    spec = json.loads(_core.default_spec(rootfs, args))
    env = list(cfg.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    hostname = cfg.get("Hostname") or c.id[:12]
    if "HOSTNAME" not in keys:
        env.append(f"HOSTNAME={hostname}")
    if cfg.get("Tty") and "TERM" not in keys:
        env.append("TERM=xterm")
    uid, gid, extra, home = resolve_user(rootfs, cfg.get("User") or "")
    if "HOME" not in keys:
        env.append(f"HOME={home}")
    spec.update(env=env, cwd=cfg.get("WorkingDir") or "/", hostname=hostname,
                domainname=cfg.get("Domainname") or "", terminal=bool(cfg.get("Tty")),
                readonly_rootfs=bool(hc.get("ReadonlyRootfs")))
    spec["user"] = {"uid": uid, "gid": gid,
                    "additional_gids": extra + [int(g) for g in hc.get("GroupAdd") or []
                                                if str(g).isdigit()], "umask": None}
    privileged = bool(hc.get("Privileged"))
    caps = capabilities(spec["capabilities"]["bounding"], privileged, hc.get("CapAdd"),
                        hc.get("CapDrop"))
    spec["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps,
                            "inheritable": caps, "ambient": []}
    secopts = hc.get("SecurityOpt") or []
    spec["no_new_privileges"] = any(o in ("no-new-privileges", "no-new-privileges:true",
                                          "no-new-privileges=true") for o in secopts)
    seccomp = "default"
    for o in secopts:
        if o.startswith(("seccomp=", "seccomp:")):
            seccomp = o.split("=", 1)[-1].split(":", 1)[-1]
            if seccomp not in ("unconfined", "default"):
                raise InvalidParameter("custom seccomp profiles are not supported yet: use "
                                       "seccomp=unconfined or the default")
    if privileged:
        seccomp = "unconfined"
        spec["masked_paths"] = []
        spec["readonly_paths"] = []
    spec["seccomp"] = None if seccomp == "unconfined" else "default"
    rl = {}
    for u in list(default_ulimits or []) + list(hc.get("Ulimits") or []):
        r = parse_ulimit(u)
        rl[r["type"]] = r
    spec["rlimits"] = list(rl.values())
    mounts = spec["mounts"]
    ro = bool(hc.get("ReadonlyRootfs"))
    for name in ("resolv.conf", "hostname", "hosts"):
        src = container_dir / name
        if src.exists():
            mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": str(src),
                           "options": ["rbind", "rprivate"] + (["ro"] if ro else [])})
    for b in hc.get("Binds") or []:
        mounts.append(bind_mount(b))
    for dest, opts in (hc.get("Tmpfs") or {}).items():
        mounts.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "noexec"] + ([o for o in opts.split(",")
                                                                   if o] if opts else [])})
    shm = hc.get("ShmSize")
    if shm:
        for m in mounts:
            if m["destination"] == "/dev/shm":
                m["options"] = [o for o in m["options"] if not o.startswith("size=")] + \
                    [f"size={int(shm) // 1024}k"]
    res: dict[str, Any] = {}
    if hc.get("Memory"):
        res["memory"] = int(hc["Memory"])
    if hc.get("MemorySwap"):
        res["memory_swap"] = int(hc["MemorySwap"])
    if hc.get("MemoryReservation"):
        res["memory_reservation"] = int(hc["MemoryReservation"])
    if hc.get("CpuShares"):
        res["cpu_shares"] = int(hc["CpuShares"])
    if hc.get("NanoCpus"):
        res["cpu_period"] = 100000
        res["cpu_quota"] = int(hc["NanoCpus"]) * 100000 // 1_000_000_000
    if hc.get("CpuQuota"):
        res["cpu_quota"] = int(hc["CpuQuota"])
    if hc.get("CpuPeriod"):
        res["cpu_period"] = int(hc["CpuPeriod"])
    if hc.get("CpusetCpus"):
        res["cpuset_cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        res["cpuset_mems"] = hc["CpusetMems"]
    if hc.get("PidsLimit"):
        res["pids_limit"] = int(hc["PidsLimit"])
    spec["cgroup"] = {"path": f"{cgroup_parent}/{c.id}", "resources": res}
    spec["init"] = bool(hc.get("Init"))
    if hc.get("OomScoreAdj"):
        spec["oom_score_adj"] = int(hc["OomScoreAdj"])
    return json.dumps(spec)


def bind_mount(spec: str) -> dict[str, Any]:
    """`-v /host:/ctr[:ro|rw,...]` (named volumes are not supported yet)."""
    parts = spec.split(":")
    if len(parts) < 2 or not parts[0].startswith("/"):
        raise InvalidParameter(f"invalid volume specification: '{spec}': only host bind mounts "
                               "(/host/path:/container/path) are supported")
    src, dest = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) > 2 else []
    if not dest.startswith("/"):
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    if not os.path.exists(src):
        os.makedirs(src, exist_ok=True)  # as Docker does for -v
    flags = ["rbind"]
    flags.append("ro" if "ro" in opts else "rw")
    prop = next((o for o in opts if o in ("private", "rprivate", "shared", "rshared", "slave",
                                            "rslave")), "rprivate")
    flags.append(prop)
    return {"destination": dest, "type": "bind", "source": src, "options": flags}
