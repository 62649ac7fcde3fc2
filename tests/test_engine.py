"""The Python API (`dockyard.Engine`) on real storage drivers, and crash safety:
kill -9 of a daemon in the middle of an import leaves the store consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import NO_NETWORK, Daemon, assert_no_mounts_left, make_tar, unmount_all


@pytest.fixture(params=["overlay", "vfs"])
def engine(tmp_path, request):
    from dockyard import Engine

    eng = Engine(tmp_path / "root", request.param, exec_root=tmp_path / "exec", network_options=NO_NETWORK)
    try:
        yield eng
    finally:
        eng.close()
        assert_no_mounts_left(tmp_path)


def test_import_shares_layers(engine, busybox_tar):
    a = engine.import_image(str(busybox_tar), repo="a", tag="1")
    b = engine.import_image(str(busybox_tar), repo="b", tag="1", message="other")
    assert a.id != b.id  # different configs (comment, time)
    assert a.config["rootfs"] == b.config["rootfs"]
    # the same diff is stored once
    rows = engine.db.query("SELECT COUNT(*) AS n FROM layers")
    assert rows[0]["n"] == 1
    assert len(engine.driver.list_ids()) == 1
    engine.remove_image("a:1")
    assert len(engine.driver.list_ids()) == 1
    engine.remove_image("b:1")
    assert engine.driver.list_ids() == []


def test_image_id_is_sha256_of_config(engine, busybox_tar):
    import hashlib

    img = engine.import_image(str(busybox_tar), repo="x")
    assert img.id == "sha256:" + hashlib.sha256(img.raw).hexdigest()
    assert img.repo_tags == ["x:latest"]


def test_prefix_lookup_and_ambiguity(engine, busybox_tar):
    from dockyard.errors import AmbiguousPrefix, ImageNotFound

    imgs = [engine.import_image(str(busybox_tar), message=str(i)) for i in range(20)]
    for img in imgs:
        assert engine.get_image(img.id[7:19]).id == img.id
    firsts = {}
    for img in imgs:
        firsts.setdefault(img.id[7], []).append(img)
    dup = next((v for v in firsts.values() if len(v) > 1), None)
    if dup:
        with pytest.raises(AmbiguousPrefix, match="multiple IDs found with provided prefix"):
            engine.get_image(dup[0].id[7])
    with pytest.raises(ImageNotFound):
        engine.get_image("ffffffffffffffffffffff")


def test_import_from_chunks_matches_file(engine, busybox_tar):
    data = busybox_tar.read_bytes()
    a = engine.import_image(str(busybox_tar))
    b = engine.import_image(iter([data[i:i + 7919] for i in range(0, len(data), 7919)]))
    assert a.config["rootfs"] == b.config["rootfs"]


def test_truncated_import_leaves_nothing(engine, busybox_tar):
    from dockyard.errors import LayerCorrupt

    data = busybox_tar.read_bytes()
    before = engine.driver.list_ids()
    with pytest.raises(LayerCorrupt):
        engine.import_image(iter([data[: len(data) // 2]]), repo="half")
    assert engine.driver.list_ids() == before
    assert engine.list_images() == []


def test_kill9_during_import_keeps_store_consistent(tmp_path, busybox_tar):
    """A daemon killed mid-import restarts with the store as it was before."""
    d = Daemon(tmp_path, "overlay")
    d.start()
    try:
        ok = d.cli("import", str(busybox_tar), "before:1").stdout.decode().strip()
        # A slow body: the daemon is killed while the layer is being extracted.
        big = tmp_path / "big"
        (big / "data").mkdir(parents=True)
        for i in range(40):
            (big / "data" / f"f{i}").write_bytes(os.urandom(1 << 20))
        tar = make_tar(big, tmp_path / "big.tar")
        proc = subprocess.Popen([sys.executable, "-m", "dockyard", "import", "-", "during:1"],
                                stdin=subprocess.PIPE, env=d.env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        data = tar.read_bytes()
        proc.stdin.write(data[: len(data) // 2])
        proc.stdin.flush()
        time.sleep(0.5)
        os.killpg(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        proc.wait(30)
        d.start()
        imgs = d.client().get_json("/images/json")
        assert [i["RepoTags"] for i in imgs] == [["before:1"]]
        assert imgs[0]["Id"] == ok
        # the half-extracted layer directory was collected at start-up
        layer_dirs = [p for p in os.listdir(d.root / "overlay") if p != "l" and
                      not p.startswith(".")]
        assert len(layer_dirs) == 1, layer_dirs
        d.cli("rmi", "before:1")
    finally:
        d.stop()
        assert_no_mounts_left(tmp_path)



def _idle_shims(exec_root) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"dockyard-shim idle --exec-root {exec_root}/"],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _until(cond, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_containers_start_on_shims_made_ahead(tmp_path, busybox_tar):
    """After the first start, the engine keeps one idle shim per exec root; the
    next container starts on it (its command line then names the container),
    a dead idle shim only means the usual start, and close lets it go."""
    from dockyard import Engine

    exec_root = tmp_path / "exec"
    eng = Engine(tmp_path / "root", "overlay", exec_root=exec_root, network_options=NO_NETWORK)
    c = eng.containers

    def run(cmd: list[str]) -> int:
        x = c.create({"Image": "busybox", "Cmd": cmd}, {})
        c.start(x.id)
        c.wait_exit(x.id)
        code = c.get(x.id).state["ExitCode"]
        c.remove(x.id)
        return code

    try:
        eng.import_image(str(busybox_tar), repo="busybox")
        assert run(["sh", "-c", "exit 3"]) == 3
        idle = _until(lambda: _idle_shims(exec_root))
        assert len(idle) == 1
        x = c.create({"Image": "busybox", "Cmd": ["sleep", "30"]}, {})
        assert os.getpriority(os.PRIO_PROCESS, idle[0]) == 10  # made at nice 10
        c.start(x.id)
        shim = c.get(x.id).state["ShimPid"]
        assert shim == idle[0]
        # ... and back at 0 once it took the request, with the container
        pid = c.get(x.id).state["Pid"]
        assert os.getpriority(os.PRIO_PROCESS, shim) == 0
        assert os.getpriority(os.PRIO_PROCESS, pid) == 0
        # The network namespace the idle shim made is the container's own.
        net = os.readlink(f"/proc/{pid}/ns/net")
        assert net == os.readlink(f"/proc/{shim}/ns/net") != os.readlink("/proc/self/ns/net")
        flags = open(f"/proc/{pid}/root/sys/class/net/lo/flags").read()
        assert int(flags, 16) & 1  # IFF_UP
        y = c.create({"Image": "busybox", "Cmd": ["sleep", "30"]}, {})
        c.start(y.id)
        assert os.readlink(f"/proc/{c.get(y.id).state['Pid']}/ns/net") not in (net, os.readlink(
            "/proc/self/ns/net"))
        c.remove(y.id, force=True)
        cmdline = open(f"/proc/{shim}/cmdline", "rb").read()
        assert f"run\0--id\0{x.id}\0".encode() in cmdline
        c.remove(x.id, force=True)
        # An idle shim killed by someone: the next start is the usual one.
        nxt = _until(lambda: _idle_shims(exec_root))
        os.kill(nxt[0], signal.SIGKILL)
        _until(lambda: not os.path.exists(f"/proc/{nxt[0]}/cmdline")
               or not open(f"/proc/{nxt[0]}/cmdline", "rb").read())
        assert run(["true"]) == 0
        assert run(["sh", "-c", "exit 7"]) == 7
        _until(lambda: _idle_shims(exec_root))
    finally:
        eng.close()
        _until(lambda: not _idle_shims(exec_root))
        unmount_all(tmp_path)


def test_idle_shim_makes_a_network_namespace_only_for_a_container_wanting_one(
        tmp_path, busybox_tar):
    """The idle shim makes the next container's network namespace ahead when
    the last one started wanted a new namespace; after one that didn't (the
    host's here, a bridge's sandbox on a daemon with a bridge) it makes none,
    and a container wanting one then gets it made at its start."""
    from dockyard import Engine

    exec_root = tmp_path / "exec"
    eng = Engine(tmp_path / "root", "overlay", exec_root=exec_root, network_options=NO_NETWORK)
    c = eng.containers
    host = os.readlink("/proc/self/ns/net")

    def next_idle() -> tuple[str, bool]:
        pid = _until(lambda: len(p := _idle_shims(exec_root)) == 1 and p)[0]
        # a namespace made ahead is there once the shim waits for its request
        # (blocked in read(2) of descriptor 0: x86-64's syscall 0)
        _until(lambda: open(f"/proc/{pid}/syscall").read().split()[:2] == ["0", "0x0"])
        args = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        net, no_netns = os.readlink(f"/proc/{pid}/ns/net"), b"--no-netns" in args
        assert (net == host) == no_netns, (net, args)
        return net, no_netns

    def run(hostconfig: dict) -> None:
        x = c.create({"Image": "busybox", "Cmd": ["true"]}, hostconfig)
        c.start(x.id)
        c.wait_exit(x.id)
        assert c.get(x.id).state["ExitCode"] == 0
        c.remove(x.id)

    def settle(hostconfig: dict) -> bool:
        """Run containers with `hostconfig` until the idle shim is one made
        after such a start (at most three: the shim made after the previous
        start may not be in the pool yet when the next start looks for one,
        which then goes the usual way and leaves it idle). Whether it made a
        namespace ahead."""
        seen = []
        for _ in range(3):
            run(hostconfig)
            seen.append(next_idle()[1])
            if len(seen) > 1 and seen[-1] == seen[-2]:
                break
        return not seen[-1]

    try:
        eng.import_image(str(busybox_tar), repo="busybox")
        assert settle({})
        assert not settle({"NetworkMode": "host"})
        # a new namespace, made at the start, with lo up
        x = c.create({"Image": "busybox", "Cmd": ["sleep", "30"]}, {})
        c.start(x.id)
        pid = c.get(x.id).state["Pid"]
        assert os.readlink(f"/proc/{pid}/ns/net") != host
        assert int(open(f"/proc/{pid}/root/sys/class/net/lo/flags").read(), 16) & 1
        c.remove(x.id, force=True)
        assert settle({})
    finally:
        eng.close()
        _until(lambda: not _idle_shims(exec_root))
        unmount_all(tmp_path)


def test_start_readied_meanwhile_and_given_up_cleanly(tmp_path, busybox_tar):
    """A start makes the container's cgroup (with its limits) on a thread of
    its own, and hands an idle shim its command line, while it mounts the
    rootfs; a start that fails before the shim runs, or in it, leaves no
    cgroup behind, and the idle shim it took leaves without a trace."""
    from dockyard import Engine, _core
    from dockyard.errors import Conflict, DockyardError

    exec_root = tmp_path / "exec"
    eng = Engine(tmp_path / "root", "overlay", exec_root=exec_root, network_options=NO_NETWORK)
    c = eng.containers
    parent = f"dytest-ahead-{os.getpid()}"
    made: list[str] = []

    def dirs(x) -> list[str]:
        return [d for d in _core.cgroup_dirs(c.cgroup_path(x)) if os.path.isdir(d)]

    try:
        eng.import_image(str(busybox_tar), repo="busybox")
        x = c.create({"Image": "busybox", "Cmd": ["sleep", "30"]},
                     {"Memory": 64 << 20, "CgroupParent": parent})
        made.append(c.cgroup_path(x))
        c.start(x.id)
        mem = [(d, f) for d in dirs(x) for f in ("memory.limit_in_bytes", "memory.max")
               if os.path.exists(f"{d}/{f}")]
        assert len(mem) == 1, dirs(x)
        (d, limit), = mem
        assert open(f"{d}/{limit}").read().strip() == str(64 << 20)
        pid = c.get(x.id).state["Pid"]
        assert str(pid) in open(f"{d}/cgroup.procs").read().split()
        c.stop(x.id, 0)

        # Refused after the rootfs was mounted, before any shim: its network's
        # container is not running.
        y = c.create({"Image": "busybox", "Cmd": ["true"]},
                     {"NetworkMode": f"container:{x.id}", "CgroupParent": parent})
        made.append(c.cgroup_path(y))
        idle = _until(lambda: _idle_shims(exec_root))
        with pytest.raises(Conflict):
            c.start(y.id)
        assert dirs(y) == []
        # the idle shim that had taken its start is gone, and left nothing
        _until(lambda: not _alive(idle[0]))
        assert sorted(os.listdir(c.state_dir(y.id))) == []
        assert _until(lambda: _idle_shims(exec_root)) != idle  # a successor
        # Refused by the shim: no such command.
        z = c.create({"Image": "busybox", "Cmd": ["/no/such"]}, {"CgroupParent": parent})
        made.append(c.cgroup_path(z))
        with pytest.raises(DockyardError):
            c.start(z.id)
        assert dirs(z) == []
        for v in (x, y, z):
            c.remove(v.id, force=True)
        assert dirs(x) == []
    finally:
        eng.close()
        unmount_all(tmp_path)
        for path in made:
            _core.remove_cgroup(path)
        _core.remove_cgroup(f"/{parent}")


def test_pod_namespace_pins_no_record_names_are_swept(tmp_path):
    """A pod's network namespace is pinned while its first record is synced;
    a crash between the two leaves a pin no record names, which the pods'
    service removes when it starts."""
    from dockyard import Engine, _core

    eng = Engine(tmp_path / "root", "overlay", exec_root=tmp_path / "exec",
                 network_options=NO_NETWORK)
    stray = tmp_path / "exec" / "pods" / ("f" * 64)
    try:
        stray.mkdir(parents=True)
        _core.ns_pin(str(stray / "net"), "net")
        assert os.path.ismount(stray / "net")
        assert eng.pods.all() == []  # made on first use
        assert not stray.exists()
    finally:
        eng.close()
        if stray.exists():
            _core.ns_unpin(str(stray / "net"))
        unmount_all(tmp_path)


def test_cgroup_of_a_start_cut_short_goes_at_recovery(tmp_path, busybox_tar):
    """A daemon killed during a start, after the cgroup it makes meanwhile
    and before any shim, leaves a container `created` with a cgroup: the
    next daemon's recovery removes it (and `system check` finds nothing)."""
    from dockyard import Engine, _core

    def engine():
        return Engine(tmp_path / "root", "overlay", exec_root=tmp_path / "exec",
                      network_options=NO_NETWORK)

    parent = f"dytest-cut-{os.getpid()}"
    eng = engine()
    paths: list[str] = []
    try:
        eng.import_image(str(busybox_tar), repo="busybox")
        x = eng.containers.create({"Image": "busybox", "Cmd": ["true"]}, {"CgroupParent": parent})
        paths.append(eng.containers.cgroup_path(x))
        assert _core.make_cgroup(paths[0], "{}").wait()  # as the start cut short made it
        eng.close()
        eng = engine()
        assert eng.containers.recover() == []
        assert not any(os.path.isdir(d) for d in _core.cgroup_dirs(paths[0]))
        assert eng.containers.get(x.id).state["Status"] == "created"
    finally:
        eng.close()
        unmount_all(tmp_path)
        for p in paths:
            _core.remove_cgroup(p)
        _core.remove_cgroup(f"/{parent}")
