"""Volumes, side by side with dockerd, on the root disk (where the daemons'
roots really live) and, as a second column, each engine on a fresh ext4:

- what a named volume and a bind mount add to `docker run --rm busybox true`;
- copy-up: `docker create` of a container whose new volume is filled from a
  10 000-file image directory, against the same create without the volume.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import median, save, table, timeit
from containers import Engine, busybox_tar

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
COPY_RUNS = int(os.environ.get("BENCH_COPY_RUNS", "5"))
DISKS = os.environ.get("BENCH_DISKS", "root,fresh").split(",")


def data_image_tar(work: Path) -> Path:
    """busybox plus /data: 10 000 files of 1-4 KiB in 100 directories."""
    tar = work / "data.tar"
    if tar.exists():
        return tar
    root = work / "dataroot"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(busybox_tar(work)), "-C", str(root)], check=True)
    for d in range(100):
        sub = root / "data" / f"d{d:02}"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"f{f:03}").write_bytes(os.urandom(1024 + (d * 100 + f) % 3072))
    subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
    shutil.rmtree(root)
    return tar


def measure(e: Engine, work: Path, host_dir: Path) -> dict[str, float]:
    e.docker("import", "-c", 'CMD ["sh"]', str(data_image_tar(work)), "dataimg")
    e.docker("volume", "create", "benchvol")
    res = {"run_plain": median(timeit(lambda: e.docker("run", "--rm", "busybox", "true"),
                                      RUNS, 2)),
           "run_volumes": median(timeit(lambda: e.docker(
               "run", "--rm", "-v", "benchvol:/data", "-v", f"{host_dir}:/host", "busybox",
               "true"), RUNS, 2))}
    n = [0]
    created: list[tuple[str, str]] = []

    def create(with_volume: bool) -> None:
        n[0] += 1
        args = ["-v", f"cu{n[0]}:/data"] if with_volume else []
        cid = e.docker("create", *args, "dataimg", "true").stdout.decode().strip()
        created.append((cid, f"cu{n[0]}" if with_volume else ""))

    def cleanup() -> None:
        for cid, vol in created:
            e.docker("rm", "-v", cid)
            if vol:
                e.docker("volume", "rm", vol)
        created.clear()
        subprocess.run(["sync"], check=True)

    # create alone, with and without the volume: the difference is the
    # copy-up (removal, untimed, comes after each series)
    for key, with_volume in (("create_plain", False), ("create_copy_up", True)):
        times = []
        for _ in range(COPY_RUNS + 1):
            t = time.perf_counter()
            create(with_volume)
            times.append(time.perf_counter() - t)
            cleanup()
        res[key] = median(times[1:])
    return res


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="dy-bench-vol-"))
    host_dir = work / "bind"
    host_dir.mkdir()
    res: dict[str, dict[str, dict[str, float]]] = {}
    for disk in DISKS:
        for kind in ("dockyard", "dockerd"):
            if kind == "dockerd" and not shutil.which("dockerd"):
                continue
            e = Engine(kind, work, disk=disk)
            try:
                res.setdefault(disk, {})[kind] = measure(e, work, host_dir)
            finally:
                e.close()
    shutil.rmtree(work, ignore_errors=True)
    for disk, by in res.items():
        d, r = by["dockyard"], by.get("dockerd", {})
        where = "the root disk" if disk == "root" else "a fresh ext4"
        table(f"run --rm busybox true, docker CLI, median of {RUNS}, on {where}", [
            ("without mounts", d["run_plain"], r.get("run_plain", 0.0), "dockerd"),
            ("with a named volume and a bind", d["run_volumes"], r.get("run_volumes", 0.0),
             "dockerd"),
        ])
        print(f"mounts add {(d['run_volumes'] - d['run_plain']) * 1000:.2f} ms to a Dockyard run"
              + (f", {(r['run_volumes'] - r['run_plain']) * 1000:.2f} ms to a dockerd one"
                 if r else ""))
        cu_d = d["create_copy_up"] - d["create_plain"]
        cu_r = (r["create_copy_up"] - r["create_plain"]) if r else 0.0
        table(f"copy-up of a 10 000-file directory into a new volume, median of {COPY_RUNS}, "
              f"on {where}", [
                  ("create with the volume", d["create_copy_up"], r.get("create_copy_up", 0.0),
                   "dockerd"),
                  ("create without", d["create_plain"], r.get("create_plain", 0.0), "dockerd"),
                  ("the copy-up (difference)", cu_d, cu_r, "dockerd"),
              ])
    save("volumes", res)  # type: ignore[arg-type]


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    main()
