"""`docker run`'s resource flags beyond memory, CPU and pids, as dockerd 20.10
takes them (messages pinned from it on this host): swappiness and the OOM
killer switch (v1 memory files), block I/O throttles per device (a device
looked up at the start: `stat /dev/x: ...`), weights this kernel lacks
dropped with dockerd's warning, the kernel memory deprecation, and what no
Linux daemon offers refused (GPUs, Hyper-V isolation, a size on overlay)."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.usefixtures("no_leftover_containers")  # conftest.py

V1_MEMORY = os.path.exists("/sys/fs/cgroup/memory/memory.oom_control")


def _block_device() -> str | None:
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram", "dm-", "md", "sr", "nbd")) and \
                os.path.exists(f"/dev/{name}"):
            return f"/dev/{name}"
    return None


def _run(daemon, bb, *args: str):
    return daemon.docker("run", "--rm", *args, check=False)


@pytest.mark.skipif(not V1_MEMORY, reason="cgroup v1 memory controller only")
def test_swappiness_and_oom_kill_disable(daemon, bb):
    r = _run(daemon, bb, "-m", "64m", "--memory-swappiness", "0", "--oom-kill-disable", bb,
             "cat", "/sys/fs/cgroup/memory/memory.swappiness",
             "/sys/fs/cgroup/memory/memory.oom_control")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "0" and "oom_kill_disable 1" in lines
    r = _run(daemon, bb, "--oom-kill-disable", bb, "true")
    # (the docker CLI's own warning comes first)
    assert r.stderr.decode().endswith("WARNING: OOM killer is disabled for the container, but "
                                      "no memory limit is set, this can result in the system "
                                      "running out of resources.\n")


def test_block_io_throttles_and_weights(daemon, bb):
    dev = _block_device()
    if dev is None:
        pytest.skip("no block device")
    st = os.stat(dev)
    r = _run(daemon, bb, "--device-read-bps", f"{dev}:1mb", "--device-write-iops", f"{dev}:10",
             bb, "sh", "-c", "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device "
             "/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device 2>/dev/null || "
             "cat /sys/fs/cgroup/io.max")
    assert r.returncode == 0, r.stderr
    mm = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    out = r.stdout.decode()
    assert (f"{mm} 1048576" in out and f"{mm} 10" in out) or \
        (f"{mm} rbps=1048576" in out and "wiops=10" in out), out
    r = _run(daemon, bb, "--device-read-bps", "/dev/nonexistent:1mb", bb, "true")
    assert r.returncode == 127
    assert "Error response from daemon: stat /dev/nonexistent: no such file or directory" \
        in r.stderr.decode()
    if not os.path.exists("/sys/fs/cgroup/blkio/blkio.weight") and \
            not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        r = _run(daemon, bb, "--blkio-weight", "300", "--blkio-weight-device", f"{dev}:200",
                 bb, "true")
        assert r.returncode == 0
        assert r.stderr.decode() == (
            "WARNING: Your kernel does not support Block I/O weight or the cgroup is not "
            "mounted. Weight discarded.\nWARNING: Your kernel does not support Block I/O "
            "weight_device or the cgroup is not mounted. Weight-device discarded.\n")


def test_refused_and_deprecated(daemon, bb):
    r = _run(daemon, bb, "--kernel-memory", "10m", bb, "true")
    assert (r.returncode, r.stderr.decode()) == (
        0, "WARNING: Specifying a kernel memory limit is deprecated and will be removed in a "
           "future release.\n")
    for args, msg in (
            (("--gpus", "all"), 'could not select device driver "" with capabilities: [[gpu]]'),
            (("--isolation", "hyperv"),
             'Invalid isolation: "hyperv" - linux only supports \'default\''),
            (("--storage-opt", "size=10m"), "--storage-opt is supported only for overlay over "
                                            "xfs with 'pquota' mount option")):
        r = _run(daemon, bb, *args, bb, "true")
        assert r.returncode == 125, args
        assert f"Error response from daemon: {msg}" in r.stderr.decode(), \
            r.stderr


def test_user_groups_entrypoint_and_checks_like_dockerd(daemon, bb):
    """Pinned from dockerd 20.10: the primary group is always a supplementary
    group too, `--group-add` takes names, `--entrypoint ""` resets the
    image's, and create's checks of the working dir, stop signal and
    security options."""
    def out(*args: str) -> str:
        r = _run(daemon, bb, *args)
        return (r.stdout + r.stderr).decode()
    assert out(bb, "id", "-G") == "0\n"
    assert out("-u", "65534:65534", "--group-add", "77", bb, "id", "-G") == "65534 77\n"
    assert out("--group-add", "root", "-u", "1234:55", bb, "id", "-G") == "55 0\n"
    assert "Unable to find group nosuchgroup: no matching entries in group file" in \
        out("--group-add", "nosuchgroup", bb, "id")
    assert out("--entrypoint", "", bb, "echo", "hi") == "hi\n"
    assert out("--security-opt", "no-new-privileges=false", bb, "grep", "NoNewPrivs",
               "/proc/self/status") == "NoNewPrivs:\t0\n"
    for args, msg in ((("--workdir", "relative"), "the working directory 'relative' is invalid, "
                       "it needs to be an absolute path"),
                      (("--stop-signal", "FOO"), "Invalid signal: FOO"),
                      (("--security-opt", "foo=bar"), 'invalid --security-opt 2: "foo=bar"'),
                      (("--security-opt", "no-new-privileges=maybe"),
                       'invalid --security-opt 2: "no-new-privileges=maybe"')):
        assert f"Error response from daemon: {msg}" in out(*args, bb, "true"), args
    # an exec gets the same groups
    cid = daemon.docker("run", "-d", "-u", "65534:65534", "--group-add", "77", bb,
                        "sleep", "100").stdout.decode().strip()
    try:
        assert daemon.docker("exec", cid, "id", "-G").stdout.decode() == "65534 77\n"
    finally:
        daemon.docker("rm", "-f", cid)
