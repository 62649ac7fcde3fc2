"""The engine on a pure cgroup v2 host, end to end: real containers with
resource limits, pause, stats, exec and removal, checked against the cgroup2
files the kernel shows and enforces.

Runs only inside the VM that tests/test_cgroup_v2_vm.py boots (cgroup2 alone
at /sys/fs/cgroup, every controller enabled, DOCKYARD_VM_INNER=1); skipped
everywhere else. The daemon, the image and the helpers are the suite's usual
ones (conftest.py): a daemon on overlay (on a tmpfs) and an image made from
busybox-static. The API is used directly where the docker CLI isn't the thing
under test, as the VM runs under TCG on machines without nested KVM."""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

import pytest

if os.environ.get("DOCKYARD_VM_INNER") != "1":
    pytest.skip("runs inside the pure cgroup v2 VM (tests/test_cgroup_v2_vm.py)",
                allow_module_level=True)

CG = Path("/sys/fs/cgroup")
MiB = 1024 * 1024


pytestmark = pytest.mark.usefixtures("no_leftover_containers")  # conftest.py


# --- helpers ----------------------------------------------------------------------

def run_d(daemon, image: str, cmd: list[str], **hostconfig) -> str:
    """create + start through the API; returns the container id."""
    c = daemon.client()
    body = {"Image": image, "Cmd": cmd, "HostConfig": hostconfig}
    cid = c.post_json("/containers/create", None, body)["Id"]
    c.post_json(f"/containers/{cid}/start")
    return cid


def inspect(daemon, cid: str) -> dict:
    return daemon.client().get_json(f"/containers/{cid}/json")


def wait_exit(daemon, cid: str) -> dict:
    daemon.client().post_json(f"/containers/{cid}/wait")
    return inspect(daemon, cid)["State"]


def demux(data: bytes) -> tuple[bytes, bytes]:
    out, err = b"", b""
    while len(data) >= 8:
        kind, n = struct.unpack(">BxxxI", data[:8])
        chunk, data = data[8:8 + n], data[8 + n:]
        if kind == 2:
            err += chunk
        else:
            out += chunk
    return out, err


def logs(daemon, cid: str) -> str:
    r = daemon.client().request("GET", f"/containers/{cid}/logs", {"stdout": 1, "stderr": 1})
    try:
        out, err = demux(r.read())
    finally:
        r.close()
    return (out + err).decode(errors="replace")


def exec_out(daemon, cid: str, cmd: list[str]) -> tuple[int, str]:
    c = daemon.client()
    eid = c.post_json(f"/containers/{cid}/exec", None,
                      {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True})["Id"]
    h = c.hijack("POST", f"/exec/{eid}/start", None, json.dumps({"Detach": False}).encode())
    data = b""
    try:
        while chunk := h.read():
            data += chunk
    finally:
        h.close()
    out, err = demux(data)
    code = c.get_json(f"/exec/{eid}/json")["ExitCode"]
    return code, (out + err).decode(errors="replace")


