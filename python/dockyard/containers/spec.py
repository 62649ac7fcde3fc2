"""The runtime spec for a container: Docker's Config and HostConfig turned
into what the execution driver runs (see `rust/runtime/src/spec.rs`), on top
of Docker's defaults from `_core.default_spec`."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from .. import _core
from ..errors import InvalidParameter
from ..idmap import IDMap
from ..rootless import cgroup_base, rootless_uid, single_id_map
from ..volumes.mounts import parse_tmpfs
from . import devices
from .model import Container
from .namespaces import Namespaces, check_sysctls
from .process import StartError

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


def bounding_set() -> int | None:
    """The daemon's own capability bounding set (a container can't have more)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return None


def all_grantable() -> list[str]:
    """Every capability the daemon can grant: what --privileged and --cap-add
    ALL mean, as in Docker (capset fails on one beyond the bounding set)."""
    bnd = bounding_set()
    return [c for i, c in enumerate(ALL_CAPS) if bnd is None or bnd >> i & 1]


def capabilities(default: list[str], privileged: bool, add: list[str] | None,
                 drop: list[str] | None) -> list[str]:
    if privileged:
        return all_grantable()
    add = [_cap(c) for c in add or []]
    drop = [_cap(c) for c in drop or []]
    for c in add + drop:
        if c != "CAP_ALL" and c not in ALL_CAPS:
            kind = "CapAdd" if c in add else "CapDrop"
            raise InvalidParameter(f'invalid {kind}: unknown capability: "{c}"')
    caps = all_grantable() if "CAP_ALL" in add else list(default)
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


_GO_BOOLS = {"1": "true", "t": "true", "T": "true", "TRUE": "true", "true": "true",
             "True": "true", "0": "false", "f": "false", "F": "false", "FALSE": "false",
             "false": "false", "False": "false"}


def security_opts(opts: Any) -> dict[str, str]:
    """`--security-opt`s as dockerd parses them (`=`, or the old `:`): the
    last value of each of label, apparmor, seccomp and no-new-privileges;
    anything else is dockerd's error."""
    out = {"no-new-privileges": "false"}
    for o in opts or []:
        o = str(o)
        if o == "no-new-privileges":
            out[o] = "true"
            continue
        if o == "disable":
            out["label"] = o
            continue
        sep = "=" if "=" in o else ":" if ":" in o else None
        if sep is None:
            raise InvalidParameter(f"invalid --security-opt 1: {json.dumps(o)}")
        k, _, v = o.partition(sep)
        if k == "no-new-privileges":
            if v not in _GO_BOOLS:
                raise InvalidParameter(f"invalid --security-opt 2: {json.dumps(o)}")
            v = _GO_BOOLS[v]
        elif k not in ("label", "apparmor", "seccomp"):
            raise InvalidParameter(f"invalid --security-opt 2: {json.dumps(o)}")
        out[k] = v
    return out


def supplementary_gids(rootfs: str, gid: int, extra: list[int], group_add: Any) -> list[int]:
    """The process's supplementary groups as Docker sets them: the user's
    memberships, then `--group-add` (names through the image's group file),
    and always the primary group."""
    groups = None
    out = list(extra)
    for g in group_add or []:
        g = str(g)
        if g.isdigit():
            out.append(int(g))
            continue
        groups = _read_db(rootfs, "group") if groups is None else groups
        found = next((int(e[2]) for e in groups if len(e) >= 3 and e[0] == g), None)
        if found is None:
            raise InvalidParameter(f"Unable to find group {g}: no matching entries in group file")
        out.append(found)
    return list(dict.fromkeys([*out, gid]))


def parse_ulimit(u: dict[str, Any]) -> dict[str, Any]:
    name = str(u.get("Name", "")).lower()
    if name not in RLIMITS:
        raise InvalidParameter(f"invalid ulimit type: {name}")
    soft, hard = int(u.get("Soft", 0)), int(u.get("Hard", 0))
    if soft > hard:
        raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: "
                               f"{soft} > {hard}")
    return {"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard}


SECCOMP_ACTIONS = {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                   "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE", "SCMP_ACT_LOG"}
SECCOMP_OPS = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
               "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"}
