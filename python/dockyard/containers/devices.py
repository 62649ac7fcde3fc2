"""Host devices in containers, as dockerd 20.10 gives them: HostConfig.Devices
(`--device`), DeviceCgroupRules (`--device-cgroup-rule`) and `--privileged`
turned into the runtime spec's device nodes and its device cgroup rules
(v1 `devices.allow` lines, or the eBPF program on cgroup v2)."""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from .process import StartError

#: Docker's default rules (moby's default spec; the runtime's
#: DEFAULT_DEVICE_RULES): mknod of anything, then the standard character devices.
DEFAULT_RULES = [
    ("c", None, None, "m"), ("b", None, None, "m"), ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"),
    ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 9, "rwm"), ("c", 5, 0, "rwm"),
    ("c", 5, 1, "rwm"), ("c", 5, 2, "rwm"), ("c", 136, None, "rwm"), ("c", 10, 200, "rwm"),
]

_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")

#: What `--privileged` leaves out of the host's /dev (runc's HostDevices).
_SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def _failed(msg: str) -> StartError:
    # dockerd fails the start (500), not the create, and `docker run` exits 125
    err = StartError(msg, 125)
    err.status = 500
    return err


def rule(allow: bool, kind: str | None, major: int | None, minor: int | None,
         access: str) -> dict[str, Any]:
    """One OCI LinuxDeviceCgroup entry (None: any)."""
    r: dict[str, Any] = {"allow": allow, "access": access}
    if kind and kind != "a":
        r["type"] = kind
    if major is not None:
        r["major"] = major
    if minor is not None:
        r["minor"] = minor
    return r


def default_rules() -> list[dict[str, Any]]:
    return [rule(False, None, None, None, "rwm")] + [rule(True, *r) for r in DEFAULT_RULES]


def device_from_path(path: str) -> dict[str, Any] | None:
    """The node at `path` (not followed) as a spec device, None if it is not one."""
    st = os.lstat(path)
    if stat.S_ISBLK(st.st_mode):
        kind = "b"
    elif stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISFIFO(st.st_mode):
        kind = "p"
    else:
        return None
    return {"path": path, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "file_mode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid, "host_path": path}


def _node_rule(d: dict[str, Any], access: str) -> list[dict[str, Any]]:
    # A fifo is no business of the device cgroup
    return [] if d["type"] == "p" else [rule(True, d["type"], d["major"], d["minor"], access)]


def from_mapping(m: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One HostConfig.Devices entry: the node (or every node beneath a
    directory, recursively) and its cgroup rules."""
    host = str(m.get("PathOnHost") or "")
    inside = str(m.get("PathInContainer") or "") or host
    access = str(m.get("CgroupPermissions") or "") or "rwm"
    if set(access) - set("rwm") or len(access) > 3:
        raise _failed(f"invalid device mode: {access}")
    resolved = os.path.realpath(host) if os.path.islink(host) else host
    try:
        d = device_from_path(resolved)
    except OSError as e:
        raise _failed(f"error gathering device information while adding custom device "
                      f'"{host}": {os.strerror(e.errno or 2).lower()}') from None
    if d is not None:
        d.update(path=inside)
        return [d], _node_rule(d, access)
    devs: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    if os.path.isdir(resolved):
        for top, dirs, files in os.walk(resolved):
            dirs.sort()
            for name in sorted(files):
                p = os.path.join(top, name)
                try:
                    child = device_from_path(p)
                except OSError:
                    continue
                if child is not None:
                    child["path"] = p.replace(resolved, inside, 1)
                    devs.append(child)
                    rules.extend(_node_rule(child, access))
    if not devs:
        raise _failed(f"error gathering device information while adding custom device "
                      f'"{host}": not a device node')
    return devs, rules


def _check_openable(devs: list[dict[str, Any]], access: str) -> None:
    """Rootless: a node is bound from the host, so the user must be able to
    open it as asked; else the fixed refusal, before anything starts."""
    want = (os.R_OK if "r" in access else 0) | (os.W_OK if "w" in access else 0)
    how = {os.R_OK | os.W_OK: "read-write", os.R_OK: "for reading", os.W_OK: "for writing"}
    for d in devs:
        if want and not os.access(d["host_path"], want):
            raise StartError(f"rootless: device {d['host_path']}: this user cannot open it "
                             f"({how[want]}); give the user access to it (its group or mode), "
                             "as root", 125)


def host_devices() -> list[dict[str, Any]]:
    """Every device node in the host's /dev, for `--privileged`."""
    out = []
    for top, dirs, files in os.walk("/dev"):
        dirs[:] = sorted(x for x in dirs if not (top == "/dev" and x in _SKIP_DIRS))
        for name in sorted(files):
            if top == "/dev" and name == "console":
                continue
            try:
                d = device_from_path(os.path.join(top, name))
            except OSError:
                continue
            if d is not None and d["type"] != "p":
                out.append(d)
    return out


def parse_cgroup_rule(text: str) -> dict[str, Any]:
    """A `--device-cgroup-rule` ("c 10:229 rwm") as an allow rule."""
    m = _RULE.match(text)
    if not m:
        raise _failed(f"invalid device cgroup rule format: '{text}'")
    num = (lambda v: None if v == "*" else int(v))
    return rule(True, m[1], num(m[2]), num(m[3]), m[4])


def resolve(hc: dict[str, Any], in_user_ns: bool) -> tuple[list[dict[str, Any]],
                                                           list[dict[str, Any]]]:
    """The spec's device nodes and cgroup rules for a HostConfig. Privileged:
    the host's devices (none when the engine itself runs in a user namespace,
    as dockerd) and every device allowed; --device and rules are then ignored,
    as dockerd does."""
    if hc.get("Privileged"):
        return ([] if in_user_ns else host_devices()), [rule(True, None, None, None, "rwm")]
    devs: list[dict[str, Any]] = []
    rules = default_rules()
    for m in hc.get("Devices") or []:
        d, r = from_mapping(m)
        if in_user_ns:
            _check_openable(d, str(m.get("CgroupPermissions") or "rwm"))
        devs.extend(d)
        rules.extend(r)
    rules.extend(parse_cgroup_rule(str(x)) for x in hc.get("DeviceCgroupRules") or [])
    return devs, rules
