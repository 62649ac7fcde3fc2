"""`--exec-driver runc`: the same containers through runc, from the OCI bundle
the daemon writes, with Dockyard's shim still the supervisor (logs, attach,
wait, exit codes, restart survival). Needs /usr/sbin/runc (Debian's runc)."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Daemon, mounts_under, unmount_all
from test_cli_containers import in_pty

from dockyard.containers import oci

pytestmark = pytest.mark.skipif(oci.runc_path() is None, reason="runc is not installed")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CAPEFF = "00000000a80425fb"


def _start(base: Path, extra: list[str]) -> Daemon:
    d = Daemon(base, "overlay", extra=extra)
    d.start()
    return d


def _finish(d: Daemon, base: Path) -> None:
    d.stop()
    leaked = mounts_under(base)
    unmount_all(base)
    assert not leaked, f"mounts left behind: {leaked}"


@pytest.fixture(scope="module")
def runc_daemon(tmp_path_factory, busybox_tar):
    base = tmp_path_factory.mktemp("daemon-runc")
    d = _start(base, ["--exec-driver", "runc"])
    try:
        d.docker("import", str(busybox_tar), "busybox:latest")
        yield d
    finally:
        _finish(d, base)


def cgroups_of(cid: str) -> list[str]:
    return glob.glob(f"/sys/fs/cgroup/*/dockyard/{cid}")


def container_id(d: Daemon, name: str) -> str:
    return d.docker("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()


def assert_gone(d: Daemon, cid: str) -> None:
    """No cgroup, runc state, shim state or shim process left for `cid`."""
    exec_root = d.base / "exec"
    assert not cgroups_of(cid)
    assert not (exec_root / "runc" / cid).exists()
    assert not (exec_root / "containers" / cid).exists()
    assert not [m for m in mounts_under(d.base) if cid in m]
    out = subprocess.run(["pgrep", "-af", f"dockyard-shim.*{cid}"], capture_output=True)
    assert not out.stdout.strip(), out.stdout


@pytest.fixture
def names(runc_daemon):
    made: list[str] = []

    def new() -> str:
        n = f"runc{len(made)}{os.getpid()}{int(time.time() * 1000) % 100000}"
        made.append(n)
        return n
    yield new
    if made:
        runc_daemon.docker("rm", "-f", *made, check=False)


# --- the bundle ---------------------------------------------------------------------

def test_deny_list_matches_native():
    """oci.py's seccomp deny-list is the runtime's, name for name."""
    src = (REPO / "rust/runtime/src/seccomp.rs").read_text()
    body = src[src.index("pub fn denied()"):]
    body = body[:body.index("\n}\n")]
    native = set(re.findall(r'\("(\w+)",\s*(?:libc::SYS_\w+|\d+)\)', body))
    assert native == set(oci.DENIED_SYSCALLS) | set(oci.DENIED_X86_64)


def test_config_from_native_spec():
    from dockyard import _core

    spec = json.loads(_core.default_spec("rootfs", ["sh"]))
    spec["cgroup"] = {"path": "dockyard/abc", "resources": {"memory": 1 << 26,
                                                            "pids_limit": 0}}
    spec["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]
    cfg = oci.from_native(spec)
    assert cfg["root"]["path"] == os.path.abspath("rootfs")
    assert cfg["process"]["capabilities"]["effective"] == spec["capabilities"]["effective"]
    assert cfg["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]
    assert cfg["linux"]["cgroupsPath"] == "/dockyard/abc"
    assert cfg["linux"]["resources"]["memory"] == {"limit": 1 << 26}
    assert cfg["linux"]["resources"]["pids"] == {"limit": -1}
    assert cfg["linux"]["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert {n["type"] for n in cfg["linux"]["namespaces"]} == {
        "pid", "mount", "uts", "ipc", "network", "cgroup"}
    assert cfg["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ALLOW"
    assert "/proc/kcore" in cfg["linux"]["maskedPaths"]
    # --init: Docker's layout, the shim as /sbin/docker-init
    spec["init"] = True
    spec["mounts"].append({"destination": "/sbin", "type": "bind", "source": "/srv/sbin",
                           "options": ["rbind"]})
    cfg = oci.from_native(spec, init_binary="/bin/true")
    assert cfg["process"]["args"] == ["/sbin/docker-init", "--", "sh"]
    init = {"destination": "/sbin/docker-init", "type": "bind", "source": "/bin/true",
            "options": ["bind", "ro"]}
    dests = [m["destination"] for m in cfg["mounts"]]
    # before a mount on /sbin, which then hides it (runc makes no mountpoint
    # in the host's directory), as in Docker
    assert cfg["mounts"][dests.index("/sbin") - 1] == init
    assert oci.from_native(spec)["mounts"][dests.index("/sbin") - 1]["source"] == \
        _core.shim_path()


def _pt_interp(path: str) -> bool:
    """Whether the ELF file has a PT_INTERP program header (needs ld.so)."""
    import struct

    with open(path, "rb") as f:
        head = f.read(64)
        assert head[:4] == b"\x7fELF" and head[4] == 2 and head[5] == 1  # ELF64, LE
        e_phoff, = struct.unpack_from("<Q", head, 0x20)
        e_phentsize, e_phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(e_phoff)
        table = f.read(e_phentsize * e_phnum)
    return any(struct.unpack_from("<I", table, i * e_phentsize)[0] == 3  # PT_INTERP
               for i in range(e_phnum))


def test_shim_is_statically_linked():
    """The shim doubles as /sbin/docker-init in images without (our) libc."""
    from dockyard import _core

    assert _pt_interp(sys.executable)  # the check itself sees a dynamic executable
    assert not _pt_interp(_core.shim_path())
    # glibc marks what would need its shared libraries at run time (NSS:
    # getpwnam, getaddrinfo, ...) with a link warning kept in the binary; only
    # dlopen's, pulled in by libc itself (iconv, unused), may be there.
    data = Path(_core.shim_path()).read_bytes()
    needs = set(re.findall(rb"Using '(\w+)' in statically linked applications", data))
    assert needs <= {b"dlopen", b"dlmopen"}, needs


def test_daemon_config_key(tmp_path):
    from dockyard.daemon.config import ConfigError, load

    f = tmp_path / "daemon.json"
    f.write_text('{"exec-driver": "runc"}')
    assert load({}, str(f)).exec_driver == "runc"
    with pytest.raises(ConfigError, match="the following directives are specified both"):
        load({"exec-driver": "native"}, str(f))
    f.write_text('{"exec-driver": "lxc"}')
    with pytest.raises(ConfigError, match="want native or runc"):
        load({}, str(f))


# --- run ----------------------------------------------------------------------------

def test_info_shows_runtime(runc_daemon):
    info = json.loads(runc_daemon.docker("info", "-f", "{{json .}}").stdout)
    assert info["DefaultRuntime"] == "runc"
    assert set(info["Runtimes"]) == {"native", "runc"}


def test_run_output_and_exit_codes(runc_daemon):
    d = runc_daemon
    r = d.docker("run", "--rm", "busybox", "echo", "hi")
    assert r.stdout == b"hi\n"
    assert d.docker("run", "--rm", "busybox", "sh", "-c", "exit 3", check=False).returncode == 3
    r = d.docker("run", "--rm", "busybox", "nope", check=False)
    assert r.returncode == 127
    assert b'exec: "nope": executable file not found in $PATH' in r.stderr
    r = d.docker("run", "--rm", "busybox", "/etc/passwd", check=False)
    assert r.returncode == 126, r.stderr
    assert b"permission denied" in r.stderr
    # stdin through the shim's pipe
    r = d.docker("run", "--rm", "-i", "busybox", "cat", input=b"piped\n")
    assert r.stdout == b"piped\n"


def test_init(runc_daemon, names):
    """--init as Docker does it: the (static) shim bind-mounted at
    /sbin/docker-init is PID 1, the command its child; statuses, signals and
    orphans go through it. The busybox image has no /sbin and no libc."""
    d = runc_daemon
    run = ("run", "--rm", "--init", "--runtime", "runc", "busybox")
    assert d.docker("run", "--rm", "busybox", "ls", "/lib", "/sbin", check=False).returncode != 0
    r = d.docker(*run, "cat", "/proc/1/cmdline")
    assert r.stdout == b"/sbin/docker-init\0--\0cat\0/proc/1/cmdline\0"
    pid, ppid = d.docker(*run, "sh", "-c", "echo $$ $PPID").stdout.split()
    assert pid != b"1" and ppid == b"1"
    assert d.docker(*run, "sh", "-c", "exit 3", check=False).returncode == 3
    assert d.docker(*run, "sh", "-c", "kill -9 $$", check=False).returncode == 137
    r = d.docker(*run, "nope", check=False)
    assert r.returncode == 127
    assert b'exec: "nope": executable file not found in $PATH' in r.stderr
    r = d.docker(*run, "/etc/passwd", check=False)
    assert r.returncode == 126 and b"permission denied" in r.stderr
    r = d.docker(*run, "sh", "-c", "cat > /dev/null; echo done", input=b"x" * 100000)
    assert r.stdout == b"done\n"  # stdin reaches the command
    # as another user, on a read-only rootfs (the mountpoint is made before)
    r = d.docker("run", "--rm", "--init", "--user", "65534:65534", "--read-only", "busybox",
                 "sh", "-c", "id -u; ls -l /sbin/docker-init")
    uid, ls = r.stdout.decode().splitlines()
    assert uid == "65534" and ls.startswith("-r")

    # orphans are reaped by the init (without it, `exec sleep` as PID 1 leaves a zombie)
    def zombies(*opts: str) -> int:
        n = names()
        d.docker("run", "-d", "--name", n, *opts, "busybox", "sh", "-c",
                 "sh -c 'sleep 0.1 &'; exec sleep 300")
        time.sleep(0.6)
        stat = d.docker("exec", n, "sh", "-c", "cat /proc/[0-9]*/stat").stdout.decode()
        d.docker("rm", "-f", n)
        return sum(1 for ln in stat.splitlines() if ln.rsplit(")", 1)[1].split()[0] == "Z")
    assert zombies() == 1
    assert zombies("--init") == 0

    # the init forwards docker stop's SIGTERM: the sleep dies at once (143),
    # where a plain PID 1 sleep would ignore it until the SIGKILL
    n = names()
    d.docker("run", "-d", "--init", "--name", n, "busybox", "sleep", "300")
    t0 = time.monotonic()
    d.docker("stop", "-t", "20", n)
    assert time.monotonic() - t0 < 10
    assert d.docker("inspect", "-f", "{{.State.ExitCode}} {{.HostConfig.Init}}",
                    n).stdout == b"143 true\n"
    cid = container_id(d, n)
    d.docker("rm", n)
    assert_gone(d, cid)
    # a terminal: the command still has it, and its status comes back
    cmd = [sys.executable, "-m", "dockyard", "run", "--rm", "-t", "--init", "busybox", "sh", "-c",
           "tty; exit 2"]
    out, code = in_pty(d, cmd)
    assert code == 2, out
    assert b"/dev/pts/0" in out


def test_init_native_unchanged(runc_daemon):
    """--init under the native driver is still the runtime's own reaper: no
    bind mount, PID 1 is not /sbin/docker-init."""
    d = runc_daemon
    r = d.docker("run", "--rm", "--init", "--runtime", "native", "busybox", "sh", "-c",
                 "echo $$ $PPID; test -e /sbin/docker-init && echo mounted; head -c 17 "
                 "/proc/1/cmdline")
    ids, cmdline = r.stdout.split(b"\n", 1)
    pid, ppid = ids.split()
    assert pid != b"1" and ppid == b"1"
    assert cmdline != b"/sbin/docker-init" and b"mounted" not in cmdline
    r = d.docker("run", "--rm", "--init", "--runtime", "native", "busybox", "sh", "-c",
                 "exit 7", check=False)
    assert r.returncode == 7


def test_detached_logs_stop_kill_rm(runc_daemon, names):
    d, n = runc_daemon, names()
    d.docker("run", "-d", "--name", n, "busybox", "sh", "-c",
             "trap 'echo bye; exit 0' TERM; echo started; while :; do sleep 0.1; done")
    cid = container_id(d, n)
    assert d.docker("inspect", "-f", "{{.HostConfig.Runtime}}", n).stdout == b"runc\n"
    bundle = json.loads((d.base / "exec/containers" / cid / "bundle/config.json").read_text())
    assert os.path.isabs(bundle["root"]["path"])
    assert (d.base / "exec/runc" / cid / "state.json").exists()
    pid = int(d.docker("inspect", "-f", "{{.State.Pid}}", n).stdout)
    assert (d.base / "exec/containers" / cid / "pid").read_text() == str(pid)
    assert os.readlink(f"/proc/{pid}/exe").endswith("busybox")
    deadline = time.monotonic() + 10
    while b"started" not in d.docker("logs", n).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    d.docker("stop", n)
    assert d.docker("inspect", "-f", "{{.State.ExitCode}}", n).stdout == b"0\n"
    assert d.docker("logs", n).stdout == b"started\nbye\n"
    assert not (d.base / "exec/runc" / cid).exists()  # the shim ran `runc delete`
    assert not cgroups_of(cid)
    # started again (same runc id), then killed, waited for and removed
    d.docker("start", n)
    d.docker("kill", n)
    assert d.docker("wait", n).stdout == b"137\n"
    d.docker("rm", n)
    assert_gone(d, cid)


def test_attach_restart_policy_and_reaping(runc_daemon, names):
    d, n, m = runc_daemon, names(), names()
    d.docker("run", "-d", "-i", "--name", n, "busybox", "sh", "-c", "read x; echo got $x")
    shim = int((d.base / "exec/containers" / container_id(d, n) / "shim.pid").read_text())
    # the shim's only child is the container's init (runc's processes are reaped)
    kids = open(f"/proc/{shim}/task/{shim}/children").read().split()
    assert kids == [d.docker("inspect", "-f", "{{.State.Pid}}", n).stdout.decode().strip()]
    r = d.docker("attach", n, input=b"hello\n")
    assert r.stdout == b"got hello\n"
    assert d.docker("wait", n).stdout == b"0\n"
    d.docker("run", "-d", "--name", m, "--restart", "on-failure:2", "busybox", "sh", "-c",
             "echo run; exit 1")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the first run and two restarts
        if d.docker("logs", m).stdout == b"run\nrun\nrun\n":
            break
        time.sleep(0.1)
    assert d.docker("wait", m).stdout == b"1\n"
    assert d.docker("logs", m).stdout == b"run\nrun\nrun\n"
    assert d.docker("inspect", "-f", "{{.RestartCount}}", m).stdout == b"2\n"


def test_exec(runc_daemon, names):
    d, n = runc_daemon, names()
    d.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    r = d.docker("exec", n, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname")
    cid = container_id(d, n)
    assert r.stdout == f"sleep 300 \n{cid[:12]}\n".encode()
    assert d.docker("exec", n, "sh", "-c", "exit 5", check=False).returncode == 5
    assert d.docker("exec", n, "grep", "CapEff", "/proc/self/status").stdout.split()[1] == \
        DEFAULT_CAPEFF.encode()
    d.docker("rm", "-f", n)
    assert_gone(d, cid)


def test_cgroup_limits_pause_top(runc_daemon, names):
    d, n = runc_daemon, names()
    d.docker("run", "-d", "--name", n, "-m", "64m", "--pids-limit", "50", "--cpu-shares", "512",
             "busybox", "sleep", "300")
    cid = container_id(d, n)
    host = Path("/sys/fs/cgroup/memory/dockyard") / cid
    if host.exists():  # cgroup v1 (the native driver's place)
        assert (host / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
        assert (Path("/sys/fs/cgroup/pids/dockyard") / cid / "pids.max").read_text() == "50\n"
        assert (Path("/sys/fs/cgroup/cpu/dockyard") / cid / "cpu.shares").read_text() == "512\n"
        inside = d.docker("exec", n, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert inside.stdout.strip() == str(64 << 20).encode()
    else:
        host = Path("/sys/fs/cgroup/dockyard") / cid
        assert (host / "memory.max").read_text().strip() == str(64 << 20)
    # the ops that work on the cgroup
    assert b"sleep 300" in d.docker("top", n).stdout
    d.docker("pause", n)
    assert d.docker("inspect", "-f", "{{.State.Status}}", n).stdout == b"paused\n"
    d.docker("unpause", n)
    stats = json.loads(d.docker("stats", "--no-stream", "--format", "{{json .}}", n).stdout)
    assert stats["MemUsage"].endswith("64MiB")
    d.docker("rm", "-f", n)
    assert_gone(d, cid)


def test_capabilities_and_seccomp(runc_daemon):
    d = runc_daemon

    def capeff(*opts: str) -> str:
        out = d.docker("run", "--rm", *opts, "busybox", "grep", "CapEff", "/proc/self/status")
        return out.stdout.decode().split()[1]
    assert capeff() == DEFAULT_CAPEFF  # Docker's 14, as the native driver
    assert capeff("--cap-drop", "ALL") == "0000000000000000"
    assert int(capeff("--cap-add", "SYS_ADMIN"), 16) == int(DEFAULT_CAPEFF, 16) | (1 << 21)
    bnd = next(ln for ln in open("/proc/self/status") if ln.startswith("CapBnd"))
    assert capeff("--privileged") == bnd.split()[1]
    # mount(2) is on the deny-list: refused even with CAP_SYS_ADMIN, unless unconfined
    mnt = ["busybox", "mount", "-t", "tmpfs", "t", "/tmp"]
    r = d.docker("run", "--rm", "--cap-add", "SYS_ADMIN", *mnt, check=False)
    assert r.returncode != 0 and b"permission denied" in r.stderr
    d.docker("run", "--rm", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
             *mnt)
    r = d.docker("run", "--rm", "busybox", "unshare", "-n", "true", check=False)
    assert r.returncode != 0


def test_devices(runc_daemon):
    """--device and --device-cgroup-rule reach runc's config: it makes the
    node and sets the device cgroup (on v2, its own eBPF program)."""
    d = runc_daemon
    out = d.docker("run", "--rm", "--device", "/dev/null:/dev/mynull:r", "busybox", "sh", "-c",
                   "stat -c %t:%T /dev/mynull; (: < /dev/mynull) && echo read-ok"
                   ).stdout.decode().split()
    assert out == ["1:3", "read-ok"]
    script = "mknod /tmp/x c 42 42 && (: < /tmp/x) 2>&1 | sed 's/.*: //'"
    out = d.docker("run", "--rm", "--device-cgroup-rule", "c 42:* r", "busybox", "sh", "-c",
                   script).stdout.decode().strip()
    assert out == "No such device or address"  # past the cgroup: no driver for 42
    assert d.docker("run", "--rm", "busybox", "sh", "-c", script).stdout.decode().strip() == \
        "Operation not permitted"


def test_tty(runc_daemon):
    cmd = [sys.executable, "-m", "dockyard", "run", "--rm", "-t", "busybox", "sh", "-c",
           "tty; exit 2"]
    out, code = in_pty(runc_daemon, cmd)
    assert code == 2, out
    assert b"/dev/pts/0" in out
    cmd = [sys.executable, "-m", "dockyard", "run", "--rm", "-it", "busybox", "sh"]
    out, code = in_pty(runc_daemon, cmd, send=b"echo hel''lo\rexit 7\r")
    assert code == 7, out
    assert b"hello" in out


def test_native_container_under_runc_daemon(runc_daemon):
    r = runc_daemon.docker("run", "--rm", "--runtime", "native", "busybox", "echo", "native")
    assert r.stdout == b"native\n"
    r = runc_daemon.docker("run", "--rm", "--runtime", "bogus", "busybox", "true", check=False)
    assert r.returncode != 0 and b"Unknown runtime specified bogus" in r.stderr


# --- restarts -----------------------------------------------------------------------

def test_survives_daemon_kill(tmp_path_factory, busybox_tar):
    """kill -9 the daemon while a runc container runs; a daemon restarted with
    the *native* driver still finds it running (its record says runc) and
    stops and removes it, runc state included."""
    base = tmp_path_factory.mktemp("daemon-runc-restart")
    d = _start(base, ["--exec-driver", "runc"])
    cid = ""
    try:
        d.docker("import", str(busybox_tar), "busybox:latest")
        d.docker("run", "-d", "--name", "keep", "busybox", "sh", "-c",
                 "echo up; exec sleep 300")
        cid = container_id(d, "keep")
        pid = int(d.docker("inspect", "-f", "{{.State.Pid}}", "keep").stdout)
        assert d.proc is not None
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        d.proc = None
        os.unlink(d.sock)
        assert os.path.exists(f"/proc/{pid}")
        d.extra = []  # back to the native driver
        d.start()
        assert d.docker("inspect", "-f", "{{.State.Running}} {{.State.Pid}}",
                        "keep").stdout == f"true {pid}\n".encode()
        assert d.docker("logs", "keep").stdout == b"up\n"
        r = d.docker("exec", "keep", "echo", "still here")
        assert r.stdout == b"still here\n"
        d.docker("stop", "-t", "1", "keep")
        assert d.docker("inspect", "-f", "{{.State.ExitCode}}", "keep").stdout == b"137\n"
        d.docker("rm", "keep")
        assert_gone(d, cid)
    finally:
        if cid:
            d.docker("rm", "-f", "keep", check=False)
        _finish(d, base)


def test_missing_runc_is_a_clear_error(tmp_path):
    d = Daemon(tmp_path, "overlay", extra=["--exec-driver", "runc"])
    os.environ["DOCKYARD_RUNC"] = str(tmp_path / "no-runc")
    try:
        with pytest.raises(RuntimeError, match="runc binary was not found"):
            d.start()
    finally:
        del os.environ["DOCKYARD_RUNC"]
        d.stop()
        unmount_all(tmp_path)


def test_custom_seccomp_profile(runc_daemon, tmp_path):
    """A custom profile reaches runc as the bundle's linux.seccomp."""
    import json

    p = tmp_path / "profile.json"
    p.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    d = runc_daemon
    r = d.docker("run", "--rm", "--security-opt", f"seccomp={p}", "busybox", "mkdir", "/x",
                 check=False)
    assert r.returncode == 1 and b"Operation not permitted" in r.stderr
    ok = d.docker("run", "--rm", "--security-opt", f"seccomp={p}", "busybox", "echo", "fine")
    assert ok.stdout == b"fine\n"