SECCOMP_ARCHES = {f"SCMP_ARCH_{a}" for a in (
    "X86 X86_64 X32 ARM AARCH64 MIPS MIPS64 MIPS64N32 MIPSEL MIPSEL64 MIPSEL64N32 PPC PPC64 "
    "PPC64LE S390 S390X PARISC PARISC64 RISCV64 LOONGARCH64 M68K SH SHEB").split()}
#: What `includes`/`excludes` call this machine (Go's GOARCH, as moby compares).
NATIVE_ARCHES = {"amd64", "x86_64"}


def _kernel_at_least(want: str) -> bool:
    try:
        w = tuple(int(x) for x in want.split(".")[:2])
        have = tuple(int("".join(ch for ch in x if ch.isdigit()) or 0)
                     for x in os.uname().release.split(".")[:2])
    except ValueError:
        raise InvalidParameter(f"Decoding seccomp profile failed: invalid minKernel "
                               f"{want!r}") from None
    return have >= w


def seccomp_profile(text: str, caps: list[str]) -> dict[str, Any]:
    """Docker's seccomp profile JSON (moby `profiles/seccomp`) checked and resolved
    for a container with bounding set `caps`: `includes`/`excludes` applied (as
    moby does) and `archMap` turned into `architectures`, so what remains is
    also an OCI `linux.seccomp` object. Compiled by rust/runtime/src/seccomp/profile.rs."""
    def bad(msg: str) -> InvalidParameter:
        return InvalidParameter(f"Decoding seccomp profile failed: {msg}")

    try:
        p = json.loads(text)
    except ValueError as e:
        raise bad(str(e)) from None
    if not isinstance(p, dict):
        raise bad("the profile must be a JSON object")
    out: dict[str, Any] = {}
    act = p.get("defaultAction")
    if act not in SECCOMP_ACTIONS:
        raise bad(f"invalid defaultAction {act!r}" if act else "defaultAction is required")
    out["defaultAction"] = act

    def errno(v: Any, what: str) -> int | None:
        if v is None:
            return None
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 0xffff:
            raise bad(f"invalid {what} {v!r}")
        return v
    if (e := errno(p.get("defaultErrnoRet"), "defaultErrnoRet")) is not None:
        out["defaultErrnoRet"] = e
    arches, amap = p.get("architectures") or [], p.get("archMap") or []
    if arches and amap:
        raise bad("both 'architectures' and 'archMap' are specified in the seccomp profile, "
                  "use either 'architectures' or 'archMap'")
    if not isinstance(arches, list) or not isinstance(amap, list):
        raise bad("'architectures' and 'archMap' must be lists")
    for m in amap:
        if not isinstance(m, dict):
            raise bad("invalid archMap entry")
        if m.get("architecture") == "SCMP_ARCH_X86_64":
            arches = [m["architecture"], *(m.get("subArchitectures") or [])]
        for a in [m.get("architecture"), *(m.get("subArchitectures") or [])]:
            if a not in SECCOMP_ARCHES:
                raise bad(f"unknown architecture {a!r}")
    for a in arches:
        if a not in SECCOMP_ARCHES:
            raise bad(f"unknown architecture {a!r}")
    out["architectures"] = list(arches) or ["SCMP_ARCH_X86_64"]
    have = {_cap(c) for c in caps}
    rules = []
    calls = p.get("syscalls") or []
    if not isinstance(calls, list):
        raise bad("'syscalls' must be a list")
    for i, s in enumerate(calls):
        if not isinstance(s, dict):
            raise bad(f"syscalls[{i}] must be an object")
        name, names = s.get("name"), s.get("names") or []
        if name and names:
            raise bad("'name' and 'names' were specified in the seccomp profile, "
                      "use either 'name' or 'names'")
        names = [name] if name else names
        if not names or not isinstance(names, list) or \
                not all(isinstance(n, str) and n for n in names):
            raise bad(f"syscalls[{i}]: 'names' must be a list of syscall names")
        if s.get("action") not in SECCOMP_ACTIONS:
            raise bad(f"syscalls[{i}]: invalid action {s.get('action')!r}")
        rule: dict[str, Any] = {"names": names, "action": s["action"]}
        if (e := errno(s.get("errnoRet"), "errnoRet")) is not None:
            rule["errnoRet"] = e
        args = []
        for a in s.get("args") or []:
            if not isinstance(a, dict) or a.get("op") not in SECCOMP_OPS:
                raise bad(f"syscalls[{i}]: invalid argument condition {a!r}")
            idx, val, two = a.get("index"), a.get("value", 0), a.get("valueTwo", 0) or 0
            if not isinstance(idx, int) or not 0 <= idx <= 5:
                raise bad(f"syscalls[{i}]: argument index {idx!r} is out of range (0-5)")
            for v in (val, two):
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 64:
                    raise bad(f"syscalls[{i}]: invalid argument value {v!r}")
            args.append({"index": idx, "value": val, "valueTwo": two, "op": a["op"]})
        if args:
            rule["args"] = args
        inc, exc = s.get("includes") or {}, s.get("excludes") or {}
        if not isinstance(inc, dict) or not isinstance(exc, dict):
            raise bad(f"syscalls[{i}]: 'includes' and 'excludes' must be objects")
        if set(exc.get("arches") or []) & NATIVE_ARCHES \
                or {_cap(c) for c in exc.get("caps") or []} & have \
                or (exc.get("minKernel") and _kernel_at_least(exc["minKernel"])):
            continue
        if (inc.get("arches") and not set(inc["arches"]) & NATIVE_ARCHES) \
                or not {_cap(c) for c in inc.get("caps") or []} <= have \
                or (inc.get("minKernel") and not _kernel_at_least(inc["minKernel"])):
            continue
        rules.append(rule)
    out["syscalls"] = rules
    return out


