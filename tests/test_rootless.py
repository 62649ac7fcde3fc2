"""The rootless daemon (issue 18, phase 1), run by an ordinary user of this
test's own (`dockyard-test-rless`, made here with `useradd` and removed at the
end with its /etc/subuid and /etc/subgid lines), on the real kernel:

- `dockyard daemon` as that user enters a user and mount namespace made by
  `dockyard-shim rootless-init`: the full map (`0 UID 1`, `1 START 65536`)
  through newuidmap/newgidmap when the `uidmap` package is installed and the
  user has ranges, else (or with DOCKYARD_ROOTLESS_SINGLE_ID=1) the single-ID
  map `0 UID 1`;
- the user's paths (`$XDG_RUNTIME_DIR/dockyard.sock`, `~/.local/share/dockyard`,
  `~/.config/dockyard/daemon.json`), found by the CLI by itself; `info` says
  `name=rootless`;
- overlay mounted with `userxattr` (the full-map daemon: opaque dirs and
  whiteouts through diff and commit) and vfs (the single-ID one);
- `dockyard import` of busybox, `run --rm --network none|host`, a detached
  container with a volume (exec, logs, top), files owned on
  the host by the subordinate IDs (or squashed to the user with one ID), an
  image needing IDs beyond the map refused with the numbers, `-m`, a ulimit
  above the user's, pause, bridge networks, published ports, a default bridge
  and `--userns-remap` refused with their fixed messages (or, with
  `rootless-limits: warn`, limits discarded with dockerd's warnings); the CLI's
  autostart of the user's daemon, and the daemon's clean exit when its
  launcher dies;
- the CI rootless suite's workflows, on the module daemon: pull from a local
  docker-registry, build (RUN, COPY, USER 1000), commit, save/load, kill -9 of
  the daemon (its launcher exits with it) and a restart that finds a running
  container and manages it, and a clean-up after which the user can remove
  the whole data root (nothing left owned by a subordinate ID, nothing running).

Limits on a pure cgroup v2 host with a delegated cgroup are tested in the VM
(tests/test_cgroup_v2_vm_rootless_inner.py). DOCKYARD_TEST_ROOTLESS_USER and
DOCKYARD_TEST_ROOTLESS_START give another user name and subordinate range, for
runs in parallel on one host.

Every command runs as the user through `setpriv`, in a private mount namespace
(made as root) where an interpreter under a directory the user can't traverse
(pyenv under /root) is made reachable; the daemon's own namespaces die with it.
Everything the user's processes (host uid or subordinate ids) still run is
killed by pid at the end, and the files (some owned by subordinate ids) are
removed as root.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import DOCKER_CLI, busybox_rootfs, drop_subid_ranges, make_tar

from dockyard import idmap

# Another name and range for runs in parallel on one host (other worktrees)
USER = os.environ.get("DOCKYARD_TEST_ROOTLESS_USER", "dockyard-test-rless")
START = int(os.environ.get("DOCKYARD_TEST_ROOTLESS_START", "400000"))
COUNT = 65536
HAVE_UIDMAP = all(shutil.which(t) for t in ("newuidmap", "newgidmap"))


def _hidden() -> tuple[str, str] | None:
    """(dir, child): the topmost ancestor of the interpreter others can't
    traverse, and its entry on the way to the interpreter (/root, /root/.pyenv)."""
    p = Path(sys.executable).resolve()
    parts = p.parts
    for i in range(1, len(parts) - 1):
        a = Path(*parts[:i + 1])
        if not a.stat().st_mode & 0o001:
            return str(a), str(Path(*parts[:i + 2]))
    return None


@pytest.fixture(scope="module")
def user():
    if shutil.which("useradd") is None or shutil.which("setpriv") is None:
        pytest.fail("useradd and setpriv are needed (Debian's passwd and util-linux)")
    subprocess.run(["userdel", USER], capture_output=True)
    drop_subid_ranges(USER)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    USER], check=True, capture_output=True)
    pw = pwd.getpwnam(USER)
    for path in (idmap.SUBUID, idmap.SUBGID):
        with open(path, "a") as f:
            f.write(f"{USER}:{START}:{COUNT}\n")
    # In /tmp itself: the user can't pass pytest's 0700 base directory.
    base = Path(tempfile.mkdtemp(prefix="dockyard-test-rless-"))
    base.chmod(0o755)
    try:
        yield pw, base
    finally:
        _kill_users_processes(pw.pw_uid)
        drop_subid_ranges(USER)
        subprocess.run(["userdel", USER], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _host_cgroups(uid: int) -> str:
    """What the rootless daemon says this host lacks for resource limits."""
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "cgroup v1"
    return f"cgroup v2, its cgroup {_own_cgroup()} not delegated to uid {uid}"


def _own_cgroup() -> str:
    return Path("/proc/self/cgroup").read_text().split("0::", 1)[-1].split()[0]


def _kill_users_processes(uid: int) -> None:
    """SIGKILL, by pid, what the test user left running (its uid or its
    subordinate ids: daemons, shims, containers)."""
    for _ in range(50):
        left = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                st = os.stat(f"/proc/{d}")
            except OSError:
                continue
            if st.st_uid == uid or START <= st.st_uid < START + COUNT:
                left.append(int(d))
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


class RootlessUser:
    """One home and runtime dir of the test user, and commands run as it."""

    def __init__(self, pw, base: Path, name: str, extra_env: dict[str, str] | None = None):
        self.pw = pw
        self.base = base / name
        self.home = self.base / "home"
        self.run = self.base / "run"
        for d in (self.base, self.home, self.run):
            d.mkdir(mode=0o700)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self.base.chmod(0o755)
        self.sock = self.run / "dockyard.sock"
        self.data_root = self.home / ".local" / "share" / "dockyard"
        self.env = {
            "HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.run),
            "PATH": f"{os.path.dirname(sys.executable)}:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "DOCKYARD_NO_AUTOSTART": "1",
            "LANG": "C.UTF-8", **(extra_env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.log = self.base / "daemon.log"
        #: run before the user's command, as root (e.g. joining a cgroup)
        self.prelude = ""

    def argv(self, *cmd: str) -> list[str]:
        script = ""
        hidden = _hidden()
        if hidden:
            top, child = hidden
            hold = self.base / "hold"
            script = (f"mkdir -p {hold} && mount --bind {shlex.quote(child)} {hold} && "
                      f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(top)} && "
                      f"mkdir -p {shlex.quote(child)} && mount --move {hold} "
                      f"{shlex.quote(child)} && ")
        script += self.prelude + (f"exec setpriv --reuid={self.pw.pw_uid} --regid={self.pw.pw_gid} "
                   f"--clear-groups -- \"$@\"")
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *cmd]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(self.argv(sys.executable, "-m", "dockyard", *args), env=self.env,
                           capture_output=True, text=True, timeout=120, cwd="/")
        if check and r.returncode != 0:
            raise AssertionError(f"dockyard {args} failed ({r.returncode}): {r.stderr}")
        return r

    def start(self, *flags: str) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv(sys.executable, "-m", "dockyard", "daemon", *flags), env=self.env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd="/")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited:\n" + self.log.read_text())
            if self.sock.exists() and self.cli("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("daemon did not start:\n" + self.log.read_text())

    def daemon_pid(self) -> int:
        return int((self.run / "dockyard.pid").read_text())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the supervisor forwards it
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        elif self.proc is None and (self.run / "dockyard.pid").exists():
            # started by the CLI's autostart: not our child
            pid = self.daemon_pid()
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 20
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.05)
            if os.path.exists(f"/proc/{pid}"):
                os.kill(pid, signal.SIGKILL)
        self.proc = None


@pytest.fixture(scope="module")
def images(user) -> dict[str, Path]:
    """busybox with a file owned by 1000:1000, and one owned by 70000 (beyond
    a 65536-ID map), as tars the user can read."""
    _, base = user
    out = {}
    for name, uid in (("bb", 1000), ("big", 70000)):
        root = busybox_rootfs(base / f"{name}-rootfs", {"owned": b"x\n", "d/a": b"a\n",
                                                         "d/b": b"b\n"})
        os.chown(root / "owned", uid, uid)
        out[name] = make_tar(root, base / f"{name}.tar")
        out[name].chmod(0o644)
    return out


@pytest.fixture(scope="module")
def full(user, images):
    pw, base = user
    u = RootlessUser(pw, base, "full")
    try:
        u.start()
        u.cli("import", "-c", 'CMD ["sh"]', str(images["bb"]), "busybox:latest")
        yield u
    finally:
        u.stop()


def _owned_files(root: Path, name: str) -> list[os.stat_result]:
    """The stats of files called `name` under `root`, skipping what the
    daemon is removing meanwhile (a --rm container's layer)."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(".removing-")]
        if name in files:
            try:
                out.append(os.lstat(os.path.join(d, name)))
            except FileNotFoundError:
                pass
    return out


def test_daemon_enters_its_namespace_with_the_users_paths(full, user):
    pw, _ = user
    pid = full.daemon_pid()
    rows = Path(f"/proc/{pid}/uid_map").read_text().split()
    if HAVE_UIDMAP:
        assert rows == ["0", str(pw.pw_uid), "1", "1", str(START), str(COUNT)]
        assert Path(f"/proc/{pid}/gid_map").read_text().split() == \
            ["0", str(pw.pw_gid), "1", "1", str(START), str(COUNT)]
    else:
        assert rows == ["0", str(pw.pw_uid), "1"]
    # its own user and mount namespaces, the host's network namespace
    for ns, same in (("user", False), ("mnt", False), ("net", True)):
        assert (os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}")) \
            == same, ns
    assert os.stat(f"/proc/{pid}").st_uid == pw.pw_uid
    st = full.sock.lstat()
    assert (st.st_uid, st.st_mode & 0o777) == (pw.pw_uid, 0o600)
    assert full.data_root.is_dir() and (full.run / "dockyard").is_dir()
    # kernel 6.18 on ext4: overlay mounts in the user namespace with userxattr
    assert "rootless: storage driver overlay (mounted with userxattr)" in full.log.read_text()


def test_info_says_rootless(full):
    info = json.loads(full.cli("info", "--format", "{{json .}}").stdout)
    assert "name=rootless" in info["SecurityOptions"]
    assert info["Driver"] == "overlay" and info["CgroupDriver"] == "none"
    assert ["userxattr", "true"] in info["DriverStatus"]
    assert info["DockerRootDir"] == str(full.data_root)
    assert info["MemoryLimit"] is False and info["PidsLimit"] is False
    warnings = info["Warnings"] or []
    # Docker rootless's words, then what is missing and what limits do then
    if info["CgroupVersion"] == "1":
        assert warnings[0] == ("WARNING: Running in rootless-mode without cgroups. To enable "
                               "cgroups in rootless-mode, you need to boot the system in cgroup "
                               "v2 mode.")
        assert warnings[1] == ("WARNING: rootless: resource limits (-m, --cpus, --pids-limit, "
                               "...) are refused: cgroup v1; see `dockyard rootless check`")
    # /dev/net/tun is 0600 here (no udev) and there is no pasta: each said, with its fix
    assert any(w.startswith("WARNING: rootless: user-mode networking:") for w in warnings) or \
        shutil.which("pasta") or shutil.which("slirp4netns")


def test_run_as_root_inside_owned_by_subordinate_ids(full, user):
    pw, _ = user
    r = full.cli("run", "--rm", "--network", "none", "busybox", "id")
    assert r.stdout == "uid=0(root) gid=0(root) groups=0(root)\n"  # as Docker: the primary group too
    r = full.cli("run", "--rm", "--network", "host", "busybox", "echo", "hi")
    assert r.stdout == "hi\n"
    # the default bridge, in the daemon's own network namespace
    r = full.cli("run", "--rm", "busybox", "sh", "-c", "ls /sys/class/net")
    assert r.stdout.split() == ["eth0", "lo"]
    r = full.cli("run", "--rm", "busybox", "stat", "-c", "%u:%g", "/owned")
    if HAVE_UIDMAP:
        assert r.stdout == "1000:1000\n"
        want = (START + 999, START + 999)
    else:
        assert r.stdout == "0:0\n"
        want = (pw.pw_uid, pw.pw_gid)
    owned = _owned_files(full.data_root / "overlay", "owned")
    assert owned and all((s.st_uid, s.st_gid) == want for s in owned)
    busybox = _owned_files(full.data_root / "overlay", "busybox")
    assert busybox and all(s.st_uid == pw.pw_uid for s in busybox)


def test_overlay_opaque_dirs_and_whiteouts_in_user_xattrs(full):
    """A directory replaced in the container (opaque) and a file deleted
    (whiteout) reach diff and commit through user.overlay.* (userxattr)."""
    full.cli("run", "--name", "ov", "busybox", "sh", "-c",
             "rm -rf /d && mkdir /d && echo x > /d/new && rm /bin/vi")
    try:
        diff = full.cli("diff", "ov").stdout.split("\n")
        assert "D /bin/vi" in diff and "A /d/new" in diff
        full.cli("commit", "ov", "ov-img")
        r = full.cli("run", "--rm", "ov-img", "sh", "-c",
                     "ls /d; test -e /bin/vi || echo no vi; ls /bin/busybox")
        assert r.stdout == "new\nno vi\n/bin/busybox\n"
    finally:
        full.cli("rm", "-f", "ov", check=False)  # (the image goes with the data root)


def test_ids_beyond_the_map_fail_the_import(full, images):
    if not HAVE_UIDMAP:
        pytest.skip("needs the uidmap package (a full map)")
    r = full.cli("import", str(images["big"]), "big", check=False)
    assert r.returncode != 0
    assert (f"lchown owned: invalid argument: the image needs uid 70000 and gid 70000 but only "
            f"{COUNT + 1} uids and {COUNT + 1} gids are mapped in the rootless user namespace; "
            "give the user a larger range in /etc/subuid and /etc/subgid, then restart the "
            "daemon") in r.stderr


def test_docker_cli_and_sdk_with_docker_host(full):
    """The docker CLI and docker-py, run as the user with DOCKER_HOST at the
    user's socket, work unchanged."""
    env = dict(full.env, DOCKER_HOST=f"unix://{full.sock}",
               DOCKER_CONFIG=str(full.home / ".docker"))
    r = subprocess.run(full.argv(DOCKER_CLI or "docker", "run", "--rm", "busybox", "echo", "hi"),
                       env=env, capture_output=True, text=True, timeout=60, cwd="/")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    script = ("import docker; c = docker.from_env(); "
              "print(c.containers.run('busybox', 'echo sdk', remove=True).decode(), end=''); "
              "print('rootless' in str(c.info()['SecurityOptions']))")
    r = subprocess.run(full.argv(sys.executable, "-c", script), env=env, capture_output=True,
                       text=True, timeout=60, cwd="/")
    assert (r.returncode, r.stdout) == (0, "sdk\nTrue\n"), r.stderr


def test_limits_networks_and_remap_refused(full, user):
    pw, _ = user
    host = _host_cgroups(pw.pw_uid)
    r = full.cli("run", "--rm", "-m", "64m", "busybox", "true", check=False)
    assert r.returncode == 125
    assert r.stderr.startswith(
        f"dockyard: Error response from daemon: rootless: --memory needs cgroup v2 with the "
        f"memory controller delegated to uid {pw.pw_uid} (this host: {host}); see `dockyard "
        "rootless check`.")
    # no CAP_SYS_RESOURCE over the host: no hard limit above the user's
    r = full.cli("run", "--rm", "--ulimit", "nofile=100:99999999", "busybox", "true", check=False)
    assert r.returncode != 0
    assert ("rootless: ulimit RLIMIT_NOFILE: hard limit 99999999 is above the daemon user's "
            "hard limit ") in r.stderr
    r = full.cli("run", "--rm", "--oom-score-adj", "-500", "busybox", "true", check=False)
    assert r.returncode == 125
    assert "rootless: --oom-score-adj -500 is below the daemon's own (0): an unprivileged " \
        "user can only raise it" in r.stderr
    assert full.cli("run", "--rm", "--oom-score-adj", "300", "busybox", "cat",
                    "/proc/self/oom_score_adj").stdout == "300\n"
    # a --device is the host's node bound in: the user must be able to open it
    r = full.cli("run", "--rm", "--device", "/dev/kmsg", "busybox", "true", check=False)
    assert r.returncode == 125
    assert "rootless: device /dev/kmsg: this user cannot open it (read-write); give the user " \
        "access to it (its group or mode), as root" in r.stderr
    r = full.cli("run", "--rm", "--device", "/dev/null:/dev/mynull", "busybox", "sh", "-c",
                 "echo x > /dev/mynull && echo ok")
    assert r.stdout == "ok\n"
    r = full.cli("daemon", "--userns-remap", "default", check=False)
    assert r.returncode == 1
    assert r.stderr.endswith("failed to start daemon: --userns-remap is not supported in "
                             "rootless mode: the daemon already runs in a user namespace of "
                             "its own\n")


def test_networks_and_ports_without_a_way_out(full):
    """Without slirp4netns or a usable /dev/net/tun (0600 here, no udev;
    tests/test_rootless_network.py makes it usable) the rootless daemon's
    networks reach nothing beyond the host, but still work between containers,
    and published ports are forwarded from the host's loopback."""
    if shutil.which("slirp4netns") and os.stat("/dev/net/tun").st_mode & 0o006 == 0o006:
        pytest.skip("/dev/net/tun is usable: tests/test_rootless_network.py covers this")
    full.cli("network", "create", "nowayout")
    try:
        full.cli("run", "-d", "--name", "srv", "--network", "nowayout", "-p", "127.0.0.1::80",
                 "busybox", "sh", "-c", "while true; do echo hello | nc -l -p 80; done")
        port = int(full.cli("port", "srv", "80").stdout.strip().rsplit(":", 1)[1])
        got = b""
        deadline = time.monotonic() + 20
        while b"hello" not in got and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    got = s.recv(100)
            except OSError:
                time.sleep(0.1)
        assert got == b"hello\n"
        # the other container finds it by name through the embedded DNS
        r = full.cli("run", "--rm", "--network", "nowayout", "busybox", "nc", "srv", "80")
        assert r.stdout == "hello\n"
    finally:
        full.cli("rm", "-f", "srv", check=False)
        full.cli("network", "rm", "nowayout", check=False)


def test_single_id_map(user, images):
    pw, base = user
    u = RootlessUser(pw, base, "single", {"DOCKYARD_ROOTLESS_SINGLE_ID": "1"})
    try:
        # The CLI starts the user's daemon by itself (at the user's socket).
        del u.env["DOCKYARD_NO_AUTOSTART"]
        # Other owners are squashed to the user (the one ID there is).
        # vfs here (overlay is the full-map daemon's), through the user's config file
        conf = u.home / ".config" / "dockyard"
        conf.mkdir(parents=True)
        # and Docker's behaviour for limits it can't apply: discarded, with a warning
        (conf / "daemon.json").write_text('{"storage-driver": "vfs", "rootless-limits": "warn"}')
        os.chown(conf.parent, pw.pw_uid, pw.pw_gid)
        os.chown(conf, pw.pw_uid, pw.pw_gid)
        r = u.cli("import", str(images["bb"]), "busybox")
        log = u.home / ".local" / "state" / "dockyard" / "daemon.log"
        assert r.stderr.startswith(f"dockyard: no daemon answered at unix://{u.sock}; started "
                                   "one in the background (pid ")
        assert f"log {log});" in r.stderr
        assert Path(f"/proc/{u.daemon_pid()}/uid_map").read_text().split() == \
            ["0", str(pw.pw_uid), "1"]
        assert "rootless: only uid" in log.read_text()
        r = u.cli("run", "--rm", "busybox", "sh", "-c", "id; stat -c %u:%g /owned")
        assert r.stdout == "uid=0(root) gid=0(root)\n0:0\n"
        owned = _owned_files(u.data_root / "vfs", "owned")
        assert owned and all((s.st_uid, s.st_gid) == (pw.pw_uid, pw.pw_gid) for s in owned)
        r = u.cli("run", "--rm", "-m", "64m", "--pids-limit", "10", "busybox", "true")
        assert r.stderr == (
            "WARNING: Your kernel does not support memory limit capabilities or the cgroup is "
            "not mounted. Limitation discarded.\nWARNING: Your kernel does not support PIDs "
            "limit capabilities or the cgroup is not mounted. PIDs limit discarded.\n")
        info = json.loads(u.cli("info", "--format", "{{json .}}").stdout)
        assert info["Driver"] == "vfs"
        assert any("are ignored, with a warning (rootless-limits: warn)" in w
                   for w in info["Warnings"])
        assert any("single-ID map" in w for w in info["Warnings"])
        # The launcher killed, the daemon gets SIGTERM (its parent-death
        # signal) and shuts down cleanly: the socket goes.
        pid = u.daemon_pid()
        stat = Path(f"/proc/{pid}/stat").read_text()
        launcher = int(stat.rsplit(")", 1)[1].split()[1])
        assert Path(f"/proc/{launcher}/cmdline").read_bytes().split(b"\0")[1] == b"rootless-init"
        os.kill(launcher, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{pid}") and not u.sock.exists()
        # The same data root under the full map: its files belong to other IDs.
        del u.env["DOCKYARD_ROOTLESS_SINGLE_ID"]
        r = subprocess.run(u.argv(sys.executable, "-m", "dockyard", "daemon"), env=u.env,
                           capture_output=True, text=True, timeout=60, cwd="/")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "rootless: the user namespace's ID maps changed since" in r.stderr
        assert f"then: uid 0 {pw.pw_uid} 1; gid 0 {pw.pw_gid} 1; now: uid 0 {pw.pw_uid} 1 1 " \
            in r.stderr
    finally:
        u.stop()


def test_install_writes_a_user_service(user):
    pw, base = user
    u = RootlessUser(pw, base, "install")
    r = u.cli("rootless", "install")
    unit = u.home / ".config" / "systemd" / "user" / "dockyard.service"
    assert r.stdout.startswith(f"wrote {unit}\n")
    assert f"loginctl enable-linger {pw.pw_name}" in r.stdout
    text = unit.read_text()
    assert f"ExecStart={sys.executable} -m dockyard daemon\n" in text
    assert "Type=notify\nNotifyAccess=all\n" in text and "WantedBy=default.target" in text
    assert unit.stat().st_uid == pw.pw_uid
    # root has no user service to install
    r = subprocess.run([sys.executable, "-m", "dockyard", "rootless", "install"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "for an ordinary user" in r.stderr


def test_runtime_dir_fallback(user):
    """Without XDG_RUNTIME_DIR: /tmp/dockyard-UID, made 0700; anything else
    there (here a symlink) is refused."""
    pw, _ = user
    fallback = Path(f"/tmp/dockyard-{pw.pw_uid}")
    shutil.rmtree(fallback, ignore_errors=True)
    code = ("import os; from dockyard import rootless; from dockyard.cli import client; "
            "p = rootless.user_paths(os.getuid()); rootless.make_fallback_dir(p.runtime_dir); "
            "print(p.host, p.fallback, client.default_host() == p.host)")
    r = RootlessUser(pw, user[1], "fallback")
    del r.env["XDG_RUNTIME_DIR"]
    try:
        out = subprocess.run(r.argv(sys.executable, "-c", code), env=r.env, capture_output=True,
                             text=True, timeout=60)
        assert out.stdout == f"unix://{fallback}/dockyard.sock True True\n", out.stderr
        st = fallback.lstat()
        assert (st.st_uid, st.st_mode & 0o7777) == (pw.pw_uid, 0o700)
        fallback.rmdir()
        fallback.symlink_to("/tmp")
        out = subprocess.run(r.argv(sys.executable, "-m", "dockyard", "daemon"), env=r.env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1
        assert out.stderr == (f"failed to start daemon: {fallback} exists and is not a 0700 "
                              "directory of yours: remove it, or set XDG_RUNTIME_DIR\n")
    finally:
        if fallback.is_symlink():
            fallback.unlink()
        shutil.rmtree(fallback, ignore_errors=True)





def test_detached_with_a_volume_exec_logs_top(full):
    """Volumes, exec, logs; top lists the process tree (no cgroup), pause is
    refused (no freezer)."""
    full.cli("run", "-d", "--name", "bg", "-v", "v1:/data", "busybox", "sh", "-c",
             "echo started > /data/f; cat /data/f; exec sleep 60")
    try:
        assert full.cli("exec", "bg", "sh", "-c", "id -u; cat /data/f").stdout == "0\nstarted\n"
        assert full.cli("logs", "bg").stdout == "started\n"
        top = full.cli("top", "bg").stdout.splitlines()
        assert len(top) == 2 and top[1].endswith("sleep 60")
        r = full.cli("pause", "bg", check=False)
        uid = full.pw.pw_uid
        assert r.stderr == ("Error response from daemon: rootless: pause needs the container's "
                            f"cgroup (the freezer): cgroup v2 delegated to uid {uid} (this host: "
                            f"{_host_cgroups(uid)}); see `dockyard rootless check`\n")
        r = full.cli("update", "--pids-limit", "10", "bg", check=False)
        assert r.stderr == ("Error response from daemon: rootless: --pids-limit needs cgroup v2 "
                            f"with the pids controller delegated to uid {uid} (this host: "
                            f"{_host_cgroups(uid)}); see `dockyard rootless check`\n")
    finally:
        full.cli("rm", "-f", "-v", "bg", check=False)
        full.cli("volume", "rm", "v1", check=False)


# --- the CI rootless suite's workflows: pull, build, commit, save/load, restart, clean-up ----

def test_pull_from_a_local_registry(full, registry, busybox_image):
    """The daemon stays in the host's network namespace: a registry on the
    host's loopback is reachable (127.0.0.0/8 is insecure by default)."""
    full.cli("pull", busybox_image.ref)
    r = full.cli("run", "--rm", busybox_image.ref, "sh", "-c", "id -u; ls /bin/busybox")
    assert r.stdout == "0\n/bin/busybox\n"


def test_build_run_copy_user(full, user):
    """RUN (a container in the user namespace), COPY, and USER with a
    non-root id (mapped to a subordinate ID)."""
    ctx = full.base / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello\n")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nCOPY hello.txt /hello.txt\nRUN mkdir /app && chown 1000:1000 /app\n"
        "USER 1000:1000\nRUN id -u > /app/uid && cat /hello.txt > /app/copied\n"
        'CMD ["sh", "-c", "id -u; cat /app/uid /app/copied; stat -c %u /app/uid"]\n')
    for p in (ctx, ctx / "hello.txt", ctx / "Dockerfile"):
        os.chown(p, user[0].pw_uid, user[0].pw_gid)
    full.cli("build", "-q", "-t", "built", str(ctx))
    r = full.cli("run", "--rm", "built")
    assert r.stdout.split() == ["1000", "1000", "hello", "1000"]


def test_save_load_commit(full):
    """A changed container committed, saved, removed and loaded back runs
    with the change."""
    full.cli("run", "--name", "chg", "busybox", "sh", "-c", "echo changed > /state")
    tar = full.base / "img.tar"
    try:
        full.cli("commit", "chg", "changed:v1")
        full.cli("save", "-o", str(tar), "changed:v1")
        full.cli("rmi", "changed:v1")
        r = full.cli("load", "-i", str(tar))
        assert r.stdout.strip() == "Loaded image: changed:v1"
        assert full.cli("run", "--rm", "changed:v1", "cat", "/state").stdout == "changed\n"
    finally:
        full.cli("rm", "-f", "chg", check=False)
        tar.unlink(missing_ok=True)


def _launcher_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_kill_9_and_restart_keeps_a_running_container(full):
    """kill -9 of the daemon: its launcher exits with it (no stray
    supervisor); the container keeps running under its shim, and a new
    daemon finds it running and manages it."""
    cid = full.cli("run", "-d", "--name", "survivor", "busybox", "sleep", "600").stdout.strip()
    try:
        pid = full.daemon_pid()
        launcher = _launcher_of(pid)
        cpid = int(full.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout)
        os.kill(pid, signal.SIGKILL)
        assert full.proc is not None
        assert full.proc.wait(20) == 128 + signal.SIGKILL
        assert not os.path.exists(f"/proc/{launcher}")
        assert os.path.exists(f"/proc/{cpid}")
        full.start()
        r = full.cli("ps", "--format", "{{.Names}} {{.Status}}")
        assert r.stdout.startswith("survivor Up")
        assert full.cli("exec", "survivor", "echo", "in").stdout == "in\n"
        full.cli("stop", "-t", "0", "survivor")
        assert not os.path.exists(f"/proc/{cpid}")
    finally:
        full.cli("rm", "-f", "survivor", check=False)


def test_clean_up_leaves_nothing_behind(full, user):
    """Last of the module daemon's tests: with its containers, images and
    volumes removed and the daemon stopped, nothing of the user's runs, and
    the user (not root) can remove the whole data root: no file is left
    owned by a subordinate ID."""
    pw, _ = user
    for c in full.cli("ps", "-aq").stdout.split():
        full.cli("rm", "-f", "-v", c)
    # (as dockerd, a prune takes images without children: a base goes next time)
    for _ in range(3):
        full.cli("image", "prune", "-af")
    assert full.cli("images", "-aq").stdout == ""
    full.cli("volume", "prune", "-f")
    full.cli("builder", "prune", "-af", check=False)
    full.stop()
    # (the idle shims the daemon let go at exit may take a moment)
    deadline = time.monotonic() + 20
    while True:
        left = [d for d in os.listdir("/proc") if d.isdigit() and
                (START <= _uid_of(d) < START + COUNT or _uid_of(d) == pw.pw_uid)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == [], [Path(f"/proc/{d}/cmdline").read_bytes() for d in left]
    assert not full.sock.exists()
    subids = [os.path.join(d, f) for d, dirs, files in os.walk(full.data_root)
              for f in dirs + files
              if START <= os.lstat(os.path.join(d, f)).st_uid < START + COUNT]
    assert subids == [], subids[:10]
    r = subprocess.run(full.argv("rm", "-rf", str(full.data_root)), env=full.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not full.data_root.exists(), r.stderr


def _uid_of(pid: str) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1
