"""What running Dockyard as an ordinary user needs from this host, checked
one prerequisite at a time, each with what to do about it
(`dockyard rootless check`; shared/notes/rootless.md has the research).

Only user namespaces are required: without a subordinate ID range a single
ID is mapped, without slirp4netns (or a usable /dev/net/tun) containers'
networks reach nothing beyond the host, without overlay's `userxattr` layers are copies (vfs), and
without a delegated cgroup v2 resource limits are refused. Each of those is
a warning that says what it costs.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass

from .idmap import SUBGID, SUBUID, RemapError, parse_subid

__all__ = ["Check", "check_host", "SUBID_MIN", "UserPaths", "user_paths", "rootless_uid",
           "in_userns", "limits_refusal", "enter", "UID_ENV", "info_warnings",
           "usernet_problem", "holder_pid", "NETNS_FILE", "delegate", "delegation",
           "cgroup_base", "discard_limits", "set_limits_mode", "info_cgroups"]

#: Docker asks for at least this many subordinate IDs (a 16-bit ID space).
SUBID_MIN = 65536
#: The first pasta release without the stalls the research hit (tap path to
#: the host) and that rootlesskit recommends.
PASTA_MIN = "2023_12_04"


@dataclass
class Check:
    name: str
    status: str          # "ok", "warn" (works, with less) or "fail" (rootless can't run)
    detail: str
    fix: str = ""


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _userns() -> Check:
    name = "user namespaces"
    for path, bad, fix in (
            ("/proc/sys/kernel/unprivileged_userns_clone", "0",
             "sysctl -w kernel.unprivileged_userns_clone=1"),
            ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
             "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
            ("/proc/sys/user/max_user_namespaces", "0",
             "sysctl -w user.max_user_namespaces=15000")):
        if _read(path) == bad:
            return Check(name, "fail", f"{path.removeprefix('/proc/sys/')} is {bad}",
                         f"{fix} (as root; a file in /etc/sysctl.d keeps it)")
    unshare = shutil.which("unshare")
    if unshare is None:
        return Check(name, "ok", "allowed by the kernel's settings (not probed: no unshare)")
    r = subprocess.run([unshare, "--user", "true"], capture_output=True, text=True)
    if r.returncode != 0:
        return Check(name, "fail", f"unshare --user: {r.stderr.strip() or r.returncode}",
                     "check the kernel's user namespace settings and any seccomp or AppArmor "
                     "policy this session runs under")
    limit = _read("/proc/sys/user/max_user_namespaces") or "?"
    return Check(name, "ok", f"a user namespace can be made (max_user_namespaces={limit})")


def _subids(user: str, uid: int) -> Check:
    name = "subordinate IDs"
    counts = {}
    for path in (SUBUID, SUBGID):
        try:
            ranges = parse_subid(path, user) or parse_subid(path, str(uid))
        except (OSError, RemapError):
            ranges = []
        counts[path] = sum(n for _, n in ranges)
    fix = (f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user} (as root; "
           "then restart the rootless daemon)")
    short = [f"{p}: {n}" for p, n in counts.items() if n < SUBID_MIN]
    if not short:
        return Check(name, "ok", f"{counts[SUBUID]} uids and {counts[SUBGID]} gids "
                     f"for {user}")
    return Check(name, "warn", f"{', '.join(short)} for {user} (fewer than {SUBID_MIN}): only "
                 "your own ID is mapped, so images with files of other owners or a USER other "
                 "than root fail", fix)


def _helpers() -> Check:
    name = "newuidmap/newgidmap"
    missing, unprivileged = [], []
    for tool in ("newuidmap", "newgidmap"):
        path = shutil.which(tool)
        if path is None:
            missing.append(tool)
            continue
        st = os.stat(path)
        has_caps = False
        try:
            has_caps = bool(os.getxattr(path, "security.capability"))
        except OSError:
            pass
        if not (st.st_mode & stat.S_ISUID and st.st_uid == 0) and not has_caps:
            unprivileged.append(path)
    if missing:
        return Check(name, "warn", f"{' and '.join(missing)} not found: a subordinate range "
                     "cannot be mapped", "apt-get install uidmap (as root)")
    if unprivileged:
        return Check(name, "warn", f"{', '.join(unprivileged)} neither setuid root nor with file "
                     "capabilities: mapping a range fails with EPERM",
                     "reinstall the uidmap package (as root)")
    return Check(name, "ok", "setuid root")


def _device(path: str, needed_for: str, fix_hint: str) -> Check:
    if not os.path.exists(path):
        return Check(path, "warn", f"missing: {needed_for}", fix_hint)
    if not os.access(path, os.R_OK | os.W_OK):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        return Check(path, "warn", f"mode {mode:04o}, not usable by you: {needed_for}",
                     f"chmod 0666 {path} (as root; udev normally does)")
    return Check(path, "ok", "usable")


def _version_of(tool: str) -> str:
    try:
        r = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr) else ""


def _network() -> Check:
    """slirp4netns gives the rootless network namespace its way out; pasta is
    not used yet (Debian 12's has the stalls the research hit, see PASTA_MIN)."""
    name = "user-mode networking"
    slirp = shutil.which("slirp4netns")
    if slirp:
        return Check(name, "ok", f"slirp4netns ({_version_of(slirp) or 'version unknown'})")
    pasta = " (pasta is not used yet)" if shutil.which("pasta") else ""
    return Check(name, "warn", f"no slirp4netns{pasta}: containers reach each other and "
                 "published ports, but nothing beyond this host (or use --network host)",
                 "apt-get install slirp4netns (as root)")


def _overlay() -> Check:
    """Mount an overlay with `userxattr` in a user and mount namespace of
    its own, as the rootless daemon will."""
    name = "overlay (userxattr)"
    unshare = shutil.which("unshare")
    if unshare is None:
        return Check(name, "warn", "not probed (no unshare): layers may be full copies (vfs)")
    with tempfile.TemporaryDirectory(prefix="dockyard-probe-") as d:
        for sub in ("l", "u", "w", "m"):
            os.mkdir(os.path.join(d, sub))
        opts = f"lowerdir={d}/l,upperdir={d}/u,workdir={d}/w,userxattr"
        r = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "mount", "-t",
                            "overlay", "overlay", "-o", opts, f"{d}/m"],
                           capture_output=True, text=True)
    if r.returncode != 0:
        return Check(name, "warn", f"mount failed ({r.stderr.strip() or r.returncode}): layers "
                     "are full copies (vfs), slower and bigger",
                     "a kernel of 5.11 or later mounts overlay in a user namespace")
    return Check(name, "ok", "mounts in a user namespace")


