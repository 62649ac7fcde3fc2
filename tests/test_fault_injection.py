"""Fault injection: the daemon is killed with SIGKILL at seeded random points
while an operation runs (import, load, pull, build, run/rm, commit, volume
create with copy-up, save, push, restart, volume create; and on a daemon
with its bridge, in a network namespace of its own: network create, run
with a published port, connect, disconnect, stop, rm, network rm),
restarted, and then the engine's consistency check (`GET /system/check`:
every layer rebuilt and hashed; no supervisor, cgroup, namespace, address,
bridge, veth or port rule that belongs to nothing) must find nothing, a
volume's data written before the kills must read the same, no mount may be
left, and the same operation must succeed. Points per operation: DOCKYARD_FAULT_POINTS
(1 in the suite, for time; 20 and more by hand), seed: DOCKYARD_FAULT_SEED,
operations: DOCKYARD_FAULT_OPS (names, comma-separated)."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Callable

import pytest

from conftest import DOCKER_CLI, Daemon, kill_containers_left, mounts_under, unmount_all

pytestmark = pytest.mark.skipif(DOCKER_CLI is None, reason="the docker CLI is not installed")

POINTS = int(os.environ.get("DOCKYARD_FAULT_POINTS", "1"))
SEED = int(os.environ.get("DOCKYARD_FAULT_SEED", "1"))


def _many_files_tar(path: Path, base: Path, n: int) -> Path:
    """busybox plus /data: n small files (an operation that takes a while)."""
    with tarfile.open(path, "w") as out, tarfile.open(base) as bb:
        for m in bb:
            out.addfile(m, bb.extractfile(m) if m.isreg() else None)
        for i in range(n):
            data = os.urandom(64 + i % 512)
            info = tarfile.TarInfo(f"data/d{i % 50:02}/f{i:05}")
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return path


class Op:
    def __init__(self, name: str, start: Callable[[Daemon], subprocess.Popen],
                 after: Callable[[Daemon], None] = lambda d: None) -> None:
        self.name, self.start, self.after = name, start, after


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, busybox_tar):
    work = tmp_path_factory.mktemp("faults")
    big = _many_files_tar(work / "big.tar", busybox_tar, 3000)
    ctx = work / "ctx"
    (ctx / "data").mkdir(parents=True)
    for i in range(2000):
        (ctx / "data" / f"f{i:04}").write_bytes(os.urandom(100))
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY data /data\nRUN echo x > /x\n")
    return {"big": big, "ctx": ctx, "work": work}


def _ops(inputs: dict, pull_ref: str, registry_host: str) -> list[Op]:
    def cli(*args: str) -> Callable[[Daemon], subprocess.Popen]:
        def start(d: Daemon) -> subprocess.Popen:
            return subprocess.Popen([DOCKER_CLI, *args], env=_env(d),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return start

    saved = inputs["work"] / "saved.tar"

    def prepare_load(d: Daemon) -> None:
        if not saved.exists():
            d.docker("save", "-o", str(saved), "big")

    return [
        Op("import", cli("import", str(inputs["big"]), "imported")),
        Op("load", cli("load", "-i", str(saved))),
        Op("pull", cli("pull", pull_ref)),
        Op("build", lambda d: subprocess.Popen(
            [DOCKER_CLI, "build", "-q", "--no-cache", "-t", "built", str(inputs["ctx"])],
            env=dict(_env(d), DOCKER_BUILDKIT="0"), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)),
        Op("run-rm", cli("run", "--rm", "busybox", "sh", "-c", "echo hi > /f")),
        Op("commit", lambda d: subprocess.Popen(
            ["sh", "-c", "id=$($D create big sh -c 'cp -r /data /copy') && "
                         "$D start -a $id && $D commit $id committed && $D rm $id"],
            env=dict(_env(d), D=DOCKER_CLI), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)),
        Op("volume-copy-up", cli("create", "-v", "faultvol:/data", "big", "true")),
        Op("save", cli("save", "-o", str(inputs["work"] / "out.tar"), "big")),
        Op("push", cli("push", f"{registry_host}/fault/big:latest")),
        Op("start-stop", cli("restart", "-t", "1", "faultctr")),
        Op("volume-create", lambda d: subprocess.Popen(
            ["sh", "-c", "$D volume create --label l=1 faultv-$(date +%N) >/dev/null && "
                         "$D volume create faultv-fixed >/dev/null"],
            env=dict(_env(d), D=DOCKER_CLI), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)),
    ], prepare_load


def _done(p: subprocess.Popen) -> str:
    """"" when `p` succeeded, else its exit code and stderr."""
    _, err = p.communicate(timeout=120)
    return "" if p.returncode == 0 else f"exit {p.returncode}: {err.decode(errors='replace')}"


def _env(d: Daemon) -> dict[str, str]:
    return dict(d.env(), DOCKER_CONFIG=str(d.base / "docker-config"))


#: What a container wrote into a volume before the kills; read after each.
PRECIOUS = "precious data\n"


def _consistent(d: Daemon) -> None:
    problems = d.client().get_json("/system/check", {"grace": 0})["Problems"]
    assert problems == [], json.dumps(problems, indent=1)
    vols = {v["Name"]: v for v in d.client().get_json("/volumes")["Volumes"] or []}
    if "precious" in vols:
        assert Path(vols["precious"]["Mountpoint"], "f").read_text() == PRECIOUS
    # only what running containers hold may be mounted, and none run here
    running = d.client().get_json("/containers/json")
    if not running:
        assert mounts_under(d.root) == []


def _kill_during(d: Daemon, name: str, start: Callable[[Daemon], subprocess.Popen],
                 rng: random.Random) -> list[float]:
    """Time the operation undisturbed, then POINTS times: start it, kill the
    daemon at a random point within that span, restart, check, and run the
    operation again on what the kill left. Returns the points."""
    t = time.monotonic()
    assert _done(start(d)) == "", name
    span = time.monotonic() - t
    points = []
    for _ in range(POINTS):
        delay = rng.uniform(0.0, span)
        print(f"{name}: kill at {delay:.3f}s of {span:.3f}s", flush=True)
        p = start(d)
        time.sleep(delay)
        assert d.proc is not None
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        p.communicate(timeout=60)
        d.start()
        _consistent(d)
        err = _done(start(d))
        assert err == "", f"{name} after a kill at {delay:.3f}s: {err}"
        _consistent(d)
        points.append(round(delay, 3))
    return points


@pytest.mark.timeout(300 + 40 * POINTS)  # by hand, 20 points take ~10 minutes
def test_kill9_at_random_points_loses_nothing(tmp_path, busybox_tar, inputs, registry,
                                              busybox_image):
    rng = random.Random(SEED)
    d = Daemon(tmp_path / "d", "overlay")
    d.base.mkdir()
    ops, prepare_load = _ops(inputs, busybox_image.ref, registry.host)
    report = []
    try:
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        d.cli("import", "-c", 'CMD ["sh"]', str(inputs["big"]), "big:latest")
        prepare_load(d)
        d.cli("tag", "big:latest", f"{registry.host}/fault/big:latest")
        d.cli("create", "--name", "faultctr", "busybox", "sleep", "60")
        d.docker("run", "--rm", "-v", "precious:/v", "busybox", "sh", "-c",
                 f"printf '{PRECIOUS.strip()}\\n' > /v/f")
        only = os.environ.get("DOCKYARD_FAULT_OPS", "").split(",")
        for op in ops:
            if only != [""] and op.name not in only:
                continue
            report += [(op.name, delay) for delay in _kill_during(d, op.name, op.start, rng)]
        assert len(report) == POINTS * (len(ops) if only == [""] else len(only))
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.docker("rm", "-f", "faultctr", check=False)
        d.stop()
        left = kill_containers_left(d.base)
        leaked = mounts_under(d.base)
        unmount_all(d.base)
    assert not left and not leaked


def test_kill9_during_network_operations(tmp_path_factory, busybox_tar):
    """Networks: each run of the operation uses names of its own, so that what a
    kill left (a network, a container: real state, not debris) stays out of
    the way of the next run; the check finds no debris."""
    from test_network import own_daemon

    rng = random.Random(SEED + 1)
    script = ("set -e; n=fn$(date +%N); "
              "$D network create $n >/dev/null; "
              "c=$($D run -d --network $n -p 127.0.0.1::80 busybox sleep 60); "
              "$D network connect bridge $c; $D network disconnect bridge $c; "
              "$D stop -t 0 $c >/dev/null; $D rm $c >/dev/null; $D network rm $n >/dev/null")
    with own_daemon(tmp_path_factory, busybox_tar, []) as d:
        def start() -> subprocess.Popen:
            return subprocess.Popen(["sh", "-c", script], env=dict(_env(d), D=DOCKER_CLI),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        assert len(_kill_during(d, "network", lambda d: start(), rng)) == POINTS
