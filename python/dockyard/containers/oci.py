"""The runc execution driver's half in Python: an OCI runtime-spec bundle
(`config.json`) made from the same runtime spec the native driver runs
(`spec.build`), so both drivers give a container the same root, process,
mounts, capabilities, seccomp filter and cgroup.

Seccomp: the native driver's deny-list (rust/runtime/src/seccomp.rs) in OCI
form: `SCMP_ACT_ALLOW` by default, `SCMP_ACT_ERRNO` (EPERM) for the denied
syscalls and for clone() with a namespace flag, ENOSYS for clone3 (so libcs
fall back to clone). One difference: personality(2) is not narrowed to
Docker's personas (a "not one of" test on one argument can't be written as
libseccomp rules, which OR the conditions on the same argument).

`--init` as in Docker: the shim binary (statically linked, so it runs in any
image) is bind-mounted read-only at `/sbin/docker-init` and the process
becomes `/sbin/docker-init -- CMD...`; in that name the shim is a minimal
init (rust/shim/src/init.rs) that forwards signals, reaps and exits with the
command's status, like the native driver's in-container reaper.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .. import _core
from ..errors import DockyardError
from . import devices
from .spec import ALL_CAPS, bounding_set

OCI_VERSION = "1.0.2"

#: The native driver's denied syscalls (rust/runtime/src/seccomp.rs `denied()`;
#: tests/test_runc_driver.py checks the two lists agree).
DENIED_SYSCALLS = [
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "delete_module",
    "finit_module", "init_module", "get_mempolicy", "mbind", "set_mempolicy", "move_pages",
    "kcmp", "kexec_load", "keyctl", "request_key", "lookup_dcookie", "mount", "umount2",
    "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
    "mount_setattr", "name_to_handle_at", "open_by_handle_at", "perf_event_open",
    "process_vm_readv", "process_vm_writev", "quotactl", "reboot", "setns", "unshare",
    "settimeofday", "swapon", "swapoff", "syslog", "userfaultfd", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "sethostname", "setdomainname", "vhangup",
    "fanotify_init",
]
DENIED_X86_64 = ["create_module", "get_kernel_syms", "query_module", "ioperm", "iopl",
                 "kexec_file_load", "nfsservctl", "sysfs", "_sysctl", "uselib", "ustat"]

#: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
CLONE_NS_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                  0x40000000]
EPERM, ENOSYS = 1, 38

#: Where `--init` puts the init in the container (Docker's path).
INIT_PATH = "/sbin/docker-init"


def runc_path() -> str | None:
    """The runc binary: $DOCKYARD_RUNC, else `runc` on PATH (or /usr/sbin/runc)."""
    p = os.environ.get("DOCKYARD_RUNC")
    if p:
        return p if os.access(p, os.X_OK) else None
    return shutil.which("runc") or shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin:/bin")


def require_runc() -> str:
    p = runc_path()
    if p is None:
        raise DockyardError("exec driver runc: the runc binary was not found (install the runc "
                            "package, or set DOCKYARD_RUNC to its path)")
    return p


def seccomp_profile() -> dict[str, Any]:
    """The native deny-list as an OCI `linux.seccomp` object."""
    machine = platform.machine()
    arch = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(machine)
    names = DENIED_SYSCALLS + (DENIED_X86_64 if machine == "x86_64" else [])
    rules: list[dict[str, Any]] = [
        {"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
    ]
    for flag in CLONE_NS_FLAGS:  # one rule per flag: conditions on one argument are ORed
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                      "args": [{"index": 0, "value": flag, "valueTwo": flag,
                                "op": "SCMP_CMP_MASKED_EQ"}]})
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [arch] if arch else [],
            "syscalls": rules}


def _oci_mount(m: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """A mount entry; a user-namespaced container joining a network namespace
    made outside it can't mount sysfs (runc has no fallback for it): it gets
    the host's /sys bound, read-only."""
    if m["type"] == "sysfs" and spec.get("uid_mappings") and any(
            n["type"] in ("network", "net") and n.get("path")
            for n in spec.get("namespaces") or []):
        return {"destination": m["destination"], "type": "bind", "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    return {"destination": m["destination"], "type": m["type"], "source": m["source"],
            "options": list(m.get("options") or [])}


