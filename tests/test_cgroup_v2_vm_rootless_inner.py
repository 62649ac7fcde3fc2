"""Rootless Dockyard on a pure cgroup v2 host with a cgroup delegated to
the user, as systemd's Delegate=yes makes one: the launcher moves into the
cgroup's `daemon` leaf and enables the delegated controllers for the
containers' cgroups, its siblings; limits are written there and enforced,
pause, stats and update use them, and a limit whose controller is not
delegated is refused, naming it.

Runs only inside the VM that tests/test_cgroup_v2_vm.py boots (with
tests/test_cgroup_v2_vm_inner.py, whose helpers it uses); skipped elsewhere.
The user's daemon is driven through its API as root: each CLI call would be a
Python start, slow under TCG."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("DOCKYARD_VM_INNER") != "1":
    pytest.skip("runs inside the pure cgroup v2 VM (tests/test_cgroup_v2_vm.py)",
                allow_module_level=True)

from test_cgroup_v2_vm_inner import (  # noqa: E402
    CG, MiB, cgroup_of, exec_out, inspect, kv, logs, rd, run_d, until, wait_exit)
from conftest import busybox_rootfs, make_tar  # noqa: E402
from test_rootless import RootlessUser, _kill_users_processes  # noqa: E402
# --- rootless, in a cgroup delegated to the user ---------------------------------------

RL_SLICE = CG / "rlslice"       # plays user@UID.service's parent: memory, pids and cpu on
RL_USER = "dockyard-vm-rless"


class _Rootless:
    """What the inner module's helpers take as a daemon (.client()): the
    user's daemon's socket, used as root."""

    def __init__(self, host: str) -> None:
        self.host = host

    def client(self):
        from dockyard.cli.client import Client

        return Client(self.host)


@pytest.fixture
def rootless_delegated():
    """A user, a cgroup delegated to it as systemd's Delegate=yes does (the
    directory and its cgroup.procs, cgroup.subtree_control and cgroup.threads
    chowned to it; memory, pids and cpu enabled above it, not cpuset or io),
    and its rootless daemon started in that cgroup."""
    subprocess.run(["userdel", RL_USER], capture_output=True)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    RL_USER], check=True, capture_output=True)
    pw = pwd.getpwnam(RL_USER)
    d = RL_SLICE / "user"
    base = Path("/vmscratch") / "rless"
    u = None
    try:
        RL_SLICE.mkdir()
        (RL_SLICE / "cgroup.subtree_control").write_text("+memory +pids +cpu")
        d.mkdir()
        for p in (d, d / "cgroup.procs", d / "cgroup.subtree_control", d / "cgroup.threads"):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        base.mkdir(mode=0o755)
        # single-ID map: newuidmap's setuid bit may not survive the 9p share
        u = RootlessUser(pw, base, "u", {"DOCKYARD_ROOTLESS_SINGLE_ID": "1"})
        tar = make_tar(busybox_rootfs(base / "bb-rootfs"), base / "bb.tar")
        tar.chmod(0o644)
        # Started as systemd would, in the delegated cgroup; watched through the
        # API (each CLI call is a Python start, slow under TCG).
        u.prelude = f"echo $$ > {d}/cgroup.procs && "
        with open(u.log, "ab") as out:
            # no bridge, as the root daemons here: the guest kernel has no nf_tables
            u.proc = subprocess.Popen(u.argv(sys.executable, "-m", "dockyard", "daemon",
                                             "--storage-driver", "vfs", "--bridge", "none",
                                             "--iptables=false"),
                                      env=u.env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True, cwd="/")
        rl = _Rootless(f"unix://{u.sock}")
        until(lambda: u.proc.poll() is not None or (u.sock.exists() and rl.client().ping()),
              timeout=120, what="the rootless daemon")
        assert u.proc.poll() is None, u.log.read_text()
        r = rl.client().request("POST", "/images/create",
                                {"fromSrc": "-", "repo": "busybox", "tag": "latest"},
                                tar.read_bytes(), {"Content-Type": "application/x-tar"})
        assert b"error" not in r.read()
        r.close()
        yield u, d, rl
    finally:
        if u is not None:
            u.stop()
        _kill_users_processes(pw.pw_uid)
        for p in sorted(RL_SLICE.rglob("*"), key=lambda p: -len(p.parts)) \
                if RL_SLICE.exists() else []:
            if p.is_dir():
                p.rmdir()
        if RL_SLICE.exists():
            RL_SLICE.rmdir()
        subprocess.run(["userdel", RL_USER], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_rootless_limits_in_a_delegated_cgroup(rootless_delegated):
    u, d, rl = rootless_delegated
    pid = u.daemon_pid()
    # the daemon in the `daemon` leaf, the controllers on for its siblings
    assert cgroup_of(pid) == d / "daemon"
    assert rd(d, "cgroup.subtree_control").split() == ["cpu", "memory", "pids"]
    c = rl.client()
    info = c.get_json("/info")
    assert (info["CgroupDriver"], info["CgroupVersion"]) == ("cgroupfs", "2")
    assert info["MemoryLimit"] and info["PidsLimit"] and info["CpuCfsQuota"]
    assert info["CPUSet"] is False
    assert "WARNING: No cpuset support" in info["Warnings"]
    assert "name=rootless" in info["SecurityOptions"]
    # limits written into the container's cgroup beneath the delegated one, enforced
    cid = run_d(rl, "busybox", ["sh", "-c",
                                "(n=0; while [ $n -lt 100 ]; do sleep 1000 & n=$((n+1)); done) "
                                "2>/dev/null; echo started; exec sleep 1000"],
                Memory=64 * MiB, NanoCpus=500_000_000, PidsLimit=16, NetworkMode="none")
    cg = cgroup_of(inspect(rl, cid)["State"]["Pid"])
    assert cg == d / cid
    until(lambda: "started" in logs(rl, cid), what="the fork loop")
    assert (rd(cg, "memory.max"), rd(cg, "cpu.max"), rd(cg, "pids.max")) == \
        (str(64 * MiB), "50000 100000", "16")
    assert kv(cg, "pids.events")["max"] > 0 and int(rd(cg, "pids.current")) <= 16
    code, out = exec_out(rl, cid, ["sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/pids.max"])
    assert (code, out.split()) == (0, ["0::/", "16"]), out
    # update, stats, pause
    assert c.post_json(f"/containers/{cid}/update", None, {"PidsLimit": 40}) == \
        {"Warnings": None}
    assert rd(cg, "pids.max") == "40"
    s = c.get_json(f"/containers/{cid}/stats", {"stream": 0, "one-shot": 1})
    assert s["memory_stats"]["limit"] == 64 * MiB and s["pids_stats"]["limit"] == 40
    c.post_json(f"/containers/{cid}/pause")
    assert kv(cg, "cgroup.events")["frozen"] == 1
    c.post_json(f"/containers/{cid}/unpause")
    assert kv(cg, "cgroup.events")["frozen"] == 0
    # cpuset is not delegated: refused, naming it
    r = c.request("POST", "/containers/create", None,
                  json.dumps({"Image": "busybox", "Cmd": ["true"],
                              "HostConfig": {"CpusetCpus": "0"}}).encode(),
                  {"Content-Type": "application/json"}, check=False)
    body = r.read().decode()
    r.close()
    assert r.status == 400, body
    assert json.loads(body)["message"] == (
        f"rootless: --cpuset-cpus needs the cpuset controller, which is not delegated to uid "
        f"{u.pw.pw_uid} (cgroup /rlslice/user has: cpu memory pids); see `dockyard rootless "
        "check`")
    # a memory hog is OOM-killed in its cgroup
    hog = run_d(rl, "busybox", ["tail", "/dev/zero"], Memory=24 * MiB, MemorySwap=24 * MiB,
                NetworkMode="none")
    st = wait_exit(rl, hog)
    assert (st["OOMKilled"], st["ExitCode"]) == (True, 137), st
    for x in (cid, hog):
        c.request("DELETE", f"/containers/{x}", {"force": 1}).close()
    assert sorted(p.name for p in d.iterdir() if p.is_dir()) == ["daemon"]
