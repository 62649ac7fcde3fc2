"""Container breakouts that Docker's defaults stop stay stopped in Dockyard:
each attack runs in a busybox container started with default options, and
must fail with nothing on the host changed. The syscall attacks are a static
C probe (tests/data/breakout_probe.c, built with gcc at test time) so that a
whole family runs in one container: mount/unshare/setns, keyctl, shocker's
open_by_handle_at, ptrace and kill of host pids, module loading, raw I/O,
the chroot climb, block and memory devices made with mknod. A shell script
covers /proc and /sys writes, masked and read-only paths, cgroupfs, /dev,
capabilities and leaked fds. Then the CVE reproductions: CVE-2019-5736
(/proc/N/exe of processes entering the container), CVE-2024-21626 (cwd
through a leaked fd), CVE-2021-30465 (volume target through a symlink, swapped
while containers start), CVE-2018-15664 (docker cp through a symlink).

DOCKYARD_BREAKOUT_REF=1 also runs the probe and the script against a real
dockerd and checks that Docker's defaults give the same answers (slow: starts
a dockerd)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import busybox_rootfs, make_tar

PROBE_SRC = Path(__file__).parent / "data" / "breakout_probe.c"

# Every syscall attack and the errno Docker's defaults answer it with
# (seccomp, dropped capabilities, the pid namespace, the devices cgroup).
SYSCALLS = {
    **{k: "EPERM" for k in (
        "mount_tmpfs", "mount_bind_proc", "mount_proc", "umount_kcore_mask",
        "remount_proc_sys_rw", "unshare_user", "unshare_mnt", "unshare_userns_mnt",
        "setns_mnt", "keyctl", "add_key", "request_key", "open_by_handle_at", "bpf",
        "perf_event_open", "init_module", "finit_module", "delete_module", "kexec_load",
        "iopl", "ioperm", "reboot", "swapoff", "userfaultfd", "clock_settime", "acct",
        "syslog_read", "lookup_dcookie", "quotactl", "pivot_root")},
    # host pids don't exist in the container's pid namespace
    "kill_host_pid": "ESRCH", "ptrace_host_pid": "ESRCH",
    # CAP_SYS_CHROOT is a default: the climb works but ends at the container's root
    "chroot_climb": "ok", "chroot_climb_sees_host": "ENOENT",
    # CAP_MKNOD is a default too: the nodes are made, the devices cgroup refuses them
    **{f"mknod_{d}": "ok" for d in ("disk", "mem", "kmem", "port", "kmsg", "loop0")},
    **{f"open_{d}": "EPERM" for d in ("disk", "mem", "kmem", "port", "kmsg", "loop0")},
}

# /proc and /sys: each write is only an open in append mode, never data.
SCRIPT = r"""
w() { [ -e "$2" ] || { echo "$1 absent"; return; }
      err=$( (: >> "$2") 2>&1 ) && echo "$1 ok" || echo "$1 ${err##*: }"; }
