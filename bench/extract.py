#!/usr/bin/env python3
"""Layer extraction and SHA-256 throughput: dockyard._core vs GNU tar / sha256sum.

    python3 bench/extract.py [--runs 5] [--no-fresh-fs]

Builds (once, cached under /var/tmp/dockyard-bench) a ~200 MB layer: a
`debootstrap --variant=minbase bookworm` root if debootstrap works, else a
synthetic tree copied from /usr. It is tarred (numeric owners) and gzipped
(-6, like Docker). Each timed run extracts into a directory on a *freshly
made ext4 loop file system* (root needed): re-extracting into a file system
where the previous run's inodes were just deleted makes ext4's inode
allocator (recently_deleted scans) dominate both tools' times. Runs of the
two tools alternate; medians are reported, with MB/s of the uncompressed
tar stream. Then SHA-256 of a 1 GiB file: `sha256sum` vs
`dockyard._core.sha256_file` (warm page cache). Results: a table on stdout
and JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from dockyard import _core  # noqa: E402

CACHE = Path("/var/tmp/dockyard-bench")
ROOTFS = CACHE / "rootfs"
LAYER = CACHE / "layer.tar"
LAYER_GZ = CACHE / "layer.tar.gz"
BIG = CACHE / "1g.bin"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def build_rootfs() -> str:
    marker = CACHE / "rootfs.kind"
    if ROOTFS.is_dir() and marker.exists():
        return marker.read_text().strip()
    shutil.rmtree(ROOTFS, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    kind = "synthetic"
    if shutil.which("debootstrap"):
        log("debootstrap --variant=minbase bookworm (a few minutes)...")
        r = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(ROOTFS),
                            "http://deb.debian.org/debian"], capture_output=True, text=True)
        if r.returncode == 0:
            kind = "debian-bookworm-minbase"
        else:
            log("debootstrap failed, using a synthetic tree:", r.stderr[-500:])
            shutil.rmtree(ROOTFS, ignore_errors=True)
    if kind == "synthetic":
        total, limit = 0, 200 << 20
        ROOTFS.mkdir(parents=True)
        for dirpath, dirnames, filenames in os.walk("/usr"):
            dirnames.sort()
            for n in sorted(filenames):
                src = Path(dirpath) / n
                if src.is_symlink() or not src.is_file():
                    continue
                dst = ROOTFS / src.relative_to("/")
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copy2(src, dst)
                except OSError:
                    continue
                total += dst.stat().st_size
                if total >= limit:
                    break
            if total >= limit:
                break
    marker.write_text(kind + "\n")
    LAYER.unlink(missing_ok=True)
    LAYER_GZ.unlink(missing_ok=True)
    return kind


def build_layer() -> None:
    if LAYER_GZ.exists() and LAYER.exists():
        return
    log("tar + gzip -6 of the root...")
    subprocess.run(["tar", "-C", str(ROOTFS), "--numeric-owner", "-cf", str(LAYER), "."], check=True)
    with open(LAYER_GZ, "wb") as out:
        subprocess.run(["gzip", "-6", "-c", str(LAYER)], stdout=out, check=True)


class FreshFS:
    """A new ext4 on a loop file for one run (or a plain temp dir)."""

    def __init__(self, fresh: bool):
        self.fresh = fresh

    def __enter__(self) -> Path:
        if not self.fresh:
            self.dir = Path(tempfile.mkdtemp(dir=CACHE, prefix="run-"))
            return self.dir
        self.img = CACHE / "fs.img"
        self.mnt = CACHE / "mnt"
        self.mnt.mkdir(exist_ok=True)
        with open(self.img, "wb") as f:
            f.truncate(3 << 30)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
                        str(self.img)], check=True)
        subprocess.run(["mount", "-o", "loop", str(self.img), str(self.mnt)], check=True)
        self.dir = self.mnt / "x"
        self.dir.mkdir()
        os.sync()
        return self.dir

    def __exit__(self, *exc):
        if self.fresh:
            subprocess.run(["umount", str(self.mnt)], check=True)
            self.img.unlink()
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_extract(runs: int, fresh: bool) -> dict:
    tar_size = LAYER.stat().st_size
    res = {"tar -xzf": [], "dockyard gz": [], "dockyard tar": [], "gzip -dc >/dev/null": []}
    # The two contenders alternate; the reference points run afterwards.
    for i in range(runs):
        with FreshFS(fresh) as d:
            res["tar -xzf"].append(timed(lambda: subprocess.run(
                ["tar", "-xzf", str(LAYER_GZ), "-C", str(d)], check=True)))
        with FreshFS(fresh) as d:
            res["dockyard gz"].append(timed(lambda: _core.extract_layer_file(
                str(LAYER_GZ), str(d), "overlay")))
        log(f"run {i + 1}/{runs}: tar -xzf {res['tar -xzf'][-1]:.3f}s, "
            f"dockyard {res['dockyard gz'][-1]:.3f}s")
    for i in range(runs):
        with FreshFS(fresh) as d:
            res["dockyard tar"].append(timed(lambda: _core.extract_layer_file(
                str(LAYER), str(d), "overlay")))
        res["gzip -dc >/dev/null"].append(timed(lambda: subprocess.run(
            f"gzip -dc {LAYER_GZ} > /dev/null", shell=True, check=True)))
    out = {}
    for k, v in res.items():
        med = statistics.median(v)
        out[k] = {"runs_s": v, "median_s": med, "MBps": tar_size / med / 1e6}
    return out


def bench_sha(runs: int) -> dict:
    if not BIG.exists() or BIG.stat().st_size != 1 << 30:
        log("writing a 1 GiB file...")
        block = os.urandom(16 << 20)
        with open(BIG, "wb") as f:
            for _ in range(64):
                f.write(block)
    subprocess.run(["cat", str(BIG)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
    res = {"sha256sum": [], "dockyard sha256_file": []}
    want = None
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(["sha256sum", str(BIG)], capture_output=True, text=True, check=True)
        res["sha256sum"].append(time.perf_counter() - t)
        want = "sha256:" + r.stdout.split()[0]
        t = time.perf_counter()
        got = _core.sha256_file(str(BIG))
        res["dockyard sha256_file"].append(time.perf_counter() - t)
        assert got == want, (got, want)
    return {k: {"runs_s": v, "median_s": statistics.median(v),
                "MBps": (1 << 30) / statistics.median(v) / 1e6} for k, v in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-fresh-fs", action="store_true",
                    help="extract under /var/tmp instead of a fresh ext4 per run")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (loop mounts, device nodes, chown)")
    kind = build_rootfs()
    build_layer()
    fresh = not args.no_fresh_fs and shutil.which("mkfs.ext4") is not None
    ext = bench_extract(args.runs, fresh)
    sha = bench_sha(max(3, min(args.runs, 5)))
    ratio = ext["tar -xzf"]["median_s"] / ext["dockyard gz"]["median_s"]
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": {"nproc": os.cpu_count(), "kernel": os.uname().release},
        "layer": {"kind": kind, "tar_bytes": LAYER.stat().st_size, "gz_bytes": LAYER_GZ.stat().st_size},
        "fresh_ext4_per_run": fresh,
        "extract": ext,
        "extract_speedup_vs_tar_xzf": ratio,
        "sha256": sha,
    }
    print(f"layer: {kind}, {LAYER.stat().st_size / 1e6:.0f} MB tar, "
          f"{LAYER_GZ.stat().st_size / 1e6:.0f} MB gzip; {args.runs} runs, medians"
          f"{' (fresh ext4 per run)' if fresh else ''}")
    print(f"{'extraction':<28}{'median s':>10}{'MB/s (tar)':>12}")
    for k, v in ext.items():
        print(f"{k:<28}{v['median_s']:>10.3f}{v['MBps']:>12.0f}")
    print(f"dockyard gz vs tar -xzf: {ratio:.2f}x faster")
    print(f"{'SHA-256 of 1 GiB':<28}{'median s':>10}{'MB/s':>12}")
    for k, v in sha.items():
        print(f"{k:<28}{v['median_s']:>10.3f}{v['MBps']:>12.0f}")
    outdir = HERE / "results"
    outdir.mkdir(exist_ok=True)
    path = outdir / f"extract-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
