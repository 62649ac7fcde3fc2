"""`docker update` (POST /containers/{id}/update) against Dockyard: limits
written into a running container's cgroup (read back from the files this
host has: cgroup v1 controllers here, the v2 files on a pure v2 host), a
stopped container's HostConfig applied at its next start, dockerd's
messages and statuses (pinned from dockerd 20.10), the update event, the
docker CLI, docker-py's update_container and `dockyard update`."""

from __future__ import annotations

import json
import os
import time

import pytest

from dockyard import _core

pytestmark = pytest.mark.usefixtures("no_leftover_containers")  # conftest.py

MiB = 1024 * 1024


def _run_d(daemon, bb, *args: str) -> str:
    return daemon.docker("run", "-d", *args, bb, "sleep", "1000").stdout.decode().strip()


def _cg(cid: str, v1: str, v2: str) -> str:
    """A cgroup file of the container, v1's name where v1 controllers are mounted."""
    dirs = [d for d in _core.cgroup_dirs(f"dockyard/{cid}") if os.path.isdir(d)]
    for name in (v1, v2):
        for d in dirs:
            p = os.path.join(d, name)
            if os.path.exists(p):
                with open(p) as f:
                    return f.read().strip()
    raise AssertionError(f"no {v1} or {v2} in {dirs}")


def _v2() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _hc(daemon, cid: str) -> dict:
    return daemon.client().get_json(f"/containers/{cid}/json")["HostConfig"]


def _update(daemon, cid: str, body: dict):
    """(status, JSON answer) of an update through the API."""
    r = daemon.client().request("POST", f"/containers/{cid}/update", None,
                                json.dumps(body).encode(),
                                {"Content-Type": "application/json"}, check=False)
    try:
        return r.status, r.json()
    finally:
        r.close()