md() { err=$(mkdir "$2" 2>&1) && { echo "$1 ok"; rmdir "$2"; } || echo "$1 ${err##*: }"; }
sz() { echo "$1 $(head -c 64 "$2" 2>/dev/null | wc -c)"; }
n() { echo "$1 $(ls -A "$2" 2>/dev/null | wc -l)"; }
w proc_core_pattern /proc/sys/kernel/core_pattern
w proc_modprobe /proc/sys/kernel/modprobe
w proc_drop_caches /proc/sys/vm/drop_caches
w proc_hostname /proc/sys/kernel/hostname
w proc_sysrq_trigger /proc/sysrq-trigger
w proc_irq /proc/irq/default_smp_affinity
w proc_bus_pci /proc/bus/pci/devices
w sys_uevent_helper /sys/kernel/uevent_helper
w sys_power_state /sys/power/state
w sys_thp /sys/kernel/mm/transparent_hugepage/enabled
w sys_lo_mtu /sys/class/net/lo/mtu
md sys_mkdir /sys/kernel/dy-breakout
for d in /sys/fs/cgroup /sys/fs/cgroup/*/; do
  d=${d%/}; c=cg_$(basename "$d")
  w ${c}_procs $d/cgroup.procs
  w ${c}_release_agent $d/release_agent
  w ${c}_notify $d/notify_on_release
  w ${c}_subtree $d/cgroup.subtree_control
  w ${c}_devices_allow $d/devices.allow
  [ -e $d/cgroup.procs ] && md ${c}_mkdir $d/dy-breakout
done
sz kcore /proc/kcore
sz keys /proc/keys
sz timer_list /proc/timer_list
sz timer_stats /proc/timer_stats
sz sched_debug /proc/sched_debug
sz latency_stats /proc/latency_stats
n acpi /proc/acpi
n scsi /proc/scsi
n asound /proc/asound
n firmware /sys/firmware
n powercap /sys/devices/virtual/powercap
echo "dev $(ls /dev | tr '\n' ,)"
echo "init_cwd $(readlink /proc/1/cwd)"
echo "init_root $(readlink /proc/1/root)"
grep -E '^(CapEff|CapBnd|CapPrm|CapInh|CapAmb|Seccomp):' /proc/self/status |
  tr -d '\t' | sed 's/:/ /'
"""

DEFAULT_CAPS_HEX = "00000000a80425fb"


def parse(out: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def host_disk() -> tuple[int, int]:
    """major:minor of the filesystem holding the host's /."""
    st = os.stat("/")
    return os.major(st.st_dev), os.minor(st.st_dev)


def host_mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def host_state() -> dict[str, str]:
    """What the attacks would change on the host if one got through."""
    out = {}
    for p in ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
              "/proc/sys/kernel/hostname", "/sys/kernel/uevent_helper"):
        try:
            out[p] = Path(p).read_text()
        except OSError:
            pass
    # other engines (and tests) come and go under /run, /tmp, /var...: the
    # mounts an escape would make are on the system's own paths
    out["mounts"] = "\n".join(sorted(m for m in host_mounts() if not m.startswith(
        ("/run/", "/tmp/", "/var/", "/work/", "/root/", "/home/", "/srv/", "/opt/"))))
    return out


@pytest.fixture(scope="module")
def probe_rootfs(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the breakout probe")
    d = tmp_path_factory.mktemp("breakout")
    root = busybox_rootfs(d / "rootfs")
    r = subprocess.run(["gcc", "-static", "-O1", "-o", str(root / "probe"), str(PROBE_SRC)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static probe here: {r.stderr[-300:]}")
    # A symlink out to the host's side of things, for the mount and cp attacks:
    # the host directory it names must never be touched.
    (d / "host-target").mkdir()
    (d / "host-target" / "HOSTMARKER").write_text("host\n")
    os.symlink(str(d / "host-target"), root / "evil")
    return root


@pytest.fixture(scope="module")
def image(daemon, probe_rootfs) -> str:
    tar = make_tar(probe_rootfs, probe_rootfs.parent / "probe.tar")
    daemon.cli("import", "-c", 'CMD ["sh"]', str(tar), "breakout:latest")
    return "breakout:latest"


@pytest.fixture
def names(daemon):
    """Container and volume names a test makes; removed after it."""
    made: list[str] = []
    yield lambda: made.append(f"bo-{uuid.uuid4().hex[:10]}") or made[-1]
    if made:
        daemon.docker("rm", "-f", *made, check=False)
        daemon.docker("volume", "rm", "-f", *made, check=False)


def marker(rootfs: Path) -> Path:
    return rootfs.parent / "host-target" / "HOSTMARKER"


def run_probe(engine, image: str, rootfs: Path) -> dict[str, str]:
    maj, mi = host_disk()
    r = engine.docker("run", "--rm", image, "/probe", "syscalls", str(os.getpid()),
                      str(marker(rootfs)), str(maj), str(mi))
    return parse(r.stdout.decode())


def test_syscall_attacks(daemon, image, probe_rootfs):
    before = host_state()
    got = run_probe(daemon, image, probe_rootfs)
    assert got == SYSCALLS
    assert host_state() == before
    assert marker(probe_rootfs).read_text() == "host\n"


def _script_expectations(got: dict[str, str]) -> None:
    for k, v in got.items():
        if k.startswith(("proc_", "sys_", "cg_")):
            # the file may not exist on this kernel; where it does, it is read-only
            assert v in ("absent", "Read-only file system", "nonexistent directory"), (k, v)
    assert any(k.startswith("cg_") and v != "absent" for k, v in got.items()), got
    for k in ("kcore", "keys", "timer_list", "timer_stats", "sched_debug", "latency_stats",
              "acpi", "scsi", "asound", "firmware", "powercap"):
        assert got[k] == "0", (k, got[k])  # masked: /dev/null or an empty read-only tmpfs
    devs = set(got["dev"].strip(",").split(","))
    assert devs - {"core"} == {"fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm",
                               "stderr", "stdin", "stdout", "tty", "urandom", "zero"}
    assert ("core" in devs) == os.path.exists("/proc/kcore")
    assert got["init_cwd"] == got["init_root"] == "/"
    for k in ("CapEff", "CapPrm", "CapBnd"):
        assert got[k] == DEFAULT_CAPS_HEX, k
    assert got["CapInh"] == got["CapAmb"] == "0000000000000000"  # CVE-2022-24769
    assert got["Seccomp"] == "2"


def test_proc_sys_writes_masks_and_devices(daemon, image):
    before = host_state()
    r = daemon.docker("run", "--rm", "-i", image, "sh", input=SCRIPT.encode())
    _script_expectations(parse(r.stdout.decode()))
    assert host_state() == before


def test_no_fd_or_cwd_leak_cve_2024_21626(daemon, image, names):
    """`-w /proc/self/fd/N` must not leave a process outside the root, and no
    fd of the daemon or the shim reaches the container, in run, exec and the
    --init reaper."""
    c = names()
    daemon.docker("run", "-d", "--name", c, image, "sleep", "300")
    r = daemon.docker("exec", c, "sh", "-c", "ls /proc/self/fd | tr '\n' ,; echo; ls /proc/1/fd")
    own, init = r.stdout.decode().splitlines()[0], r.stdout.decode().split("\n", 1)[1].split()
    assert own == "0,1,2,3," and init == ["0", "1", "2"]
    check = "pwd; readlink /proc/self/cwd; ls"
    for n in range(3, 12):
        r = daemon.docker("exec", "-w", f"/proc/self/fd/{n}", c, "sh", "-c", check, check=False)
        assert r.returncode != 0 and b"chdir to cwd" in r.stdout + r.stderr, (n, r.stdout)
    for n in (3, 7):
        r = daemon.docker("run", "--rm", "-w", f"/proc/self/fd/{n}", image, "sh", "-c", check,
                          check=False)
        assert r.returncode != 0, (n, r.stdout)
    r = daemon.docker("run", "--rm", "--init", image, "sh", "-c",
                      "ls /proc/1/fd | tr '\n' ,; echo; readlink /proc/1/exe || echo denied")
    assert r.stdout.decode().split() == ["0,1,2,", "denied"], r.stdout


def test_exec_entry_unreachable_cve_2019_5736(daemon, image, names):
    """While `docker exec` processes enter the container (and before they
    execve), a container process must get no handle on them: not their
    executable (the host's shim), fds, cwd or root."""
    import dockyard

    shim = Path(dockyard.__file__).parent / "_bin" / "dockyard-shim"
    digest = hashlib.sha256(shim.read_bytes()).hexdigest()
    c = names()
    daemon.docker("run", "-d", "--name", c, image, "/probe", "watch-exe")
    deadline = time.monotonic() + 30
    while b"watching" not in daemon.docker("logs", c).stdout:
        assert time.monotonic() < deadline, "the watcher did not start"
        time.sleep(0.05)
    for _ in range(8):
        daemon.docker("exec", c, "true")
    daemon.docker("exec", "-u", "nobody", "-w", "/tmp", c, "true")
    daemon.docker("exec", c, "touch", "/tmp/dy-stop")
    assert daemon.docker("wait", c).stdout.strip() == b"0"
    deadline = time.monotonic() + 30
    while True:  # the last lines may reach the log just after the exit
        out = daemon.docker("logs", c).stdout.decode().splitlines()
        if out[-1].startswith("done ") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert out[0] == "watching" and out[-1].startswith("done "), out[-5:]
    assert out[1:-1] == []  # nothing foreign seen, nothing writable
    assert hashlib.sha256(shim.read_bytes()).hexdigest() == digest


def test_volume_target_through_symlink_cve_2021_30465(daemon, image, probe_rootfs, names):
    """A mount target resolves inside the rootfs even through an absolute
    symlink to a host path, and even when a container sharing the volume
    swaps the target between a directory and a symlink while others start."""
    host_dir = probe_rootfs.parent / "host-target"
    before = host_state()
    vol = names()
    r = daemon.docker("run", "--rm", "-v", f"{vol}:/evil/sub", image, "sh", "-c",
                      "touch /evil/sub/inside && ls /evil/sub && ls /evil")
    assert r.stdout.decode().split() == ["inside", "sub"]
    assert sorted(os.listdir(host_dir)) == ["HOSTMARKER"]
    # the race: the attacker flips /ctr/a in a shared volume; victims mount onto /ctr/a/b
    shared, inner, attacker = names(), names(), names()
    daemon.docker("run", "-d", "--name", attacker, "-v", f"{shared}:/ctr", image, "sh", "-c",
                  "cd /ctr; while :; do mkdir -p a.d; ln -sfn / a.l; mv -T a.d a; "
                  "mv -T a.l a; rm -rf a; done")
    for _ in range(4):
        v = names()
        r = daemon.docker("run", "--rm", "--name", v, "-v", f"{shared}:/ctr",
                          "-v", f"{inner}:/ctr/a/b", image, "sh", "-c",
                          "test -x /probe && touch /ctr/a/b/seen && echo fine", check=False)
        assert r.returncode != 0 or r.stdout.strip() == b"fine", r.stderr
    daemon.docker("rm", "-f", attacker)
    assert sorted(os.listdir(host_dir)) == ["HOSTMARKER"]
    assert not os.path.exists("/b/seen") and not os.path.exists("/seen")
    assert host_state() == before


def test_cp_through_symlink_cve_2018_15664(daemon, image, probe_rootfs, names, tmp_path):
    """`docker cp` into and out of a path through a symlink to a host path
    stays inside the container."""
    host_dir = probe_rootfs.parent / "host-target"
    c = names()
    daemon.docker("create", "--name", c, image)
    (tmp_path / "payload").write_text("payload\n")
    # the symlink's target doesn't exist in the container: as with dockerd, nothing to copy into
    r = daemon.docker("cp", str(tmp_path / "payload"), f"{c}:/evil/", check=False)
    assert r.returncode != 0 and b"no such directory" in r.stderr, r.stderr
    r = daemon.docker("cp", f"{c}:/evil/HOSTMARKER", "-", check=False)
    assert r.returncode != 0 and b"host" not in r.stdout, r.stderr
    # once it exists in the container, that is where the copy goes
    daemon.docker("cp", str(tmp_path / "payload"), f"{c}:/tmp/")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        parts = host_dir.parts[1:]
        for i in range(1, len(parts) + 1):
            ti = tarfile.TarInfo("/".join(parts[:i]))
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
    daemon.docker("cp", "-", f"{c}:/", input=buf.getvalue())
    daemon.docker("cp", str(tmp_path / "payload"), f"{c}:/evil/")
    r = daemon.docker("cp", f"{c}:/evil/payload", "-")
    assert b"payload" in r.stdout
    assert sorted(os.listdir(host_dir)) == ["HOSTMARKER"]

    # the race: the container flips /tmp/w between a directory and a symlink to
    # / while files are copied into it; each lands in the container, never on the host
    daemon.docker("rm", "-f", c)
    daemon.docker("run", "-d", "--name", c, image, "sh", "-c",
                  "cd /tmp; while :; do mkdir -p w.d; ln -sfn / w.l; mv -T w.d w; "
                  "mv -T w.l w; rm -rf w; done")
    name = f"dy-cp-{uuid.uuid4().hex[:8]}"
    (tmp_path / name).write_text("x\n")
    for _ in range(8):
        daemon.docker("cp", str(tmp_path / name), f"{c}:/tmp/w/", check=False)
    assert not os.path.exists(f"/{name}") and not os.path.exists(f"/tmp/{name}")


@pytest.fixture(scope="module")
def ref(tmp_path_factory, probe_rootfs):
    if not os.environ.get("DOCKYARD_BREAKOUT_REF"):
        pytest.skip("set DOCKYARD_BREAKOUT_REF=1 to compare with a real dockerd")
    from conftest import RefDockerd

    d = RefDockerd(tmp_path_factory.mktemp("breakout-ref"))
    try:
        d.start()
        d.docker("import", "-c", 'CMD ["sh"]',
                 str(make_tar(probe_rootfs, probe_rootfs.parent / "ref.tar")), "breakout:latest")
        yield d
    finally:
        d.stop()


def test_reference_dockerd_stops_the_same(ref, probe_rootfs):
    """Docker's defaults give the same answers (what the assertions above pin)."""
    assert run_probe(ref, "breakout:latest", probe_rootfs) == SYSCALLS
    r = ref.docker("run", "--rm", "-i", "breakout:latest", "sh", input=SCRIPT.encode())
    got = parse(r.stdout.decode())
    # runc leaves the v1 cgroup tmpfs itself writable (only a tmpfs): the files
    # `: >>` would create there are no cgroup's
    got = {k: ("Read-only file system" if k.startswith("cg_cgroup_") and v == "ok" else v)
           for k, v in got.items()}
    _script_expectations(got)