def _resources(res: dict[str, Any]) -> dict[str, Any]:
    # The spec's rules (devices.resolve); Docker's default for an older spec
    out: dict[str, Any] = {"devices": res.get("devices") or devices.default_rules()}
    mem: dict[str, Any] = {}
    if res.get("memory") is not None:
        mem["limit"] = int(res["memory"])
    # As the native driver: memory+swap only where the kernel accounts swap.
    if res.get("memory_swap") is not None and \
            (os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
             or os.path.exists("/sys/fs/cgroup/cgroup.controllers")):  # v2: memory.swap.max
        mem["swap"] = int(res["memory_swap"])
    if res.get("memory_reservation") is not None:
        mem["reservation"] = int(res["memory_reservation"])
    if res.get("memory_swappiness") is not None:
        mem["swappiness"] = int(res["memory_swappiness"])
    if res.get("oom_kill_disable"):
        mem["disableOOMKiller"] = True
    if mem:
        out["memory"] = mem
    cpu: dict[str, Any] = {}
    for k, o in (("cpu_shares", "shares"), ("cpu_quota", "quota"), ("cpu_period", "period")):
        if res.get(k) is not None:
            cpu[o] = int(res[k])
    for k, o in (("cpuset_cpus", "cpus"), ("cpuset_mems", "mems")):
        if res.get(k):
            cpu[o] = str(res[k])
    if cpu:
        out["cpu"] = cpu
    if res.get("pids_limit") is not None:
        limit = int(res["pids_limit"])
        out["pids"] = {"limit": limit if limit > 0 else -1}
    for k, o in (("cpu_rt_period", "realtimePeriod"), ("cpu_rt_runtime", "realtimeRuntime")):
        if res.get(k) is not None:
            out.setdefault("cpu", {})[o] = int(res[k])
    io: dict[str, Any] = {}
    if res.get("blkio_weight"):
        io["weight"] = int(res["blkio_weight"])
    if res.get("blkio_weight_device"):
        io["weightDevice"] = [{"major": r["major"], "minor": r["minor"], "weight": r["rate"]}
                              for r in res["blkio_weight_device"]]
    for k, o in (("blkio_read_bps", "throttleReadBpsDevice"),
                 ("blkio_write_bps", "throttleWriteBpsDevice"),
                 ("blkio_read_iops", "throttleReadIOPSDevice"),
                 ("blkio_write_iops", "throttleWriteIOPSDevice")):
        if res.get(k):
            io[o] = list(res[k])
    if io:
        out["blockIO"] = io
    return out


def _capabilities(caps: dict[str, Any]) -> dict[str, list[str]]:
    """The spec's sets, less what the daemon can't grant (runc fails on those;
    --privileged means "all the daemon has", as in Docker)."""
    bnd = bounding_set()
    known = {c: i for i, c in enumerate(ALL_CAPS)}

    def ok(c: str) -> bool:
        return bnd is None or c not in known or bool(bnd >> known[c] & 1)
    return {k: [c for c in caps.get(k) or [] if ok(c)] for k in
            ("bounding", "effective", "permitted", "inheritable", "ambient")}


def from_native(spec: dict[str, Any], init_binary: str | None = None) -> dict[str, Any]:
    """OCI config.json contents for a native runtime spec (`spec.build`'s JSON).
    With `init` set, `init_binary` (default: the bundled shim) is the init."""
    user = spec.get("user") or {}
    oci_user: dict[str, Any] = {"uid": int(user.get("uid", 0)), "gid": int(user.get("gid", 0))}
    if user.get("additional_gids"):
        oci_user["additionalGids"] = [int(g) for g in user["additional_gids"]]
    if user.get("umask") is not None:
        oci_user["umask"] = int(user["umask"])
    caps = spec.get("capabilities") or {}
    process: dict[str, Any] = {
        "terminal": bool(spec.get("terminal")),
        "user": oci_user,
        "args": ([INIT_PATH, "--"] if spec.get("init") else []) + list(spec["args"]),
        "env": list(spec.get("env") or []),
        "cwd": spec.get("cwd") or "/",
        "capabilities": _capabilities(caps),
        "rlimits": [{"type": r["type"] if r["type"].startswith("RLIMIT_")
                     else "RLIMIT_" + r["type"].upper(), "soft": int(r["soft"]),
                     "hard": int(r["hard"])} for r in spec.get("rlimits") or []],
        "noNewPrivileges": bool(spec.get("no_new_privileges")),
    }
    if spec.get("console_size"):
        rows, cols = spec["console_size"]
        process["consoleSize"] = {"height": int(rows), "width": int(cols)}
    if spec.get("oom_score_adj") is not None:
        process["oomScoreAdj"] = int(spec["oom_score_adj"])
    kinds = {"mnt": "mount", "net": "network"}
    namespaces = []
    for ns in spec.get("namespaces") or []:
        n = {"type": kinds.get(ns["type"], ns["type"])}
        if ns.get("path"):
            n["path"] = ns["path"]
        namespaces.append(n)
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": list(spec.get("masked_paths") or []),
        "readonlyPaths": list(spec.get("readonly_paths") or []),
        "sysctl": dict(spec.get("sysctl") or {}),
    }
    if spec.get("devices"):  # runc makes them (mknod, or a bind in a user namespace)
        linux["devices"] = [{"path": d["path"], "type": d["type"], "major": d["major"],
                             "minor": d["minor"], "fileMode": d.get("file_mode", 0o666),
                             "uid": d.get("uid", 0), "gid": d.get("gid", 0)}
                            for d in spec["devices"]]
    if spec.get("uid_mappings"):  # --userns-remap: runc makes the namespace and writes them
        linux["uidMappings"] = spec["uid_mappings"]
        linux["gidMappings"] = spec["gid_mappings"]
    cg = spec.get("cgroup")
    if cg:
        linux["cgroupsPath"] = "/" + cg["path"].strip("/")
        linux["resources"] = _resources(cg.get("resources") or {})
    if spec.get("seccomp") == "default":
        linux["seccomp"] = seccomp_profile()
    elif isinstance(spec.get("seccomp"), dict):
        # A custom profile: spec.py already resolved it into OCI's shape.
        linux["seccomp"] = spec["seccomp"]
    config: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": os.path.abspath(spec["rootfs"]),
                 "readonly": bool(spec.get("readonly_rootfs"))},
        "hostname": spec.get("hostname") or "",
        "mounts": [_oci_mount(m, spec) for m in spec.get("mounts") or []],
        "linux": linux,
    }
    if spec.get("init"):
        if init_binary is None:
            init_binary = _core.shim_path()
        if not os.access(init_binary, os.X_OK):
            raise DockyardError(f"--init: the init binary {init_binary} is missing")
        # Before a mount on /sbin (or on the init's own path), as in Docker:
        # such a mount hides the init (runc then says it can't find it)
        # instead of runc making the mountpoint in a host directory.
        mounts = config["mounts"]
        at = next((i for i, m in enumerate(mounts) if os.path.normpath(m["destination"])
                   in ("/sbin", INIT_PATH)), len(mounts))
        mounts.insert(at, {"destination": INIT_PATH, "type": "bind", "source": init_binary,
                           "options": ["bind", "ro"]})
    if spec.get("domainname"):
        config["domainname"] = spec["domainname"]
    return config