def seccomp_spec(value: str, caps: list[str]) -> str | dict[str, Any] | None:
    """The spec's `seccomp` for a `seccomp=` security option: None (unconfined),
    "default" (built-in profile) or a resolved custom profile (the docker CLI
    sends the profile's JSON content, not its path)."""
    if value == "unconfined":
        return None
    if value in ("", "default", "builtin"):
        return "default"
    if not value.lstrip().startswith(("{", "[")):
        raise InvalidParameter(f"Decoding seccomp profile failed: {value!r} is not a JSON "
                               "profile (the client sends the file's content)")
    try:
        return seccomp_profile(value, caps)
    except InvalidParameter as e:
        # A start failure (as dockerd's): `docker run` attaches before it starts,
        # and attach only tolerates a StartError.
        raise StartError(str(e), 125) from None


def build(c: Container, rootfs: str, container_dir: Path, cgroup_path: str,
          default_ulimits: list[dict[str, Any]] | None = None,
          netns: str | None = None, extra_mounts: list[dict[str, Any]] | None = None,
          link_env: list[str] | None = None, idmap: IDMap | None = None,
          shared: Namespaces | None = None,
          cgroup: tuple[list[dict[str, Any]], dict[str, Any] | None] | None = None) -> str:
    """The runtime spec JSON for starting container `c` on `rootfs`; `link_env`:
    its legacy links' variables (its own Env wins over them); `idmap`: the
    daemon's --userns-remap (a user namespace unless UsernsMode is "host");
    `shared`: its PID/IPC/UTS namespaces as start resolved them
    (`namespaces.resolve`), and its /dev/shm; `cgroup`: its devices and
    cgroup (`devices_and_cgroup`) when the caller has them already."""
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
    for e in link_env or []:
        if e.split("=", 1)[0] not in keys:
            env.append(e)
    uid, gid, extra, home = resolve_user(rootfs, cfg.get("User") or "")
    if "HOME" not in keys:
        env.append(f"HOME={home}")
    spec.update(env=env, cwd=cfg.get("WorkingDir") or "/", hostname=hostname,
                domainname=cfg.get("Domainname") or "", terminal=bool(cfg.get("Tty")),
                readonly_rootfs=bool(hc.get("ReadonlyRootfs")))
    spec["user"] = {"uid": uid, "gid": gid, "umask": None,
                    "additional_gids": supplementary_gids(rootfs, gid, extra, hc.get("GroupAdd"))}
    privileged = bool(hc.get("Privileged"))
    caps = capabilities(spec["capabilities"]["bounding"], privileged, hc.get("CapAdd"),
                        hc.get("CapDrop"))
    # Inheritable stays empty (CVE-2022-24769): with it, an exec'd file's
    # inheritable caps would be granted even to a non-root user.
    spec["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps,
                            "inheritable": [], "ambient": []}
    sec = security_opts(hc.get("SecurityOpt"))
    spec["no_new_privileges"] = sec["no-new-privileges"] == "true"
    seccomp = sec.get("seccomp") or "default"
    if privileged:
        seccomp = "unconfined"
        spec["masked_paths"] = []
        spec["readonly_paths"] = []
    else:
        # API 1.40's lists replace the defaults when given (the CRI sends them)
        if hc.get("MaskedPaths") is not None:
            spec["masked_paths"] = list(hc["MaskedPaths"])
        if hc.get("ReadonlyPaths") is not None:
            spec["readonly_paths"] = list(hc["ReadonlyPaths"])
    spec["seccomp"] = seccomp_spec(seccomp, caps)
    rl = {}
    for u in list(default_ulimits or []) + list(hc.get("Ulimits") or []):
        r = parse_ulimit(u)
        rl[r["type"]] = r
    spec["rlimits"] = list(rl.values())
    mounts = spec["mounts"]
    shm = hc.get("ShmSize")
    if shm:
        for m in mounts:
            if m["destination"] == "/dev/shm":
                m["options"] = [o for o in m["options"] if not o.startswith("size=")] + \
                    [f"size={int(shm) // 1024}k"]
    ro = bool(hc.get("ReadonlyRootfs"))
    for name in ("resolv.conf", "hostname", "hosts"):
        src = container_dir / name
        if src.exists():
            mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": str(src),
                           "options": ["rbind", "rprivate"] + (["ro"] if ro else [])})
    user = list(extra_mounts or [])  # volumes, binds and --mount tmpfs (mountpoints.py)
    for dest, opts in (hc.get("Tmpfs") or {}).items():
        user.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                     "options": parse_tmpfs(dest, opts or "")})
    # As dockerd: a mount the user asked for replaces the default (or /etc
    # file) at its destination, and a /dev of theirs everything below it.
    taken = {m["destination"] for m in user}
    mounts[:] = [m for m in mounts if m["destination"] not in taken
                 and not ("/dev" in taken and m["destination"].startswith("/dev/"))] + user
    spec["devices"], spec["cgroup"] = cgroup if cgroup is not None else \
        devices_and_cgroup(c, cgroup_path)
    rootless = rootless_uid() is not None
    if rootless and single_id_map():
        # gid 5 (tty) is not mapped: devpts refuses the option (runc's rootless spec drops it)
        for m in mounts:
            if m["type"] == "devpts":
                m["options"] = [o for o in m["options"] if o != "gid=5"]
    if netns == "host":
        spec["namespaces"] = [n for n in spec["namespaces"] if n["type"] != "network"]
    elif netns:
        for n in spec["namespaces"]:
            if n["type"] == "network":
                n["path"] = netns
    if hc.get("CgroupnsMode") == "host":
        spec["namespaces"] = [n for n in spec["namespaces"] if n["type"] != "cgroup"]
    shared = shared or Namespaces()
    for kind, how in shared.join.items():
        if how == "host":
            spec["namespaces"] = [n for n in spec["namespaces"] if n["type"] != kind]
        else:
            for n in spec["namespaces"]:
                if n["type"] == kind:
                    n["path"] = how
    if shared.join.get("uts", "host") != "host":
        # A pinned UTS namespace has its hostname already (the pod's).
        spec["hostname"] = spec["domainname"] = ""
    if shared.shm is not None:
        mounts[:] = [m for m in mounts if m["destination"] != "/dev/shm"]
        if shared.shm:
            mounts.append({"destination": "/dev/shm", "type": "bind", "source": shared.shm,
                           "options": ["rbind", "nosuid", "noexec", "nodev"]})
    sysctls = {str(k): str(v) for k, v in (hc.get("Sysctls") or {}).items()}
    if sysctls:
        own = {n["type"] for n in spec["namespaces"]}
        private = {k for k, t in (("net", "network"), ("ipc", "ipc"), ("uts", "uts"))
                   if t in own}
        check_sysctls(sysctls, private)
        spec["sysctl"] = sysctls
    # A bind asking for shared propagation needs a shared `/` (dockerd sets
    # rootfsPropagation so too): otherwise mounts made in it never leave.
    props = {o for m in spec["mounts"] for o in m.get("options") or []}
    if props & {"shared", "rshared"}:
        spec["rootfs_propagation"] = "rshared"
    spec["init"] = bool(hc.get("Init"))
    if idmap is not None and (hc.get("UsernsMode") or "") != "host":
        spec["namespaces"].append({"type": "user"})
        maps = idmap.oci()
        spec["uid_mappings"], spec["gid_mappings"] = maps["uidMappings"], maps["gidMappings"]
    if hc.get("OomScoreAdj"):
        spec["oom_score_adj"] = int(hc["OomScoreAdj"])
    return json.dumps(spec)