def cgroup_of(pid: int) -> Path:
    """The cgroup2 directory of `pid`, from /proc/<pid>/cgroup ("0::/path")."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("0::/"), lines  # v2 only
    return CG / lines[0][4:].lstrip("/")


def container_cgroup(daemon, cid: str) -> Path:
    st = inspect(daemon, cid)["State"]
    assert st["Running"], st
    d = cgroup_of(st["Pid"])
    assert d.name == cid, d
    return d


def rd(d: Path, f: str) -> str:
    return (d / f).read_text().strip()


def kv(d: Path, f: str) -> dict[str, int]:
    return {k: int(v) for k, v in (ln.split() for ln in rd(d, f).splitlines())}


def until(pred, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def docker_cpu_weight(shares: int) -> int:
    """runc's (and so Docker's) cpu.shares -> cpu.weight mapping: [2, 262144] onto
    [1, 10000] linearly."""
    return 1 + ((shares - 2) * 9999) // 262142


# --- the host really is pure v2 -----------------------------------------------------

def test_host_is_pure_cgroup_v2(daemon):
    mounts = [ln.split(" - ")[1].split()[0] for ln in
              Path("/proc/self/mountinfo").read_text().splitlines()]
    assert "cgroup" not in mounts and mounts.count("cgroup2") == 1
    ctrls = set(rd(CG, "cgroup.subtree_control").split())
    assert {"cpu", "cpuset", "memory", "pids", "io"} <= ctrls
    info = daemon.client().get_json("/info")
    assert info["CgroupVersion"] == "2"
    assert info["CgroupDriver"] == "cgroupfs"
    assert info["MemoryLimit"] and info["SwapLimit"] and info["PidsLimit"]
    assert info["CpuCfsQuota"] and info["CPUShares"] and info["CPUSet"]


# --- resources: written, and enforced -----------------------------------------------

def test_resource_flags_from_the_docker_cli(daemon, bb):
    """The docker CLI's flags end up in the v2 files, and the container sees
    its own cgroup as the root of a cgroup2 mount (cgroup namespace)."""
    cpus = "1" if os.cpu_count() and os.cpu_count() > 1 else "0"
    cid = daemon.docker(
        "run", "-d", "--memory", "64m", "--memory-swap", "96m", "--memory-reservation", "32m",
        "--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", cpus, "--cpuset-mems", "0",
        "--pids-limit", "50", bb, "sleep", "1000").stdout.decode().strip()
    d = container_cgroup(daemon, cid)
    assert d.parent == CG / "dockyard"
    assert rd(d, "memory.max") == str(64 * MiB)
    assert rd(d, "memory.swap.max") == str(32 * MiB)    # swap alone: 96m - 64m
    assert rd(d, "memory.low") == str(32 * MiB)
    assert rd(d, "cpu.max") == "50000 100000"
    assert rd(d, "cpu.weight") == str(docker_cpu_weight(512)) == "20"
    assert rd(d, "cpuset.cpus") == cpus
    assert rd(d, "cpuset.cpus.effective") == cpus
    assert rd(d, "cpuset.mems") == "0"
    assert rd(d, "pids.max") == "50"
    hc = inspect(daemon, cid)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"]) \
        == (64 * MiB, 96 * MiB, 500_000_000, 512, 50)

    code, out = exec_out(daemon, cid, ["sh", "-c", (
        "cat /proc/self/cgroup; grep ' /sys/fs/cgroup ' /proc/self/mountinfo; "
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max; "
        "grep Cpus_allowed_list /proc/self/status")])
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "0::/", out            # exactly the container's cgroup, seen as /
    mnt = lines[1].split()
    assert mnt[3] == "/" and mnt[4] == "/sys/fs/cgroup", out     # its own cgroup is the root
    assert lines[1].split(" - ")[1].split()[0] == "cgroup2", out
    assert "ro" in mnt[5].split(","), out      # read-only, as Docker mounts it unprivileged
    assert lines[2:5] == [str(64 * MiB), "50", "50000 100000"], out
    assert lines[5].split() == ["Cpus_allowed_list:", cpus], out


def test_cpu_shares_to_weight(daemon, bb):
    """Docker's shares->weight mapping at the ends of the range and the default."""
    for shares in (2, 1024, 262144):
        cid = run_d(daemon, bb, ["sleep", "1000"], CpuShares=shares)
        assert rd(container_cgroup(daemon, cid), "cpu.weight") == str(docker_cpu_weight(shares))
    cid = run_d(daemon, bb, ["sleep", "1000"])
    d = container_cgroup(daemon, cid)
    assert (rd(d, "cpu.weight"), rd(d, "cpu.max"), rd(d, "memory.max"), rd(d, "pids.max")) == \
        ("100", "max 100000", "max", "max")
    assert docker_cpu_weight(2) == 1 and docker_cpu_weight(262144) == 10000
    cid = run_d(daemon, bb, ["sleep", "1000"], CpuQuota=30000, CpuPeriod=60000)
    assert rd(container_cgroup(daemon, cid), "cpu.max") == "30000 60000"


