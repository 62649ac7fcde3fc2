"""Shared fixtures: a busybox rootfs tarball made from the host's
busybox-static, a Dockyard daemon on a private socket and data root, and the
real docker CLI pointed at it. Everything started here is stopped, and every
mount under the test's directories is unmounted, even when a test fails."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

pytest_plugins = ["registries"]  # registry fixtures: tests/registries.py

from dockyard.network.service import NetworkOptions  # noqa: E402

# Engines made in tests touch no network outside their containers' own namespaces.
NO_NETWORK = NetworkOptions(bridge="none", iptables=False)

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
DOCKER_CLI = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")


def pytest_collection_modifyitems(session, config, items) -> None:
    """The pure cgroup v2 VM boots in the background from the start and its
    test runs last (tests/test_cgroup_v2_vm.py): its minute or two of TCG
    overlaps the rest of the suite."""
    vm = [i for i in items if i.nodeid.startswith("tests/test_cgroup_v2_vm.py::")]
    if not vm or len(vm) == len(items):
        return
    for item in vm:
        items.remove(item)
        items.append(item)
    if os.geteuid() == 0:
        vm[0].module.start_in_background()


def mounts_under(path: str | Path) -> list[str]:
    p = str(path)
    out = []
    with open("/proc/self/mounts") as f:
        for line in f:
            mp = line.split()[1].replace("\\040", " ")
            if mp == p or mp.startswith(p + "/"):
                out.append(mp)
    return out


def unmount_all(path: str | Path) -> None:
    for mp in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], check=False)


def assert_no_mounts_left(path: str | Path) -> None:
    """Fail if anything is still mounted below `path`, after unmounting it
    (so a failing test still leaves the host clean)."""
    leaked = mounts_under(path)
    unmount_all(path)
    assert not leaked, f"mounts left behind: {leaked}"


def assert_no_network_left() -> None:
    """Fail if a daemon under test left a bridge, a veth or our packet rules in
    the host's network namespace (test daemons here run without a bridge)."""
    from dockyard import _core

    links = [n for p in ("dockyard0", "dy-", "dyv") for n in _core.link_names(p)]
    assert not links, f"links left behind: {links}"
    if shutil.which("nft"):
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        assert "inet dockyard" not in tables, "the nftables table inet dockyard was left behind"


def stop_and_check(d: "Daemon", base: Path) -> None:
    """Stop a test's daemon, kill what it left running and unmount what it left
    mounted under `base`; then fail if there was any."""
    d.stop()
    left = kill_containers_left(base)
    leaked = mounts_under(base)
    unmount_all(base)
    assert not leaked, f"mounts left behind: {leaked}"
    assert not left, f"containers left running: {left}"


