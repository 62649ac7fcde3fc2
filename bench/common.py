"""Helpers for the benchmarks: timing, medians, side-by-side tables, results."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).parent / "results"


def timeit(fn: Callable[[], object], runs: int = 5, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def table(title: str, rows: list[tuple[str, float, float, str]]) -> None:
    """rows: (what, dockyard seconds, reference seconds, reference name)."""
    print(f"\n{title}")
    print(f"{'work':44} {'dockyard':>10} {'reference':>10} {'ratio':>7}  reference")
    for what, ours, ref, name in rows:
        ratio = (ref / ours) if ours and ref else float("nan")
        refs = f"{ref:10.4f}" if ref else f"{'n/a':>10}"
        print(f"{what:44} {ours:10.4f} {refs} {ratio:6.2f}x  {name}")


def save(name: str, data: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    data["when"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    data["host"] = os.uname().nodename
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2))


def fresh_fs(prefix: str, size: int = 8 << 30) -> Path:
    """A new directory for one engine's roots, on an ext4 of its own (a loop
    file, inode tables initialized up front) where mkfs.ext4 exists. On a
    long-used disk a directory made in a fresh block group costs 0.4 ms
    against 0.03 ms in a used one, and which one a run lands in is luck: that
    would swamp the engines' own work. Undo with `drop_fs`."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    if shutil.which("mkfs.ext4"):
        img = base.with_suffix(".img")
        with open(img, "wb") as f:
            f.truncate(size)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
                        str(img)], check=True)
        subprocess.run(["mount", "-o", "loop", str(img), str(base)], check=True)
    return base


def drop_fs(base: Path) -> None:
    """Unmount whatever is left below `base`, then `base` itself, and delete it."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for mp in reversed(mounts):
        if mp.startswith(str(base) + "/"):
            subprocess.run(["umount", "-l", mp], check=False)
    img = base.with_suffix(".img")
    if img.exists():
        subprocess.run(["umount", str(base)], check=False)
        img.unlink(missing_ok=True)
    shutil.rmtree(base, ignore_errors=True)


def cgroup_parents() -> set[Path]:
    """dockerd's cgroup parent (`docker`), in each hierarchy that has it."""
    top = Path("/sys/fs/cgroup")
    return {d for d in (*top.glob("*/docker"), top / "docker") if d.is_dir()}


def drop_cgroup_parents(before: set[Path]) -> None:
    """The `docker` cgroups a dockerd made (not in `before`) and left behind,
    empty once its containers are gone: deepest first."""
    for parent in cgroup_parents() - before:
        for d in sorted([parent, *parent.rglob("*")], key=lambda d: -len(d.parts)):
            if d.is_dir():
                try:
                    d.rmdir()
                except OSError:
                    pass


def engine_env(sock: Path, base: Path) -> dict[str, str]:
    """The environment that points the docker CLI and ours at one engine's socket."""
    return dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKYARD_HOST=f"unix://{sock}",
                DOCKYARD_NO_AUTOSTART="1", DOCKER_CONFIG=str(base / "cfg"))


def in_own_netns(script: str, inside: Callable[[], None], env_flag: str, prefix: str) -> None:
    """Run `inside()` in a network namespace of the bench's own (lo up), by
    running `script` again there with `env_flag` set; the namespace is
    deleted after."""
    if os.environ.get(env_flag):
        inside()
        return
    ns = f"{prefix}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["nsenter", f"--net=/run/netns/{ns}", sys.executable, script],
                       env=dict(os.environ, **{env_flag: "1"}), check=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