def write_bundle(state_dir: Path, spec_json: str) -> Path:
    """Write `<state_dir>/bundle/config.json` for the native spec; returns the bundle dir."""
    bundle = Path(state_dir) / "bundle"
    bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = bundle / ".config.json.tmp"
    tmp.write_text(json.dumps(from_native(json.loads(spec_json)), indent=1))
    tmp.rename(bundle / "config.json")
    return bundle


def spawn_shim(id: str, state_dir: str | Path, spec_json: str, log_path: str | None = None,
               tty: bool = False, open_stdin: bool = False, log_max_size: int = 0,
               log_max_file: int = 1, wait_start: bool = False, *,
               runc_root: str | Path, log_driver: str | None = None,
               log_opts: list[str] | None = None) -> dict[str, Any]:
    """`_core.spawn_shim` for the runc driver: writes the bundle, starts
    `dockyard-shim run --runtime runc` and returns its report (the same dict);
    a start failure raises `_core.ContainerStartError` with Docker's exit code."""
    runc = require_runc()
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    bundle = write_bundle(state_dir, spec_json)
    spec_file = state_dir / "spec.json"
    spec_file.write_text(spec_json)
    Path(runc_root).mkdir(parents=True, exist_ok=True, mode=0o700)
    cmd = [_core.shim_path(), "run", "--id", id, "--state-dir", str(state_dir),
           "--spec", str(spec_file), "--log-max-size", str(log_max_size),
           "--log-max-file", str(log_max_file), "--runtime", "runc", "--bundle", str(bundle),
           "--runc-root", str(runc_root), "--runc", runc]
    if log_path:
        cmd += ["--log", str(log_path)]
    if log_driver:
        cmd += ["--log-driver", log_driver]
    for o in log_opts or []:
        cmd += ["--log-opt", o]
    for flag, on in (("--tty", tty), ("--stdin", open_stdin), ("--wait-start", wait_start)):
        if on:
            cmd.append(flag)
    out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    lines = out.stdout.decode(errors="replace").strip().splitlines()
    try:
        rep = json.loads(lines[-1])
    except (IndexError, ValueError):
        rep = {"error": "dockyard-shim failed: " + (out.stdout + out.stderr).decode(
            errors="replace").strip(), "exit_code": 128}
    if rep.get("error"):
        err = _core.ContainerStartError(rep["error"])
        err.exit_code = int(rep.get("exit_code", 128))
        raise err
    return {"shim_pid": int(rep.get("shim_pid", 0)), "pid": int(rep.get("pid", 0)),
            "created": bool(rep.get("created")),
            "attach_socket": str(state_dir / "attach.sock"),
            "exit_file": str(state_dir / "exit.json")}


def delete(runc_root: Path, id: str) -> None:
    """`runc delete --force` if runc still has state for `id` (a backstop: the
    shim deletes the container when it exits)."""
    if not (Path(runc_root) / id).exists():
        return
    runc = runc_path()
    if runc is None:
        return
    subprocess.run([runc, "--root", str(runc_root), "delete", "--force", id],
                   stdin=subprocess.DEVNULL, capture_output=True)