def kill_containers_left(base: Path) -> list[str]:
    """Kill whatever containers of the daemon under `base` still run (their
    shims, their processes) and remove their cgroups: a shim killed with -9
    can't remove its own. For finalizers, after the daemon could not be asked
    (it died, or would not start again). Returns the containers it found."""
    subprocess.run(["pkill", "-9", "-f", f"dockyard-shim.*{base}"], check=False)
    ids = {p.name for p in (base / "root" / "containers").glob("*") if len(p.name) == 64}
    found = set()
    cg = Path("/sys/fs/cgroup")
    for d in [*cg.glob("*/dockyard/*"), *cg.glob("dockyard/*")]:
        if d.name not in ids:
            continue
        found.add(d.name)
        for _ in range(50):
            try:
                for pid in (d / "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # processes still exiting
                time.sleep(0.05)
    for parent in [*cg.glob("*/dockyard"), cg / "dockyard"]:
        try:
            parent.rmdir()  # only when empty: another engine may use it
        except OSError:
            pass
    return sorted(found)


def busybox_rootfs(dest: Path, extra: dict[str, bytes] | None = None) -> Path:
    (dest / "bin").mkdir(parents=True)
    (dest / "etc").mkdir()
    (dest / "tmp").mkdir(mode=0o1777)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", dest / "bin" / a)
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "nobody:x:65534:65534:nobody:/:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    for name, data in (extra or {}).items():
        p = dest / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return dest


def make_tar(root: Path, out: Path, compression: str = "") -> Path:
    mode = "w:gz" if compression == "gz" else "w"
    with tarfile.open(out, mode, format=tarfile.PAX_FORMAT) as t:
        for p in sorted(root.rglob("*")):
            t.add(p, arcname=str(p.relative_to(root)), recursive=False)
    return out


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("busybox")
    root = busybox_rootfs(d / "rootfs")
    return make_tar(root, d / "busybox.tar")


class Daemon:
    def __init__(self, base: Path, driver: str, extra: list[str] | None = None) -> None:
        self.extra = list(extra or [])
        self.base = base
        self.sock = base / "dockyard.sock"
        self.root = base / "root"
        self.host = f"unix://{self.sock}"
        self.driver = driver
        self.proc: subprocess.Popen | None = None
        self.log = base / "daemon.log"
        self.daemon_env: dict[str, str] = {}  # more environment for the daemon

    def command(self) -> list[str]:
        # No bridge and no packet rules in the host's network namespace: tests of
        # networking run their daemon in a namespace of their own (test_network.py).
        net = [] if any(a.startswith(("-b", "--bridge")) for a in self.extra) else \
            ["--bridge", "none", "--iptables=false"]
        return [sys.executable, "-m", "dockyard", "daemon", "-H", self.host, "-g",
                str(self.root), "--exec-root", str(self.base / "exec"), "-p",
                str(self.base / "dockyard.pid"), "-s", self.driver, "-D", *net, *self.extra]

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command(), stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **self.daemon_env),
                                     start_new_session=True)
        # Under TCG (the cgroup v2 VM) a cold start alone can take 30 s.
        deadline = time.monotonic() + (120 if os.environ.get("DOCKYARD_VM_INNER") else 30)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited:\n" + self.log.read_text())
            if self.sock.exists():
                from dockyard.cli.client import Client

                if Client(self.host).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("daemon did not start:\n" + self.log.read_text())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DOCKER_HOST", None)
        env["DOCKYARD_HOST"] = self.host
        env["DOCKER_HOST"] = self.host
        env["DOCKYARD_NO_AUTOSTART"] = "1"
        return env

    def cli(self, *args: str, input: bytes | None = None, check: bool = True
            ) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "dockyard", *args], env=self.env(),
                           input=input, capture_output=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"dockyard {args} failed ({r.returncode}): "
                                 f"{r.stderr.decode()}")
        return r

    def docker(self, *args: str, input: bytes | None = None, check: bool = True
               ) -> subprocess.CompletedProcess:
        if DOCKER_CLI is None:
            pytest.skip("the docker CLI is not installed")
        env = self.env()
        env["DOCKER_CONFIG"] = str(self.base / "docker-config")
        r = subprocess.run([DOCKER_CLI, *args], env=env, input=input, capture_output=True,
                           timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {args} failed ({r.returncode}): {r.stderr.decode()}")
        return r

    def client(self):
        from dockyard.cli.client import Client

        return Client(self.host)


def _daemon(tmp_path_factory, driver: str):
    base = tmp_path_factory.mktemp(f"daemon-{driver}")
    d = Daemon(base, driver)
    try:
        d.start()
        yield d
    finally:
        stop_and_check(d, base)
        assert_no_network_left()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    yield from _daemon(tmp_path_factory, "overlay")


@pytest.fixture(scope="module", params=["overlay", "vfs"])
def any_daemon(tmp_path_factory, request):
    yield from _daemon(tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def bb(daemon, busybox_tar):
    """The module daemon's busybox image (made from busybox-static)."""
    daemon.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    return "busybox"


@pytest.fixture
def no_leftover_containers(daemon):
    """Remove every container of the module daemon after the test."""
    yield
    for c in daemon.client().get_json("/containers/json", {"all": 1}):
        daemon.client().request("DELETE", f"/containers/{c['Id']}", {"force": 1},
                                check=False).close()


class RefDockerd:
    """A real dockerd on a private socket and data root, for side-by-side tests."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "docker.sock"
        self.host = f"unix://{self.sock}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        exe = shutil.which("dockerd")
        if exe is None:
            pytest.skip("dockerd (Debian docker.io) is not installed")
        self.proc = subprocess.Popen(
            [exe, "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
             "-H", self.host, "--pidfile", str(self.base / "docker.pid"), "--bridge", "none",
             "--iptables=false", "--ip6tables=false", "--containerd-namespace", "dockyard-ref",
             "--storage-driver", "vfs"],
            stdout=open(self.base / "dockerd.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.skip("dockerd could not start here: "
                            + (self.base / "dockerd.log").read_text()[-500:])
            if self.sock.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        pytest.skip("dockerd did not answer in 60 s")

    def docker(self, *args: str, input: bytes | None = None, check: bool = True):
        env = dict(os.environ, DOCKER_HOST=self.host,
                   DOCKER_CONFIG=str(self.base / "docker-config"))
        r = subprocess.run([DOCKER_CLI or "docker", *args], env=env, input=input,
                           capture_output=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {args} failed: {r.stderr.decode()}")
        return r

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # dockerd starts its own containerd; make sure it is gone too.
        subprocess.run(["pkill", "-f", f"containerd.*{self.base}"], check=False)
        unmount_all(self.base)


def _bench_common():
    """bench/common.py, loaded by path under a name of its own (the bench's
    modules are not on the tests' path): its dockerd cgroup helpers."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "dockyard_bench_common", Path(__file__).resolve().parent.parent / "bench" / "common.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session", autouse=True)
def reference_dockerd_cgroups():
    """The reference dockerds (here, in test_cli_service and test_cli_swarm)
    make their cgroup parent `docker` in every hierarchy and leave it behind:
    the ones the session made go after it (empty: their containers are gone)."""
    bench = _bench_common()
    before = bench.cgroup_parents()
    yield
    bench.drop_cgroup_parents(before)


@pytest.fixture(scope="session")
def ref_dockerd(tmp_path_factory):
    base = tmp_path_factory.mktemp("refdockerd")
    d = RefDockerd(base)
    try:
        d.start()
        yield d
    finally:
        d.stop()


__all__ = ["busybox_rootfs", "make_tar", "mounts_under"]


def tmux_screen(cmd: list[str], env: dict[str, str], done, size: str = "200x40",
                finished: bool = True) -> list[str]:
    """Run `cmd` in a tmux terminal of `size` and return the screen (trailing
    blanks dropped) once a line equals `done`: the command's own end marker
    (`finished`: printed after the command exits) or a line of its live
    display; or once `done(lines)` holds. The session is killed after."""
    import shlex
    import uuid

    name = f"dy-{uuid.uuid4().hex[:8]}"
    # A tmux server of its own per call: a shared one exits when its last
    # session is killed, and a new-session racing that exit fails with
    # "server exited unexpectedly".
    tmux = ["tmux", "-L", name]
    line = " ".join(shlex.quote(a) for a in cmd)
    if finished:
        line += f"; echo {done}; sleep 60"
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    w, h = size.split("x")
    subprocess.run([*tmux, "new-session", "-d", "-x", w, "-y", h, "-s", name,
                    f"env {exports} sh -c {shlex.quote(line)}"], check=True,
                   env={**os.environ, "TERM": "xterm"})
    screen = ""
    try:
        for _ in range(600):
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", name],
                                    capture_output=True, text=True).stdout
            lines = [ln.rstrip() for ln in screen.rstrip("\n").splitlines()]
            if done(lines) if callable(done) else any(ln.strip() == done for ln in lines):
                return lines
            time.sleep(0.05)
        raise AssertionError(f"{cmd} did not show {done!r}: {screen}")
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)


def drop_subid_ranges(name: str) -> None:
    """Remove `name`'s lines from /etc/subuid and /etc/subgid (a test's own user)."""
    from dockyard import idmap

    for path in (idmap.SUBUID, idmap.SUBGID):
        if not os.path.exists(path):
            continue
        with open(path) as f:
            lines = f.readlines()
        keep = [ln for ln in lines if not ln.startswith(name + ":")]
        if keep != lines:
            with open(path, "w") as f:
                f.writelines(keep)