def _cgroups(uid: int) -> Check:
    name = "cgroup delegation"
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return Check(name, "warn", "cgroup v1 (or a hybrid host): resource limits (-m, --cpus, "
                     "--pids-limit) are refused", "boot with systemd.unified_cgroup_hierarchy=1")
    rel = ""
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        if line.startswith("0::"):
            rel = line[3:]
    if os.path.basename(rel) == DAEMON_LEAF and _ours(CGROUP_ROOT + os.path.dirname(rel), uid):
        rel = os.path.dirname(rel)  # a rootless daemon's launcher: its delegated cgroup
    own = CGROUP_ROOT + rel
    if rel in ("", "/") or not _ours(own, uid):
        return Check(name, "warn", f"your cgroup ({rel or '/'}) is not delegated to you: "
                     "resource limits are refused",
                     f"log in through systemd (user@{uid}.service delegates memory and pids; "
                     "a Delegate= drop-in adds cpu, cpuset, io)")
    ctrls = (_read(os.path.join(own, "cgroup.controllers")) or "").split()
    missing = [c for c in ("memory", "pids", "cpu", "io") if c not in ctrls]
    if missing:
        return Check(name, "warn", f"{rel} is yours, without {', '.join(missing)}: those limits "
                     "are refused", "add a Delegate= drop-in for user@.service (as root)")
    return Check(name, "ok", f"{rel}: {' '.join(ctrls)}")