def test_memory_swap_unlimited(daemon, bb):
    cid = run_d(daemon, bb, ["sleep", "1000"], Memory=32 * MiB, MemorySwap=-1)
    d = container_cgroup(daemon, cid)
    assert (rd(d, "memory.max"), rd(d, "memory.swap.max")) == (str(32 * MiB), "max")


def test_memory_swap_defaults_to_twice_memory(daemon, bb):
    cid = run_d(daemon, bb, ["sleep", "1000"], Memory=32 * MiB)
    d = container_cgroup(daemon, cid)
    assert rd(d, "memory.swap.max") == str(32 * MiB)


def test_memory_swap_max_is_enforced(daemon, bb):
    """48 MB held by a process under a 24 MB memory limit: fine with swap to
    spare (the VM swaps to zram), OOM-killed when --memory-swap equals --memory."""
    assert "/dev/zram0" in Path("/proc/swaps").read_text()
    hog = ["sh", "-c", "head -c 48000000 /dev/zero | tail -c 48000000 | wc -c"]
    cid = run_d(daemon, bb, hog, Memory=24 * MiB, MemorySwap=96 * MiB)
    st = wait_exit(daemon, cid)
    assert (st["ExitCode"], st["OOMKilled"]) == (0, False), (st, logs(daemon, cid))
    assert logs(daemon, cid).split() == ["48000000"]
    cid = run_d(daemon, bb, hog, Memory=24 * MiB, MemorySwap=24 * MiB)
    st = wait_exit(daemon, cid)
    assert st["OOMKilled"] is True, (st, logs(daemon, cid))
    assert "48000000" not in logs(daemon, cid)


def test_cgroup_parent(daemon, bb):
    cid = run_d(daemon, bb, ["sleep", "1000"], CgroupParent="/mine")
    assert container_cgroup(daemon, cid).parent == CG / "mine"


def test_cgroupns_host(daemon, bb):
    cid = run_d(daemon, bb, ["sleep", "1000"], CgroupnsMode="host")
    code, out = exec_out(daemon, cid, ["cat", "/proc/self/cgroup"])
    assert out.strip() == f"0::/dockyard/{cid}", out


def test_pids_limit_stops_a_fork_bomb(daemon, bb):
    # A subshell forks 100 sleeps; ash gives up at the first refused fork, and
    # the subshell's exit frees one slot for the echo's shell to go on.
    cid = run_d(daemon, bb, ["sh", "-c",
                             "(n=0; while [ $n -lt 100 ]; do sleep 1000 & n=$((n+1)); done) "
                             "2>/dev/null; echo started; exec sleep 1000"], PidsLimit=16)
    d = container_cgroup(daemon, cid)
    until(lambda: "started" in logs(daemon, cid), what="the fork loop")
    assert rd(d, "pids.max") == "16"
    assert kv(d, "pids.events")["max"] > 0    # forks were refused
    procs = rd(d, "cgroup.procs").split()
    assert 12 <= len(procs) <= 16 and int(rd(d, "pids.current")) <= 16, procs
    daemon.client().post_json(f"/containers/{cid}/kill")
    assert wait_exit(daemon, cid)["ExitCode"] == 137


def test_memory_hog_is_oom_killed(daemon, bb):
    # `tail /dev/zero` keeps all it reads: no newline ever comes.
    cid = run_d(daemon, bb, ["sh", "-c", "tail /dev/zero; echo survived"],
                Memory=24 * MiB, MemorySwap=24 * MiB)
    st = wait_exit(daemon, cid)
    # The kernel kills the hog (the biggest task), sh goes on: still OOMKilled,
    # as Docker reports any OOM kill in the container's cgroup.
    assert st["OOMKilled"] is True, st
    assert st["ExitCode"] in (0, 137), st
    assert st["ExitCode"] == 137 or "survived" in logs(daemon, cid)
    # the hog as pid 1: killed by SIGKILL
    cid = run_d(daemon, bb, ["tail", "/dev/zero"], Memory=24 * MiB, MemorySwap=24 * MiB)
    st = wait_exit(daemon, cid)
    assert (st["OOMKilled"], st["ExitCode"]) == (True, 137), st