def test_running_container_limits_change_live(daemon, bb):
    cid = _run_d(daemon, bb, "-m", "32m")
    r = daemon.docker("update", "--memory", "64m", "--memory-swap", "128m",
                      "--memory-reservation", "48m", "--cpus", "0.5", "--cpu-shares", "512",
                      "--pids-limit", "50", "--cpuset-cpus", "0", "--cpuset-mems", "0",
                      "--kernel-memory", "50m", "--restart", "on-failure:3", cid)
    # dockerd 20.10 stores a kernel memory limit but warns (and applies none);
    # docker's CLI prints warnings on stdout after the names
    assert r.stdout.decode() == (cid + "\nSpecifying a kernel memory limit is deprecated and "
                                 "will be removed in a future release.\n")
    hc = _hc(daemon, cid)
    assert (hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"]) == (64 * MiB, 128 * MiB,
                                                                        48 * MiB)
    assert (hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"]) == (500_000_000, 512, 50)
    assert (hc["CpusetCpus"], hc["CpusetMems"], hc["KernelMemory"]) == ("0", "0", 50 * MiB)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    if _v2():
        assert _cg(cid, "-", "memory.max") == str(64 * MiB)
        assert _cg(cid, "-", "memory.swap.max") == str(64 * MiB)
        assert _cg(cid, "-", "memory.low") == str(48 * MiB)
        assert _cg(cid, "-", "cpu.max") == "50000 100000"
        assert _cg(cid, "-", "cpu.weight") == "20"
    else:
        assert _cg(cid, "memory.limit_in_bytes", "-") == str(64 * MiB)
        if os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"):
            assert _cg(cid, "memory.memsw.limit_in_bytes", "-") == str(128 * MiB)
        assert _cg(cid, "memory.soft_limit_in_bytes", "-") == str(48 * MiB)
        assert _cg(cid, "cpu.cfs_quota_us", "-") == "50000"
        assert _cg(cid, "cpu.cfs_period_us", "-") == "100000"
        assert _cg(cid, "cpu.shares", "-") == "512"
    assert _cg(cid, "pids.max", "pids.max") == "50"
    assert _cg(cid, "cpuset.cpus", "cpuset.cpus") == "0"
    # Shrinking memory with its swap, then unlimited pids (dockerd stores 0)
    daemon.docker("update", "-m", "40m", "--memory-swap", "40m", "--pids-limit", "-1", cid)
    assert _cg(cid, "memory.limit_in_bytes", "memory.max") == str(40 * MiB)
    assert _cg(cid, "pids.max", "pids.max") == "max"
    assert _hc(daemon, cid)["PidsLimit"] == 0
    # The process really is bound: more pids than the limit fail to fork.
    daemon.docker("update", "--pids-limit", "3", cid)
    r = daemon.docker("exec", cid, "sh", "-c", "sleep 5 & sleep 5 & sleep 5 & wait",
                      check=False)
    assert r.returncode != 0
    daemon.docker("rm", "-f", cid)


def test_stopped_container_gets_the_limits_at_start(daemon, bb):
    cid = daemon.docker("create", bb, "sleep", "1000").stdout.decode().strip()
    st, out = _update(daemon, cid, {"Memory": 64 * MiB, "MemorySwap": 96 * MiB,
                                    "CpuQuota": 20000, "CpuPeriod": 50000, "PidsLimit": 20})
    assert (st, out) == (200, {"Warnings": None})
    hc = _hc(daemon, cid)
    assert (hc["Memory"], hc["MemorySwap"], hc["CpuQuota"], hc["CpuPeriod"],
            hc["PidsLimit"]) == (64 * MiB, 96 * MiB, 20000, 50000, 20)
    daemon.docker("start", cid)
    assert _cg(cid, "memory.limit_in_bytes", "memory.max") == str(64 * MiB)
    if _v2():
        assert _cg(cid, "-", "cpu.max") == "20000 50000"
    else:
        assert _cg(cid, "cpu.cfs_quota_us", "-") == "20000"
        assert _cg(cid, "cpu.cfs_period_us", "-") == "50000"
    assert _cg(cid, "pids.max", "pids.max") == "20"
    daemon.docker("rm", "-f", cid)


def test_errors_are_dockerds(daemon, bb):
    cid = _run_d(daemon, bb)
    assert _update(daemon, cid, {"Memory": 64 * MiB}) == (409, {"message": (
        f"Cannot update container {cid}: Memory limit should be smaller than already set "
        "memoryswap limit, update the memoryswap at the same time")})
    bad = [
        ({"Memory": 4 * MiB}, "Minimum memory limit allowed is 6MB"),
        ({"Memory": 100 * MiB, "MemorySwap": 50 * MiB},
         "Minimum memoryswap limit should be larger than memory limit, see usage"),
        ({"MemoryReservation": 1000}, "Minimum memory reservation allowed is 6MB"),
        ({"Memory": 100 * MiB, "MemoryReservation": 200 * MiB},
         "Minimum memory limit can not be less than memory reservation limit, see usage"),
        ({"KernelMemory": 1000}, "Minimum kernel memory limit allowed is 6MB"),
        ({"NanoCpus": 100_000_000, "CpuPeriod": 1000},
         "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
        ({"NanoCpus": 100_000_000, "CpuQuota": 1000},
         "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
        ({"CpuQuota": 500}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        ({"CpuPeriod": 500}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
         "than 1s (i.e. 1000000)"),
        ({"CpusetCpus": "0-x"}, "Invalid value 0-x for cpuset cpus: invalid format: 0-x"),
        ({"CpusetMems": "a"}, "Invalid value a for cpuset mems: invalid format: a"),
        ({"CpusetCpus": "999"}, "Requested CPUs are not available - requested 999, "
         "available: "),
        ({"RestartPolicy": {"Name": "bogus"}}, "invalid restart policy 'bogus'"),
        ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}},
         "maximum retry count cannot be used with restart policy 'always'"),
        ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}},
         "maximum retry count cannot be negative"),
    ]
    for body, msg in bad:
        st, out = _update(daemon, cid, body)
        assert st == 400 and out["message"].startswith(msg), (body, out)
    ncpu = len(os.sched_getaffinity(0))
    assert _update(daemon, cid, {"NanoCpus": (ncpu + 1) * 10**9}) == (400, {"message": (
        f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")})
    # NanoCpus and a CFS period/quota exclude each other across updates too (409)
    assert _update(daemon, cid, {"NanoCpus": 500_000_000})[0] == 200
    for key in ("CpuPeriod", "CpuQuota"):
        what = "Period" if key == "CpuPeriod" else "Quota"
        assert _update(daemon, cid, {key: 50000}) == (409, {"message": (
            f"Cannot update container {cid}: Conflicting options: CPU {what} cannot be "
            "updated as NanoCPUs has already been set")})
    if not _v2():  # the kernel clamps cpu.shares; runc (and Dockyard) say so: a 500
        st, out = _update(daemon, cid, {"CpuShares": 1})
        assert (st, out["message"]) == (500, f"Cannot update container {cid}: the minimum "
                                        "allowed cpu-shares is 2")
        assert _hc(daemon, cid)["CpuShares"] == 0  # the stored config is restored
    assert _update(daemon, "nosuch", {"CpuShares": 512}) == (
        404, {"message": "No such container: nosuch"})
    daemon.docker("rm", "-f", cid)
    assert _update(daemon, cid, {"CpuShares": 512}) == (
        404, {"message": f"No such container: {cid}"})


def test_restart_policy_and_autoremove(daemon, bb):
    cid = daemon.docker("run", "-d", "--rm", bb, "sleep", "1000").stdout.decode().strip()
    assert _update(daemon, cid, {"RestartPolicy": {"Name": "always"}}) == (409, {"message": (
        f"Cannot update container {cid}: Restart policy cannot be updated because AutoRemove "
        "is enabled for the container")})
    assert _update(daemon, cid, {"RestartPolicy": {"Name": "no"}})[0] == 200
    daemon.docker("rm", "-f", cid)


def test_warnings_for_what_this_host_lacks(daemon, bb):
    cid = daemon.docker("create", bb, "true").stdout.decode().strip()
    st, out = _update(daemon, cid, {"KernelMemory": 50 * MiB, "BlkioWeight": 300})
    assert st == 200
    assert out["Warnings"][0] == ("Specifying a kernel memory limit is deprecated and will be "
                                  "removed in a future release.")
    from dockyard.containers.update import blkio_weight_supported

    if not blkio_weight_supported():
        assert out["Warnings"][1:] == ["Your kernel does not support Block I/O weight or the "
                                       "cgroup is not mounted. Weight discarded."]
        assert _hc(daemon, cid)["BlkioWeight"] == 0
    daemon.docker("rm", cid)


def test_memory_below_usage_is_refused_by_the_kernel(daemon, bb):
    """v1 answers EBUSY when usage can't be reclaimed below the new limit
    (no swap to go to); dockerd passes runc's words on as a 500."""
    if _v2():
        pytest.skip("cgroup v2 reclaims or OOM-kills instead of refusing")
    cid = daemon.docker("run", "-d", "--shm-size", "100m", "-m", "100m", "--memory-swap",
                        "100m", bb, "sh", "-c", "head -c 40000000 /dev/zero > /dev/shm/x; "
                        "touch /tmp/ready; sleep 1000").stdout.decode().strip()
    for _ in range(200):
        if daemon.docker("exec", cid, "test", "-e", "/tmp/ready", check=False).returncode == 0:
            break
        time.sleep(0.05)
    st, out = _update(daemon, cid, {"Memory": 10 * MiB, "MemorySwap": 10 * MiB})
    assert st == 500, out
    assert out["message"].startswith(f"Cannot update container {cid}: unable to set memory "
                                     f"limit to {10 * MiB} (current usage: ")
    assert ", peak usage: " in out["message"]
    hc = _hc(daemon, cid)
    assert (hc["Memory"], hc["MemorySwap"]) == (100 * MiB, 100 * MiB)
    r = daemon.docker("update", "-m", "10m", "--memory-swap", "10m", cid, check=False)
    assert r.returncode == 1 and b"unable to set memory limit" in r.stderr
    daemon.docker("rm", "-f", cid)


def test_update_event(daemon, bb):
    cid = daemon.docker("create", "--name", "upd-ev", bb, "true").stdout.decode().strip()
    since = str(time.time() - 1)
    daemon.docker("update", "--cpu-shares", "100", "upd-ev")
    out = daemon.docker("events", "--since", since, "--until", str(time.time() + 1),
                        "--filter", f"container={cid}", "--filter", "event=update",
                        "--format", "{{json .}}").stdout.decode().splitlines()
    ev = json.loads(out[0])
    assert (ev["Type"], ev["Action"], ev["Actor"]["ID"]) == ("container", "update", cid)
    assert ev["Actor"]["Attributes"] == {"image": "busybox", "name": "upd-ev"}
    daemon.docker("rm", cid)


def test_docker_cli_output(daemon, bb):
    cid = _run_d(daemon, bb, "--name", "upd-cli")
    r = daemon.docker("update", "--cpu-shares", "256", "upd-cli", "nosuch", check=False)
    assert r.returncode == 1
    assert r.stdout.decode() == "upd-cli\n"
    assert b"Error response from daemon: No such container: nosuch" in r.stderr
    daemon.docker("rm", "-f", cid)


def test_dockyard_update(daemon, bb):
    cid = _run_d(daemon, bb, "--name", "upd-dy", "-m", "32m")
    r = daemon.cli("update", "-m", "48m", "--cpus", "0.25", "--pids-limit", "40",
                   "--restart", "unless-stopped", "--blkio-weight", "300", "upd-dy",
                   cid[:12])
    from dockyard.containers.update import blkio_weight_supported

    warn = "" if blkio_weight_supported() else ("Your kernel does not support Block I/O weight "
                                                "or the cgroup is not mounted. Weight "
                                                "discarded.\n") * 2
    assert r.stdout.decode() == f"upd-dy\n{cid[:12]}\n" + warn
    hc = _hc(daemon, cid)
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (48 * MiB, 250_000_000, 40)
    assert hc["RestartPolicy"]["Name"] == "unless-stopped"
    assert _cg(cid, "memory.limit_in_bytes", "memory.max") == str(48 * MiB)
    r = daemon.cli("update", "--cpu-shares", "512", "nosuch", "upd-dy", "gone", check=False)
    assert r.returncode == 1 and r.stdout.decode() == "upd-dy\n"
    assert r.stderr.decode() == ("Error response from daemon: No such container: nosuch\n"
                                 "Error response from daemon: No such container: gone\n")
    r = daemon.cli("update", "upd-dy", check=False)
    assert (r.returncode, r.stderr.decode()) == (
        1, "you must provide one or more flags when using this command\n")
    r = daemon.cli("update", "-m", "abc", "upd-dy", check=False)
    assert r.returncode == 125
    assert r.stderr.decode().startswith('invalid argument "abc" for "-m, --memory" flag: '
                                        "invalid size: 'abc'")
    r = daemon.cli("update", "--restart", "on-failure:x", "upd-dy", check=False)
    assert (r.returncode, r.stderr.decode()) == (
        1, "invalid restart policy format: maximum retry count must be an integer\n")
    r = daemon.cli("update", "--restart", "bogus", "upd-dy", check=False)
    assert (r.returncode, r.stderr.decode()) == (
        1, "Error response from daemon: invalid restart policy 'bogus'\n")
    r = daemon.cli("update", "-m", "4m", "upd-dy", check=False)
    assert r.returncode == 1
    assert r.stderr.decode() == "Error response from daemon: Minimum memory limit allowed is 6MB\n"
    daemon.docker("rm", "-f", cid)


def test_docker_py_update_container(daemon, bb):
    """docker-py's UpdateContainerTest (tests/integration/api_container_test.py)."""
    docker = pytest.importorskip("docker")
    client = docker.APIClient(base_url=daemon.host, version="1.41")
    try:
        c = client.create_container(bb, "top", host_config=client.create_host_config(
            mem_limit=400 * MiB))
        client.start(c)
        client.update_container(c, mem_limit=300 * MiB)
        assert client.inspect_container(c)["HostConfig"]["Memory"] == 300 * MiB
        assert _cg(c["Id"], "memory.limit_in_bytes", "memory.max") == str(300 * MiB)
        client.remove_container(c, force=True)
        c = client.create_container(bb, ["sleep", "60"], host_config=client.create_host_config(
            restart_policy={"MaximumRetryCount": 0, "Name": "always"}))
        client.start(c)
        client.update_container(c, restart_policy={"MaximumRetryCount": 42,
                                                   "Name": "on-failure"})
        assert client.inspect_container(c)["HostConfig"]["RestartPolicy"] == {
            "MaximumRetryCount": 42, "Name": "on-failure"}
        client.remove_container(c, force=True)
    finally:
        client.close()


def _tree(path, files: dict[str, str]) -> str:
    path.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (path / name).write_text(value)
    return str(path)


def test_v2_files_written_on_a_fake_tree(tmp_path):
    """cgroup v2's files and conversions, on a directory standing in for a
    container's cgroup2 directory (this host's controllers are v1's; the VM
    test in test_cgroup_v2_vm_inner.py runs them for real)."""
    from dockyard.containers.cgroups import cpu_weight, update_resources

    d = _tree(tmp_path / "c", {"cgroup.controllers": "cpuset cpu io memory pids",
                               "memory.max": "max", "memory.swap.max": "max",
                               "memory.low": "0", "cpu.max": "max 100000", "cpu.weight": "100",
                               "pids.max": "max", "cpuset.cpus": "", "io.weight": "default 100"})

    def rd(name: str) -> str:
        return (tmp_path / "c" / name).read_text()

    update_resources([d], {"memory": 64 * MiB, "memory_swap": 96 * MiB,
                           "memory_reservation": 16 * MiB, "cpu_quota": 50000,
                           "cpu_shares": 512, "pids_limit": 30, "cpuset_cpus": "0",
                           "blkio_weight": 500})
    assert (rd("memory.max"), rd("memory.swap.max"), rd("memory.low")) == (
        str(64 * MiB), str(32 * MiB), str(16 * MiB))
    assert (rd("cpu.max"), rd("cpu.weight"), rd("pids.max"), rd("cpuset.cpus")) == (
        "50000 100000", str(cpu_weight(512)), "30", "0")
    assert rd("io.weight") == "default 4950"  # runc: 1 + (w - 10) * 9999 // 990
    # swap alone: the total less the memory in force; -1 and pids 0: unlimited
    update_resources([d], {"memory_swap": 80 * MiB, "cpu_period": 20000})
    assert (rd("memory.swap.max"), rd("cpu.max")) == (str(16 * MiB), "50000 20000")
    update_resources([d], {"memory_swap": -1, "pids_limit": 0, "cpu_quota": -1})
    assert (rd("memory.swap.max"), rd("pids.max"), rd("cpu.max")) == ("max", "max",
                                                                      "max 20000")
    assert (cpu_weight(2), cpu_weight(1024), cpu_weight(262144)) == (1, 39, 10000)


def test_v1_memory_and_swap_order_on_a_fake_tree(tmp_path):
    """memsw may never be below memory: growing both writes memsw first,
    shrinking writes memory first (runc's order). A fake tree records the
    order by the files' contents at each step."""
    from dockyard.containers import cgroups

    mem = _tree(tmp_path / "memory", {"memory.limit_in_bytes": str(32 * MiB),
                                      "memory.memsw.limit_in_bytes": str(64 * MiB),
                                      "memory.soft_limit_in_bytes": "0"})
    cpu = _tree(tmp_path / "cpu", {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1",
                                   "cpu.cfs_period_us": "100000"})
    pids = _tree(tmp_path / "pids", {"pids.max": "max"})
    order: list[str] = []
    real = cgroups._write  # noqa: SLF001 - the test watches the writes' order

    def spy(dirs, name, value):
        order.append(name)
        real(dirs, name, value)

    cgroups._write = spy  # type: ignore[assignment]  # noqa: SLF001
    try:
        cgroups.update_resources([mem, cpu, pids], {"memory": 128 * MiB,
                                                    "memory_swap": 256 * MiB})
        assert order == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
        order.clear()
        cgroups.update_resources([mem, cpu, pids], {"memory": 16 * MiB,
                                                    "memory_swap": 32 * MiB})
        assert order == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
        order.clear()
        cgroups.update_resources([mem, cpu, pids], {"memory": 64 * MiB, "memory_swap": -1})
        assert order == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    finally:
        cgroups._write = real  # type: ignore[assignment]  # noqa: SLF001
    cgroups.update_resources([mem, cpu, pids], {"cpu_quota": 0, "cpu_shares": 256,
                                                "pids_limit": -1})
    assert (tmp_path / "cpu" / "cpu.cfs_quota_us").read_text() == "-1"
    assert (tmp_path / "cpu" / "cpu.shares").read_text() == "256"
    assert (tmp_path / "pids" / "pids.max").read_text() == "max"