def _runtime_dir(uid: int) -> Check:
    name = "XDG_RUNTIME_DIR"
    d = os.environ.get("XDG_RUNTIME_DIR")
    fallback = f"/tmp/dockyard-{uid}"
    if not d:
        return Check(name, "warn", f"not set: the socket and state go to {fallback}",
                     "log in through a PAM session (pam_systemd sets it) or export it")
    try:
        st = os.lstat(d)
    except OSError as e:
        return Check(name, "warn", f"{d}: {e.strerror}: {fallback} is used instead")
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or stat.S_IMODE(st.st_mode) & 0o077:
        return Check(name, "warn", f"{d} is not a 0700 directory of yours: {fallback} is used "
                     "instead")
    return Check(name, "ok", d)


def _ports() -> Check:
    start = _read("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if start is None:
        return Check("published ports", "ok", "any port")
    return Check("published ports", "ok" if start == "0" else "warn",
                 f"from {start} up" + ("" if start == "0" else
                                       f": -p below {start} is refused"),
                 "" if start == "0" else
                 "sysctl -w net.ipv4.ip_unprivileged_port_start=0 (as root), to publish low ports")


def _ping() -> Check:
    rng = _read("/proc/sys/net/ipv4/ping_group_range") or ""
    parts = rng.split()
    if len(parts) == 2 and int(parts[0]) <= int(parts[1]):
        return Check("ping", "ok", f"groups {parts[0]}-{parts[1]} may ping")
    return Check("ping", "warn", "ping_group_range is empty: ping fails in containers",
                 'sysctl -w net.ipv4.ping_group_range="0 2147483647" (as root)')


def check_host(uid: int | None = None) -> list[Check]:
    """Every prerequisite, for the user running this (their IDs, their
    access to devices and cgroups)."""
    uid = os.geteuid() if uid is None else uid
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return [_userns(), _subids(user, uid), _helpers(), _overlay(), _network(),
            _device("/dev/net/tun", "pasta and slirp4netns need it for outbound networking",
                    "modprobe tun (as root)"),
            _device("/dev/fuse", "fuse-overlayfs (the fallback before vfs) needs it",
                    "modprobe fuse (as root)"),
            _cgroups(uid), _runtime_dir(uid), _ports(), _ping()]


# --- the rootless daemon ---------------------------------------------------------------
#: The user's uid, set for the daemon run inside its user namespace (where
#: getuid() says 0): it names the user's paths and messages.
UID_ENV = "DOCKYARD_ROOTLESS_UID"
#: Non-ok checks of the host, made as the user before entering the namespace
#: (JSON), for `info`'s warnings.
CHECKS_ENV = "DOCKYARD_ROOTLESS_CHECKS"
#: The shim whose namespaces the daemon joined (its predecessor's containers run).
JOINED_ENV = "DOCKYARD_ROOTLESS_JOINED"
#: Set to 1: map only the user's ID even when a subordinate range exists.
SINGLE_ENV = "DOCKYARD_ROOTLESS_SINGLE_ID"


def in_userns() -> bool:
    """Whether this process is in a user namespace (runc's test: the uid map
    is not the identity of the whole range)."""
    return (_read("/proc/self/uid_map") or "").split() not in (["0", "0", "4294967295"], [])


def rootless_uid() -> int | None:
    """The ordinary user Dockyard runs for, or None when it runs as real root:
    the euid outside, or the uid the launcher recorded inside the namespace."""
    euid = os.geteuid()
    if euid != 0:
        return euid
    v = os.environ.get(UID_ENV, "")
    return int(v) if v.isdigit() and in_userns() else None


@dataclass
class UserPaths:
    runtime_dir: str     # $XDG_RUNTIME_DIR, or the /tmp fallback
    fallback: bool       # runtime_dir is the fallback (XDG_RUNTIME_DIR missing or unusable)
    host: str            # unix:// socket
    exec_root: str
    pidfile: str
    data_root: str
    config_file: str


def runtime_dir(uid: int) -> tuple[str, bool]:
    """`$XDG_RUNTIME_DIR` when it is a 0700 directory of ours, else
    `/tmp/dockyard-UID` (second value True). Ours: owned by the euid, which is
    0 inside the user namespace, where the user's files show as root's."""
    d = os.environ.get("XDG_RUNTIME_DIR", "")
    if d:
        try:
            st = os.lstat(d)
            if (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
                    and not stat.S_IMODE(st.st_mode) & 0o077):
                return d, False
        except OSError:
            pass
    return f"/tmp/dockyard-{uid}", True


def make_fallback_dir(path: str) -> None:
    """Create (or accept) the /tmp fallback: a real 0700 directory of ours;
    anything else there (a symlink, another user's) is refused."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid()
            or stat.S_IMODE(st.st_mode) & 0o077):
        raise OSError(f"{path} exists and is not a 0700 directory of yours: remove it, or set "
                      "XDG_RUNTIME_DIR")


def _home(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return "/"


def user_paths(uid: int) -> UserPaths:
    """The rootless daemon's paths (Docker rootless's layout)."""
    rt, fallback = runtime_dir(uid)
    home = os.environ.get("HOME") or _home(uid)
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    conf = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return UserPaths(runtime_dir=rt, fallback=fallback, host=f"unix://{rt}/dockyard.sock",
                     exec_root=os.path.join(rt, "dockyard"),
                     pidfile=os.path.join(rt, "dockyard.pid"),
                     data_root=os.path.join(data, "dockyard"),
                     config_file=os.path.join(conf, "dockyard", "daemon.json"))


def systemd_unit(python: str) -> str:
    """A `systemd --user` service running the rootless daemon with `python`.
    Type=notify: the daemon says READY=1 once its API answers; it does so from
    inside its user namespace, a child of the launcher, hence NotifyAccess=all."""
    return f"""[Unit]
