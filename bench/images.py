"""`import` + `save` + `load` of a ~200 MB Debian rootfs image: Dockyard's
daemon (driven by the real docker CLI, so only the engine differs) against a
real dockerd on the same machine. Skips dockerd with a message when absent."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import median, save, table

CACHE = Path("/var/tmp/dockyard-bench")


def rootfs_tar() -> Path:
    """A debootstrap'd Debian minbase as a plain tar, built once and cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tar = CACHE / "debian-minbase.tar"
    if tar.exists():
        return tar
    if (CACHE / "layer.tar").exists():  # made by bench/extract.py
        return CACHE / "layer.tar"
    root = CACHE / "debian-minbase"
    if not (root / "bin").exists():
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(root)], check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tar) + ".tmp", "."],
                   check=True)
    os.replace(str(tar) + ".tmp", tar)
    return tar


def wait_sock(sock: Path, docker_env: dict, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("daemon exited")
        if sock.exists() and subprocess.run(["docker", "version"], env=docker_env,
                                            capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("daemon did not start")


def cycle(env: dict, tar: Path, work: Path) -> dict[str, float]:
    def d(*a: str) -> None:
        subprocess.run(["docker", *a], env=env, check=True, capture_output=True)

    out = {}
    t = time.perf_counter()
    d("import", str(tar), "benchimg:1")
    out["import"] = time.perf_counter() - t
    saved = work / "saved.tar"
    t = time.perf_counter()
    d("save", "-o", str(saved), "benchimg:1")
    out["save"] = time.perf_counter() - t
    d("rmi", "benchimg:1")
    t = time.perf_counter()
    d("load", "-i", str(saved))
    out["load"] = time.perf_counter() - t
    d("rmi", "benchimg:1")
    saved.unlink()
    return out


def bench_engine(kind: str, tar: Path, runs: int) -> dict[str, float] | None:
    base = Path(tempfile.mkdtemp(prefix=f"dy-bench-{kind}-", dir="/var/tmp"))
    sock = base / "d.sock"
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(base / "cfg"))
    if kind == "dockyard":
        cmd = [sys.executable, "-m", "dockyard", "daemon", "-H", f"unix://{sock}", "-g",
               str(base / "root"), "-p", str(base / "pid"), "--exec-root", str(base / "exec"),
               "-s", "overlay", "--bridge", "none", "--iptables=false"]
    else:
        exe = shutil.which("dockerd")
        if not exe:
            print("dockerd not installed: skipping the reference side")
            return None
        cmd = [exe, "--data-root", str(base / "root"), "--exec-root", str(base / "exec"),
               "-H", f"unix://{sock}", "--pidfile", str(base / "pid"), "--bridge", "none",
               "--iptables=false", "--storage-driver", "overlay2",
               "--containerd-namespace", "dy-bench"]
    proc = subprocess.Popen(cmd, stdout=open(base / "log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_sock(sock, env, proc)
        results: dict[str, list[float]] = {}
        for _ in range(runs):
            for k, v in cycle(env, tar, base).items():
                results.setdefault(k, []).append(v)
        return {k: median(v) for k, v in results.items()}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-f", f"containerd.*{base}"], check=False)
        for line in open("/proc/self/mounts").read().splitlines()[::-1]:
            mp = line.split()[1]
            if mp.startswith(str(base)):
                subprocess.run(["umount", "-l", mp], check=False)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    tar = rootfs_tar()
    mb = tar.stat().st_size / 1e6
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    ours = bench_engine("dockyard", tar, runs)
    ref = bench_engine("dockerd", tar, runs)
    assert ours is not None
    rows = [(f"{k} ({mb:.0f} MB rootfs), docker CLI", ours[k], (ref or {}).get(k, 0.0),
             "dockerd 20.10 overlay2") for k in ("import", "save", "load")]
    table(f"Image import/save/load, median of {runs}", rows)
    save("images", {"rootfs_mb": mb, "dockyard": ours, "dockerd": ref})


if __name__ == "__main__":
    main()