def test_cpu_quota_throttles(daemon, bb):
    cid = run_d(daemon, bb, ["sh", "-c", "while :; do :; done"], NanoCpus=200_000_000)
    d = container_cgroup(daemon, cid)
    assert rd(d, "cpu.max") == "20000 100000"
    until(lambda: kv(d, "cpu.stat")["nr_throttled"] >= 3, what="throttling")
    s = kv(d, "cpu.stat")
    assert s["throttled_usec"] > 0 and s["nr_periods"] >= s["nr_throttled"]


# --- pause, stats, exec, rm -----------------------------------------------------------

def test_pause_unpause_freezes_the_cgroup(daemon, bb):
    cid = run_d(daemon, bb, ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; "
                             "sleep 0.05; done"])
    d = container_cgroup(daemon, cid)
    pid = inspect(daemon, cid)["State"]["Pid"]
    counter = Path(f"/proc/{pid}/root/tmp/n")
    until(counter.exists, what="the counter")
    c = daemon.client()
    c.post_json(f"/containers/{cid}/pause")
    assert rd(d, "cgroup.freeze") == "1"
    assert kv(d, "cgroup.events")["frozen"] == 1
    st = inspect(daemon, cid)["State"]
    assert (st["Paused"], st["Status"]) == (True, "paused")
    n = counter.read_text()
    time.sleep(0.5)
    assert counter.read_text() == n
    c.post_json(f"/containers/{cid}/unpause")
    assert rd(d, "cgroup.freeze") == "0"
    assert kv(d, "cgroup.events")["frozen"] == 0
    until(lambda: counter.read_text() != n, what="the counter to move again")
    assert inspect(daemon, cid)["State"]["Status"] == "running"
    # a paused container still stops
    c.post_json(f"/containers/{cid}/pause")
    c.post_json(f"/containers/{cid}/stop", {"t": 1})
    st = inspect(daemon, cid)["State"]
    assert (st["Running"], st["Paused"]) == (False, False)
    assert not d.exists()