Description=Dockyard container engine (rootless)
Documentation=https://docs.docker.com/engine/security/rootless/

[Service]
Type=notify
NotifyAccess=all
ExecStart={python} -m dockyard daemon
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
TimeoutStartSec=60
KillMode=mixed
Delegate=yes

[Install]
WantedBy=default.target
"""


def install_unit(uid: int, python: str) -> str:
    """Write the user's `dockyard.service` (replacing an older one); its path."""
    home = os.environ.get("HOME") or _home(uid)
    conf = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    unit_dir = os.path.join(conf, "systemd", "user")
    os.makedirs(unit_dir, exist_ok=True)
    path = os.path.join(unit_dir, "dockyard.service")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(systemd_unit(python))
    os.rename(tmp, path)
    return path


def subid_ranges(uid: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The user's first subordinate uid and gid ranges, when both exist."""
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    out = []
    for path in (SUBUID, SUBGID):
        try:
            ranges = parse_subid(path, user) or parse_subid(path, str(uid))
        except (OSError, RemapError):
            ranges = []
        if not ranges:
            return None
        out.append(max(ranges, key=lambda r: r[1]))
    return out[0], out[1]


def enter(argv: list[str], shim: str) -> str:
    """Exec `argv` (the daemon again) as root of a user and mount namespace
    of its own, through `dockyard-shim rootless-init`. Returns only with a
    reason it could not."""
    uid = os.geteuid()
    ranges = None if os.environ.get(SINGLE_ENV) == "1" else subid_ranges(uid)
    checks = [c.__dict__ for c in check_host(uid) if c.status != "ok"]
    helpers = all(shutil.which(t) for t in ("newuidmap", "newgidmap"))
    if ranges and not helpers:
        ranges = None
    cmd = [shim, "rootless-init"]
    holder = holder_pid(user_paths(uid).exec_root)
    env = dict(os.environ)
    env.pop(JOINED_ENV, None)
    if holder is not None:
        cmd += ["--join", str(holder)]
        env[JOINED_ENV] = str(holder)
    elif ranges:
        (us, un), (gs, gn) = ranges
        cmd += ["--uid-range", f"{us}:{un}", "--gid-range", f"{gs}:{gn}"]
    env[UID_ENV] = str(uid)
    env[CHECKS_ENV] = json.dumps(checks)
    # Placed before the fork: the launcher, the daemon and its shims all
    # live in the delegated cgroup's `daemon` leaf.
    env[CGROUP_ENV], env[CGROUP_WHY_ENV] = delegate(uid)
    try:
        os.execve(shim, cmd + ["--", *argv], env)
    except OSError as e:
        return f"rootless: cannot run {shim}: {e.strerror}"
    return "unreachable"


def checks_from_env() -> list[dict[str, str]]:
    try:
        v = json.loads(os.environ.get(CHECKS_ENV) or "[]")
    except ValueError:
        return []
    return v if isinstance(v, list) else []


def id_map() -> list[tuple[int, int, int]]:
    """This process's uid map: (inside, outside, count) rows."""
    rows = []
    for line in (_read("/proc/self/uid_map") or "").splitlines():
        f = line.split()
        if len(f) == 3 and all(x.isdigit() for x in f):
            rows.append((int(f[0]), int(f[1]), int(f[2])))
    return rows


def map_text() -> str:
    """This process's uid and gid maps, as the data root records them."""
    return "".join(f"{kind} {' '.join((_read(f'/proc/self/{kind}_map') or '').split())}\n"
                   for kind in ("uid", "gid"))


def check_recorded_map(data_root: str) -> str | None:
    """Record the ID maps in `data_root` on first use; afterwards, the refusal
    when they changed: the files there belong to the old map's IDs."""
    path = os.path.join(data_root, "rootless-idmap")
    now = map_text()
    try:
        with open(path) as f:
            was = f.read()
    except FileNotFoundError:
        os.makedirs(data_root, mode=0o700, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(now)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        return None
    if was == now:
        return None
    def show(t: str) -> str:
        return "; ".join(line.strip() for line in t.splitlines() if line.strip())
    return (f"failed to start daemon: rootless: the user namespace's ID maps changed since "
            f"{data_root} was made (then: {show(was)}; now: {show(now)}): its files belong to "
            "the old IDs. Restore the old ranges in /etc/subuid and /etc/subgid (and uidmap), "
            f"or move {data_root} away to start afresh")


def single_id_map() -> bool:
    return sum(n for _, _, n in id_map()) <= 1


def cgroup_v1() -> bool:
    return not os.path.exists("/sys/fs/cgroup/cgroup.controllers")


# --- resource limits: a delegated cgroup v2, or refused (or ignored) -----------------------
#: The cgroup the launcher found delegated and arranged (its path under
#: /sys/fs/cgroup: the daemon in its `daemon` child, controllers enabled for
#: the containers' siblings), for the daemon inside.
CGROUP_ENV = "DOCKYARD_ROOTLESS_CGROUP"
#: When none could be: what is missing, for refusals and `info`.
CGROUP_WHY_ENV = "DOCKYARD_ROOTLESS_CGROUP_WHY"
CGROUP_ROOT = "/sys/fs/cgroup"
#: The controllers containers can be limited with (v2 names).
CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")
#: The leaf the launcher and daemon move into: v2 lets no process live in a
#: cgroup whose controllers are enabled for its children.
DAEMON_LEAF = "daemon"


def own_cgroup() -> str:
    """This process's cgroup v2 path ("/a/b"), "" where there is none."""
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def _ours(path: str, uid: int) -> bool:
    """`path` is a cgroup delegated to `uid`: the directory and the files a
    delegate writes (as systemd's Delegate=yes chowns them) are the user's."""
    try:
        if os.stat(path).st_uid != uid:
            return False
        return all(os.stat(os.path.join(path, f)).st_uid == uid and
                   os.access(os.path.join(path, f), os.W_OK)
                   for f in ("cgroup.procs", "cgroup.subtree_control"))
    except OSError:
        return False


def delegate(uid: int) -> tuple[str, str]:
    """Launcher side, as the user, before entering the namespace: the cgroup
    delegated to `uid` this process runs in (or the parent of the `daemon`
    leaf a previous start moved it to), with this process moved into its
    `daemon` child and the delegated controllers enabled for the children.
    Returns (path, "") or ("", what is missing)."""
    if cgroup_v1():
        return "", "cgroup v1"
    rel = own_cgroup()
    base = rel
    if os.path.basename(rel) == DAEMON_LEAF and _ours(CGROUP_ROOT + os.path.dirname(rel), uid):
        base = os.path.dirname(rel)
    d = CGROUP_ROOT + base
    if base in ("", "/") or not _ours(d, uid):
        return "", f"cgroup v2, its cgroup {base or '/'} not delegated to uid {uid}"
    leaf = os.path.join(d, DAEMON_LEAF)
    try:
        os.makedirs(leaf, exist_ok=True)
        with open(os.path.join(leaf, "cgroup.procs"), "w") as f:
            f.write("0")
    except OSError as e:
        return "", f"cgroup v2, {base} delegated to uid {uid} but {e.strerror} moving into {leaf}"
    avail = (_read(os.path.join(d, "cgroup.controllers")) or "").split()
    for c in (c for c in CONTROLLERS if c in avail):
        try:
            with open(os.path.join(d, "cgroup.subtree_control"), "w") as f:
                f.write(f"+{c}")
        except OSError as e:
            others = (_read(os.path.join(d, "cgroup.procs")) or "").split()
            why = f"other processes in it ({' '.join(others[:5])})" if others else e.strerror
            return "", (f"cgroup v2, {base} delegated to uid {uid} but its {c} controller "
                        f"can't be enabled for containers: {why}")
    return base, ""


@dataclass(frozen=True)
class Delegation:
    path: str                    # the delegated cgroup ("" when none)
    controllers: frozenset[str]  # enabled for its children (the containers)
    missing: str                 # without a path: what is missing


def delegation() -> Delegation:
    """The rootless daemon's cgroup, as its launcher arranged it."""
    path = os.environ.get(CGROUP_ENV, "")
    if path and os.path.isdir(CGROUP_ROOT + path):
        ctrls = (_read(CGROUP_ROOT + path + "/cgroup.subtree_control") or "").split()
        return Delegation(path, frozenset(ctrls), "")
    why = os.environ.get(CGROUP_WHY_ENV) or ("cgroup v1" if cgroup_v1() else
                                             "cgroup v2, not delegated to the rootless daemon")
    return Delegation("", frozenset(), why)


def cgroup_base() -> str:
    """Where the rootless daemon's containers' cgroups go ("a/b", no leading
    slash); "" for a root daemon, or a rootless one without a delegated cgroup."""
    if rootless_uid() is None:
        return ""
    return delegation().path.strip("/")


#: "refuse" (Dockyard's default) or "warn" (`rootless-limits: warn`:
#: discarded with dockerd's warnings, as Docker rootless without cgroups).
_limits_mode = ["refuse"]


def set_limits_mode(mode: str) -> None:
    _limits_mode[0] = mode


def limits_mode() -> str:
    return _limits_mode[0]


#: HostConfig resource keys, the flag a user gave them with, and their controller.
LIMIT_FLAGS = (("Memory", "--memory", "memory"), ("MemorySwap", "--memory-swap", "memory"),
               ("MemoryReservation", "--memory-reservation", "memory"),
               ("KernelMemory", "--kernel-memory", "memory"),
               ("NanoCpus", "--cpus", "cpu"), ("CpuShares", "--cpu-shares", "cpu"),
               ("CpuQuota", "--cpu-quota", "cpu"), ("CpuPeriod", "--cpu-period", "cpu"),
               ("CpusetCpus", "--cpuset-cpus", "cpuset"),
               ("CpusetMems", "--cpuset-mems", "cpuset"),
               ("PidsLimit", "--pids-limit", "pids"), ("BlkioWeight", "--blkio-weight", "io"),
               ("BlkioWeightDevice", "--blkio-weight-device", "io"),
               ("BlkioDeviceReadBps", "--device-read-bps", "io"),
               ("BlkioDeviceWriteBps", "--device-write-bps", "io"),
               ("BlkioDeviceReadIOps", "--device-read-iops", "io"),
               ("BlkioDeviceWriteIOps", "--device-write-iops", "io"),
               ("CpuRealtimePeriod", "--cpu-rt-period", "cpu"),
               ("CpuRealtimeRuntime", "--cpu-rt-runtime", "cpu"))

#: dockerd's words when it discards a limit the host can't apply (its
#: verifyPlatformContainerResources).
DISCARDED = {
    "Memory": "Your kernel does not support memory limit capabilities or the cgroup is not "
              "mounted. Limitation discarded.",
    "MemoryReservation": "Your kernel does not support memory soft limit capabilities or the "
                         "cgroup is not mounted. Limitation discarded.",
    "KernelMemory": "Your kernel does not support kernel memory limit capabilities or the "
                    "cgroup is not mounted. Limitation discarded.",
    "PidsLimit": "Your kernel does not support PIDs limit capabilities or the cgroup is not "
                 "mounted. PIDs limit discarded.",
    "CpuShares": "Your kernel does not support CPU shares or the cgroup is not mounted. Shares "
                 "discarded.",
    "NanoCpus": "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
    "CpuQuota": "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
    "CpuPeriod": "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
    "CpusetCpus": "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset "
                  "discarded.",
    "CpusetMems": "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset "
                  "discarded.",
    "BlkioWeight": "Your kernel does not support Block I/O weight or the cgroup is not "
                   "mounted. Weight discarded.",
    "BlkioWeightDevice": "Your kernel does not support Block I/O weight_device or the cgroup "
                         "is not mounted. Weight-device discarded.",
    "BlkioDeviceReadBps": "Your kernel does not support BPS Block I/O read limit or the cgroup "
                          "is not mounted. Block I/O BPS read limit discarded.",
    "BlkioDeviceWriteBps": "Your kernel does not support BPS Block I/O write limit or the "
                           "cgroup is not mounted. Block I/O BPS write limit discarded.",
    "BlkioDeviceReadIOps": "Your kernel does not support IOPS Block read limit or the cgroup "
                           "is not mounted. Block I/O IOPS read limit discarded.",
    "BlkioDeviceWriteIOps": "Your kernel does not support IOPS Block write limit or the "
                            "cgroup is not mounted. Block I/O IOPS write limit discarded.",
}


def _unapplied(hc: dict) -> list[tuple[str, str, str]]:
    """The limits in `hc` the rootless daemon can't apply: (key, flag,
    controller), those whose controller is not delegated to it."""
    ctrls = delegation().controllers
    out = []
    for key, flag, ctl in LIMIT_FLAGS:
        v = hc.get(key)
        if not v or (key == "PidsLimit" and isinstance(v, int) and v <= 0) or \
                (key == "MemorySwap" and v == -1):
            continue
        # realtime scheduling needs a privilege no user namespace grants
        if ctl not in ctrls or key.startswith("CpuRealtime"):
            out.append((key, flag, ctl))
    return out


def limits_refusal(hc: dict, uid: int) -> str | None:
    """Why a rootless container can't have the resource limits in `hc`, or
    None when it can (or they are to be discarded: `rootless-limits: warn`)."""
    if limits_mode() == "warn":
        return None
    for key, flag, ctl in _unapplied(hc):
        if key.startswith("CpuRealtime"):
            return f"rootless: {flag} is not supported in rootless mode"
        d = delegation()
        if d.path:
            have = " ".join(sorted(d.controllers)) or "none"
            return (f"rootless: {flag} needs the {ctl} controller, which is not delegated to "
                    f"uid {uid} (cgroup {d.path} has: {have}); see `dockyard rootless check`")
        return (f"rootless: {flag} needs cgroup v2 with the {ctl} controller delegated to "
                f"uid {uid} (this host: {d.missing}); see `dockyard rootless check`")
    return None


def discard_limits(hc: dict) -> list[str]:
    """`rootless-limits: warn`: drop the limits in `hc` the daemon can't
    apply, each with dockerd's warning (once), as dockerd does where the
    cgroup is missing."""
    if rootless_uid() is None or limits_mode() != "warn":
        return []
    out: list[str] = []
    for key, _, _ in _unapplied(hc):
        if key == "MemorySwap":
            continue  # follows Memory, below
        hc[key] = (None if key == "PidsLimit" else "" if key.startswith("Cpuset") else
                   [] if key.startswith("Blkio") and key != "BlkioWeight" else 0)
        if key == "Memory":
            hc["MemorySwap"] = -1  # dockerd's: no memory limit, so no swap limit
        w = DISCARDED.get(key)
        if w and w not in out:
            out.append(w)
    return out


def info_cgroups(version: str) -> tuple[str, dict[str, bool], list[str]]:
    """`info` in rootless mode: the cgroup driver, which controllers limits
    work with, and Docker rootless's warnings (plus, without cgroups, what
    is missing and what limits then do)."""
    d = delegation()
    if not d.path:
        first = ("WARNING: Running in rootless-mode without cgroups. Systemd is required to "
                 "enable cgroups in rootless-mode." if version == "2" else
                 "WARNING: Running in rootless-mode without cgroups. To enable cgroups in "
                 "rootless-mode, you need to boot the system in cgroup v2 mode.")
        what = ("ignored, with a warning (rootless-limits: warn)" if limits_mode() == "warn"
                else "refused")
        return "none", dict.fromkeys(CONTROLLERS, False), [
            first, f"WARNING: rootless: resource limits (-m, --cpus, --pids-limit, ...) are "
            f"{what}: {d.missing}; see `dockyard rootless check`"]
    have = {c: c in d.controllers for c in CONTROLLERS}
    warnings = []
    for ctl, texts in (("memory", ("WARNING: No memory limit support",
                                   "WARNING: No swap limit support")),
                       ("cpu", ("WARNING: No cpu cfs quota support",
                                "WARNING: No cpu cfs period support",
                                "WARNING: No cpu shares support")),
                       ("cpuset", ("WARNING: No cpuset support",)),
                       ("io", ("WARNING: No io.weight support",
                               "WARNING: No io.weight (per device) support",
                               "WARNING: No io.max (rbps) support",
                               "WARNING: No io.max (wbps) support",
                               "WARNING: No io.max (riops) support",
                               "WARNING: No io.max (wiops) support"))):
        if not have[ctl]:
            warnings.extend(texts)
    return "cgroupfs", have, warnings


def info_warnings() -> list[str]:
    """`info`'s warnings in rootless mode besides the cgroups': each
    prerequisite the host lacks (checked as the user at start) with its fix."""
    out = []
    if single_id_map():
        out.append("WARNING: rootless: only the user's own ID is mapped (single-ID map): "
                   "files of other owners are squashed to root, a USER other than root or "
                   "supplementary groups fail")
    for c in checks_from_env():
        # cgroups: said above
        if not isinstance(c, dict) or c.get("name") == "cgroup delegation":
            continue
        fix = f" (fix: {c['fix']})" if c.get("fix") else ""
        out.append(f"WARNING: rootless: {c.get('name')}: {c.get('detail')}{fix}")
    return out


#: Where the rootless daemon's network namespace is pinned, under its exec root.
NETNS_FILE = "rootless-netns"


@functools.lru_cache(maxsize=1)
def usernet_problem() -> str | None:
    """Why this rootless daemon's networks have no way out (slirp4netns
    missing, /dev/net/tun not usable), or None when they have. Bridges, names
    and published ports work either way. Checked once per process."""
    if shutil.which("slirp4netns") is None:
        return "slirp4netns (not installed; apt-get install slirp4netns, as root)"
    try:
        os.close(os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        return (f"/dev/net/tun, which this user cannot open ({e.strerror}; chmod 0666 "
                "/dev/net/tun, as root, as udev does)")
    return None


def holder_pid(exec_root: str) -> int | None:
    """A shim the previous rootless daemon left running (a container outliving
    it): the daemon starting now joins its user and mount namespaces, where
    that container's namespace files and the rootless network namespace are.
    None when no container runs (the namespaces died with the daemon)."""
    try:
        own = os.readlink("/proc/self/ns/user")
        names = os.listdir(os.path.join(exec_root, "containers"))
    except OSError:
        return None
    for name in names:
        try:
            pid = int(_read(os.path.join(exec_root, "containers", name, "shim.pid")) or "")
            if os.stat(f"/proc/{pid}").st_uid != os.geteuid():
                continue
            if os.path.basename(os.readlink(f"/proc/{pid}/exe")) != "dockyard-shim":
                continue
            if os.readlink(f"/proc/{pid}/ns/user") != own:
                return pid
        except (OSError, ValueError):
            continue
    return None