def devices_and_cgroup(c: Container, cgroup_path: str
                       ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The spec's `devices` and `cgroup` (None: none at all) for `c`: from
    its HostConfig alone, so they can be had before its rootfs is mounted."""
    hc = c.hostconfig
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
    res.update(_more_resources(hc))
    rootless = rootless_uid() is not None
    devs, res["devices"] = devices.resolve(hc, rootless)
    # Rootless without a delegated cgroup: none at all (limits were refused,
    # or discarded, at create).
    no_cgroup = rootless and not cgroup_base()
    return devs, None if no_cgroup else {"path": cgroup_path, "resources": res}


#: HostConfig's block device lists and their runtime keys.
BLKIO_RATES = (("BlkioWeightDevice", "blkio_weight_device", "Weight"),
               ("BlkioDeviceReadBps", "blkio_read_bps", "Rate"),
               ("BlkioDeviceWriteBps", "blkio_write_bps", "Rate"),
               ("BlkioDeviceReadIOps", "blkio_read_iops", "Rate"),
               ("BlkioDeviceWriteIOps", "blkio_write_iops", "Rate"))


def _more_resources(hc: dict[str, Any]) -> dict[str, Any]:
    """Swappiness, the OOM killer switch, block I/O weights and throttles and
    real-time CPU, as runc writes them. A device path is looked up now, at
    the start, as dockerd does (`stat /dev/x: no such file or directory`)."""
    res: dict[str, Any] = {}
    sw = hc.get("MemorySwappiness")
    if sw is not None and int(sw) >= 0:
        res["memory_swappiness"] = int(sw)
    if hc.get("OomKillDisable"):
        res["oom_kill_disable"] = True
    if hc.get("BlkioWeight"):
        res["blkio_weight"] = int(hc["BlkioWeight"])
    for key, out, field in BLKIO_RATES:
        rates = []
        for d in hc.get(key) or []:
            path = str(d.get("Path") or "")
            try:
                st = os.stat(path)
            except OSError as e:
                raise StartError(f"stat {path}: {(e.strerror or '').lower()}", 125) from None
            if not stat.S_ISBLK(st.st_mode):
                raise StartError(f"{path}: not a block device", 125)
            rates.append({"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                          "rate": int(d.get(field) or 0)})
        if rates:
            res[out] = rates
    if hc.get("CpuRealtimePeriod"):
        res["cpu_rt_period"] = int(hc["CpuRealtimePeriod"])
    if hc.get("CpuRealtimeRuntime"):
        res["cpu_rt_runtime"] = int(hc["CpuRealtimeRuntime"])
    return res