def test_stats_read_the_v2_files(daemon, bb):
    cid = run_d(daemon, bb, ["sh", "-c", "x=$(head -c 4000000 /dev/zero | tr '\\0' a); "
                             "while :; do :; done"], Memory=64 * MiB, PidsLimit=40)
    d = container_cgroup(daemon, cid)
    until(lambda: int(rd(d, "memory.current")) > 4_000_000, what="memory use")
    c = daemon.client()
    s = c.get_json(f"/containers/{cid}/stats", {"stream": 0})
    assert s["id"] == cid and s["name"] == inspect(daemon, cid)["Name"]
    assert s["read"] > s["preread"] > "0001"          # stream=0: two samples a second apart
    cpu, pre = s["cpu_stats"], s["precpu_stats"]
    assert cpu["cpu_usage"]["total_usage"] > pre["cpu_usage"]["total_usage"] > 0
    assert cpu["cpu_usage"]["usage_in_usermode"] > 0
    assert cpu["system_cpu_usage"] > pre["system_cpu_usage"] > 0
    assert cpu["online_cpus"] == os.cpu_count()
    assert set(cpu["throttling_data"]) == {"periods", "throttled_periods", "throttled_time"}
    usec = kv(d, "cpu.stat")["usage_usec"]
    assert cpu["cpu_usage"]["total_usage"] <= usec * 1000
    mem = s["memory_stats"]
    assert mem["limit"] == 64 * MiB
    assert 4_000_000 < mem["usage"] <= 64 * MiB
    # cgroup v2: memory.stat's own keys, no v1-only fields
    assert {"anon", "file", "kernel_stack", "pgfault"} <= set(mem["stats"])
    assert "max_usage" not in mem and "failcnt" not in mem
    assert s["pids_stats"]["limit"] == 40 and s["pids_stats"]["current"] >= 1, s["pids_stats"]
    # the stream: one JSON object a line, each with the previous sample
    r = c.request("GET", f"/containers/{cid}/stats", {"stream": 1})
    try:
        first = json.loads(next(r.iter_lines()))
        second = json.loads(next(r.iter_lines()))
    finally:
        r.close()
    assert first["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert second["preread"] == first["read"]
    assert second["precpu_stats"] == first["cpu_stats"]
    assert second["memory_stats"]["limit"] == 64 * MiB
    # what the docker CLI makes of it (usage less inactive_file on v2)
    cli = json.loads(daemon.docker("stats", "--no-stream", "--format", "{{json .}}", cid).stdout)
    assert cli["ID"] == cid[:12] and cli["MemUsage"].endswith(" / 64MiB"), cli
    assert int(cli["PIDs"]) >= 1 and float(cli["CPUPerc"].rstrip("%")) > 0, cli


def test_exec_joins_the_container_cgroup(daemon, bb):
    cid = run_d(daemon, bb, ["sleep", "1000"], PidsLimit=30)
    d = container_cgroup(daemon, cid)
    pid = inspect(daemon, cid)["State"]["Pid"]
    code, out = exec_out(daemon, cid, ["sh", "-c", (
        "cat /proc/self/cgroup; cat /sys/fs/cgroup/cgroup.procs; "
        "cat /sys/fs/cgroup/pids.current")])
    assert code == 0, out
    lines = out.split()
    assert lines[0] == "0::/", out
    # pid 1 (the sleep), the exec's sh and its cat: all in the one cgroup
    assert "1" in lines[1:-1] and len(lines[1:-1]) == 3, out
    assert int(lines[-1]) >= 2, out   # sh execs its last command: pid 1 and that cat
    # seen from the host: an exec'd process sits in the container's cgroup
    c = daemon.client()
    eid = c.post_json(f"/containers/{cid}/exec", None, {"Cmd": ["sleep", "1000"]})["Id"]
    c.post_json(f"/exec/{eid}/start", None, {"Detach": True})
    epid = until(lambda: c.get_json(f"/exec/{eid}/json").get("Pid"), what="the exec's pid")
    assert cgroup_of(epid) == d
    assert os.readlink(f"/proc/{epid}/ns/cgroup") == os.readlink(f"/proc/{pid}/ns/cgroup")
    assert os.readlink(f"/proc/{pid}/ns/cgroup") != os.readlink("/proc/self/ns/cgroup")
    assert sorted(int(p) for p in rd(d, "cgroup.procs").split()) == sorted([pid, epid])


def test_restart_and_rm_leave_no_cgroup(daemon, bb):
    c = daemon.client()
    cid = run_d(daemon, bb, ["sleep", "1000"], Memory=48 * MiB, PidsLimit=20)
    d = container_cgroup(daemon, cid)
    c.post_json(f"/containers/{cid}/restart", {"t": 0})
    d2 = container_cgroup(daemon, cid)
    assert d2 == d and rd(d, "memory.max") == str(48 * MiB) and rd(d, "pids.max") == "20"
    assert cgroup_of(inspect(daemon, cid)["State"]["Pid"]) == d
    c.request("DELETE", f"/containers/{cid}", {"force": 1}).close()
    assert not d.exists()
    # a container that exits on its own, and an --rm one
    cid = run_d(daemon, bb, ["sh", "-c", "exit 3"])
    assert wait_exit(daemon, cid)["ExitCode"] == 3
    assert not (CG / "dockyard" / cid).exists()
    c.request("DELETE", f"/containers/{cid}").close()
    cid = run_d(daemon, bb, ["sleep", "1"], AutoRemove=True)
    r = c.request("POST", f"/containers/{cid}/wait", {"condition": "removed"}, check=False)
    r.read()
    r.close()
    assert r.status in (200, 404), r.status   # 404: gone before the wait got there
    r = c.request("GET", f"/containers/{cid}/json", check=False)
    r.close()
    assert r.status == 404
    assert not (CG / "dockyard" / cid).exists()
    left = [p.name for p in (CG / "dockyard").iterdir() if p.is_dir()] \
        if (CG / "dockyard").exists() else []
    assert left == [], left


# --- the runc driver (runc does the cgroup work itself) ------------------------------

def test_runc_driver_limits_exec_pause_oom_rm(daemon, bb):
    cpus = "1" if os.cpu_count() and os.cpu_count() > 1 else "0"
    c = daemon.client()
    cid = run_d(daemon, bb, ["sleep", "1000"], Runtime="runc", Memory=64 * MiB,
                NanoCpus=500_000_000, CpuShares=512, CpusetCpus=cpus, PidsLimit=50)
    d = container_cgroup(daemon, cid)
    assert d.parent == CG / "dockyard"
    assert (rd(d, "memory.max"), rd(d, "cpu.max"), rd(d, "cpuset.cpus"), rd(d, "pids.max")) == \
        (str(64 * MiB), "50000 100000", cpus, "50")
    assert rd(d, "cpu.weight") == str(docker_cpu_weight(512))   # runc 1.1's linear mapping
    code, out = exec_out(daemon, cid, ["sh", "-c", "cat /proc/self/cgroup; "
                                       "grep ' /sys/fs/cgroup ' /proc/self/mountinfo"])
    lines = out.splitlines()
    assert code == 0 and lines[0] == "0::/", out
    assert lines[1].split()[3] == "/" and " - cgroup2 " in lines[1], out
    c.post_json(f"/containers/{cid}/pause")
    assert kv(d, "cgroup.events")["frozen"] == 1
    c.post_json(f"/containers/{cid}/unpause")
    assert kv(d, "cgroup.events")["frozen"] == 0
    c.request("DELETE", f"/containers/{cid}", {"force": 1}).close()
    assert not d.exists()
    cid = run_d(daemon, bb, ["tail", "/dev/zero"], Runtime="runc", Memory=24 * MiB,
                MemorySwap=24 * MiB)
    st = wait_exit(daemon, cid)
    assert (st["OOMKilled"], st["ExitCode"]) == (True, 137), st
    assert not (CG / "dockyard" / cid).exists()


def test_runc_driver_memory_swap(daemon, bb):
    cid = run_d(daemon, bb, ["sleep", "1000"], Runtime="runc", Memory=64 * MiB,
                MemorySwap=96 * MiB)
    assert rd(container_cgroup(daemon, cid), "memory.swap.max") == str(32 * MiB)


def test_update_writes_the_v2_files(daemon, bb):
    """docker update on a running container: memory.max/swap.max/low, cpu.max,
    cpu.weight, pids.max and cpuset.cpus change live; a stopped one gets them
    at start."""
    cid = run_d(daemon, bb, ["sleep", "1000"], Memory=32 * MiB)
    c = daemon.client()
    out = c.post_json(f"/containers/{cid}/update", None, {
        "Memory": 64 * MiB, "MemorySwap": 96 * MiB, "MemoryReservation": 16 * MiB,
        "NanoCpus": 500_000_000, "CpuShares": 512, "PidsLimit": 30, "CpusetCpus": "0"})
    assert out == {"Warnings": None}
    d = container_cgroup(daemon, cid)
    assert (rd(d, "memory.max"), rd(d, "memory.swap.max"), rd(d, "memory.low")) == (
        str(64 * MiB), str(32 * MiB), str(16 * MiB))
    assert (rd(d, "cpu.max"), rd(d, "cpu.weight")) == ("50000 100000",
                                                       str(docker_cpu_weight(512)))
    assert (rd(d, "pids.max"), rd(d, "cpuset.cpus")) == ("30", "0")
    c.post_json(f"/containers/{cid}/update", None, {"PidsLimit": -1, "MemorySwap": -1})
    assert (rd(d, "pids.max"), rd(d, "memory.swap.max")) == ("max", "max")
    c.post_json(f"/containers/{cid}/stop", {"t": 0})
    c.post_json(f"/containers/{cid}/update", None, {"CpuShares": 2048})
    c.post_json(f"/containers/{cid}/start")
    d = container_cgroup(daemon, cid)
    assert (rd(d, "cpu.weight"), rd(d, "memory.max")) == (str(docker_cpu_weight(2048)),
                                                         str(64 * MiB))


# --- devices: no devices controller on v2, an eBPF program instead -----------------

def test_default_container_makes_device_nodes_but_cannot_open_them(daemon, bb):
    """The breakout on pure v2: CAP_MKNOD is a default, so the nodes are made
    (mknod of any node is allowed, as Docker does), and opening them is refused
    by the device program; the standard character devices still work, in a
    `docker exec` too (it joins the cgroup the program is attached to)."""
    script = ("mknod /tmp/disk b 8 0 && echo made-disk; mknod /tmp/mem c 1 1 && echo made-mem; "
              "(: < /tmp/disk) 2>&1; (: < /tmp/mem) 2>&1; (: > /tmp/mem) 2>&1; "
              "echo x > /dev/null && echo null-ok; head -c1 /dev/urandom | wc -c; "
              "head -c3 /dev/zero | wc -c; echo x > /dev/full || echo full-refused")
    out = daemon.docker("run", "--rm", bb, "sh", "-c", script).stdout.decode()
    lines = out.splitlines()
    assert lines[:2] == ["made-disk", "made-mem"], out
    assert len([x for x in lines if x.endswith("Operation not permitted")]) == 3, out
    assert lines[-4:] == ["null-ok", "1", "3", "full-refused"], out
    cid = run_d(daemon, bb, ["sleep", "1000"])
    code, out = exec_out(daemon, cid, ["sh", "-c", "mknod /tmp/m c 1 1 && (: < /tmp/m)"])
    assert code != 0 and "Operation not permitted" in out, out


def test_device_flags_on_v2(daemon, bb):
    out = daemon.docker("run", "--rm", "--device", "/dev/null:/dev/mynull", bb, "sh", "-c",
                        'stat -c "%t:%T" /dev/mynull; echo x > /dev/mynull && echo w-ok'
                        ).stdout.decode().splitlines()
    assert out == ["1:3", "w-ok"], out
    # 42 has no driver: past the device program, the open fails with ENXIO instead
    script = "mknod /tmp/x c 42 42 && (: < /tmp/x) 2>&1 | sed 's/.*: //'"
    out = daemon.docker("run", "--rm", "--device-cgroup-rule", "c 42:* r", bb, "sh", "-c",
                        script).stdout.decode().strip()
    assert out == "No such device or address", out
    out = daemon.docker("run", "--rm", bb, "sh", "-c", script).stdout.decode().strip()
    assert out == "Operation not permitted", out
    # the rule's access is kept: `r` does not let a write through
    out = daemon.docker("run", "--rm", "--device-cgroup-rule", "c 42:* r", bb, "sh", "-c",
                        script.replace("<", ">")).stdout.decode().strip()
    assert out == "Operation not permitted", out
    out = daemon.docker("run", "--rm", "--privileged", bb, "sh", "-c",
                        script).stdout.decode().strip()
    assert out == "No such device or address", out


def test_tty_works_under_the_device_program(daemon, bb):
    c = daemon.client()
    cid = c.post_json("/containers/create", None, {
        "Image": bb, "Tty": True,
        "Cmd": ["sh", "-c", "tty && echo hi > /dev/tty && echo tty-ok && ls /dev/pts/ptmx"]})["Id"]
    c.post_json(f"/containers/{cid}/start")
    assert wait_exit(daemon, cid)["ExitCode"] == 0
    r = c.request("GET", f"/containers/{cid}/logs", {"stdout": 1, "stderr": 1})
    try:
        out = r.read().decode(errors="replace")
    finally:
        r.close()
    assert "/dev/pts/0" in out and "tty-ok" in out, out
